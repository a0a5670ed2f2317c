// The authentication results of the message, shared between rules. The rules of one phase run
// in parallel: the `authentication` rule starts the check synchronously when its end-of-message
// handler is called, and it is called before the handlers of the rules listed after it in
// src/rules/index.ts (the engine calls them in that order before awaiting any). A later rule
// (the disclaimer) awaits the same promise, so the check runs once per message.
import type { MessageContext } from '../policy/types.js';
import type { AuthFacts } from '../deps/mail-auth.js';

const KEY = 'authentication';

export type { AuthFacts } from '../deps/mail-auth.js';

/** Records the running check (null: the message is not checked, e.g. outbound). */
export function startAuthFacts(msg: MessageContext, check: Promise<AuthFacts | null>): void {
  // The caller reports a failed check; readers just see "no facts".
  msg.state.set(
    KEY,
    check.catch(() => null),
  );
}

/** The message's authentication results, or null when it was not checked or the check failed. */
export async function authFacts(msg: MessageContext): Promise<AuthFacts | null> {
  const p = msg.state.get(KEY) as Promise<AuthFacts | null> | undefined;
  return p ? p : null;
}
