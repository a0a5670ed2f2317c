// The one place where an outcome becomes an SMTP reply: policy refusals are 5xx, dependency and
// internal failures 4xx (the sender retries), each with an enhanced status code and a reference
// that finds the decision in the log.
import type { SmtpReply } from '../protocol/smtp-reply.js';
import type { ActionKind, Cause, SmtpOverride } from './types.js';

export const DEFAULT_REJECT = { code: 550, enhanced: '5.7.1' } as const;
const DEFAULT_POLICY_TEMPFAIL = { code: 450, enhanced: '4.7.1' } as const;
export const DEFAULT_DEPENDENCY_TEMPFAIL = { code: 451, enhanced: '4.3.0' } as const;

/** Returns null for actions that are not refusals. */
export function toSmtpReply(
  action: ActionKind,
  cause: Cause | undefined,
  reason: string | undefined,
  ref: string,
  override?: SmtpOverride,
): SmtpReply | null {
  if (action !== 'reject' && action !== 'tempfail') return null;
  const temporary = action === 'tempfail';
  const base = !temporary ? DEFAULT_REJECT : cause === 'policy' ? DEFAULT_POLICY_TEMPFAIL : DEFAULT_DEPENDENCY_TEMPFAIL;
  let code: number = override?.code ?? base.code;
  let enhanced: string = override?.enhanced ?? base.enhanced;
  // The class must match the action: a dependency failure can never turn into a 5xx and a
  // policy refusal never into a 4xx because of a misconfigured override.
  const wantClass = temporary ? 4 : 5;
  if (Math.floor(code / 100) !== wantClass) code = base.code;
  if (!enhanced.startsWith(`${wantClass}.`)) enhanced = `${wantClass}${enhanced.slice(1)}`;
  if (!/^[45]\.\d{1,3}\.\d{1,3}$/.test(enhanced)) enhanced = base.enhanced;
  const what = reason ?? (temporary ? 'Temporary failure, try again later' : 'Rejected by policy');
  return { code, enhanced, text: `${what} (ref ${ref})` };
}

let counter = 0;
/** Short reference printed in replies and logged with the decision: connection id + sequence. */
export function newRef(connId: string): string {
  counter = (counter + 1) % 0x100000;
  return `${connId}-${counter.toString(36)}`;
}
