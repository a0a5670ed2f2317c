// relayguard check: runs the policy offline on one message with a given envelope, through the
// same Conversation and engine the milter uses, and prints each rule's verdict and the result.
import { writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createLogger } from '../ops/logging.js';
import { CompiledPolicy } from '../rules/compiled-policy.js';
import type { TraceEntry } from '../policy/types.js';
import { MAX_BODY_CHUNK } from '../protocol/constants.js';
import { formatReply } from '../protocol/smtp-reply.js';
import type { Outcome } from '../policy/decision.js';
import { Conversation } from '../session/conversation.js';
import { applyModifications, splitMessage } from '../session/offline-message.js';
import { bool, parseArgs, str } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { ENVELOPE_OPTIONS, envelopeOf, ONE_MESSAGE, readMessage } from './envelope-args.js';
import { loadPolicyOrExit } from './policy-file.js';
import { expectationReport } from './check-expect.js';

export interface CheckInput {
  clientIp: string;
  helo?: string;
  from?: string;
  rcpts: string[];
  auth?: string;
  tls?: string;
  message: Buffer;
}

export interface CheckResult {
  action: 'accept' | 'reject' | 'tempfail' | 'discard' | 'quarantine';
  phase: string;
  smtp: string | null;
  reason?: string;
  rule?: string;
  ref?: string;
  quarantine?: string;
  recipients: Array<{ address: string; action: string; smtp: string | null }>;
  rules: TraceEntry[];
  /** The message as it would be delivered (when delivered or held). */
  output?: Buffer;
}

const ACTION_NAME: Record<Outcome['action'], CheckResult['action']> = {
  continue: 'accept',
  reject: 'reject',
  tempfail: 'tempfail',
  discard: 'discard',
  quarantine: 'quarantine',
};

function smtpText(o: Outcome): string | null {
  return o.reply ? formatReply(o.reply).replace(/%%/g, '%') : null;
}

/** Runs one offline transaction. Exported for tests and the golden corpus. */
export async function runCheck(policy: CompiledPolicy, input: CheckInput): Promise<CheckResult> {
  const conv = new Conversation({ policy, log: policy.log, connId: 'offline' });
  const trace: TraceEntry[] = [];
  const recipients: CheckResult['recipients'] = [];
  const done = (phase: string, o: Outcome, output?: Buffer): CheckResult => {
    trace.push(...conv.currentTrace.filter((t) => !trace.includes(t)));
    const r: CheckResult = {
      action: ACTION_NAME[o.action],
      phase,
      smtp: smtpText(o),
      recipients,
      rules: dedupe(trace),
    };
    if (o.reason) r.reason = o.reason;
    if (o.rule) r.rule = o.rule;
    if (o.ref) r.ref = o.ref;
    if (o.quarantine) r.quarantine = o.quarantine;
    if (output) r.output = output;
    return r;
  };
  const family = isIP(input.clientIp) === 6 ? 'inet6' : 'inet';
  conv.macros.set('C', [['{client_addr}', input.clientIp]]);
  let o = await conv.connect({ hostname: `[${input.clientIp}]`, family, port: 0, address: input.clientIp });
  trace.push(...conv.currentTrace);
  if (o.action !== 'continue') return done('connect', o);

  const tls: Array<[string, string]> = input.tls
    ? [
        ['{tls_version}', input.tls],
        ['{cipher}', 'OFFLINE'],
        ['{cipher_bits}', '256'],
      ]
    : [];
  conv.macros.set('H', tls);
  o = await conv.helo(input.helo ?? 'offline.invalid');
  trace.push(...conv.currentTrace);
  if (o.action !== 'continue') return done('helo', o);

  const mailMacros: Array<[string, string]> = [...tls];
  if (input.auth) mailMacros.push(['{auth_authen}', input.auth], ['{auth_type}', 'OFFLINE']);
  conv.macros.set('M', mailMacros);
  const { headers, body } = splitMessage(input.message);
  o = await conv.mail([`<${input.from ?? ''}>`, `SIZE=${input.message.length}`]);
  if (o.action !== 'continue') return done('envfrom', o);

  let accepted = 0;
  let lastRefusal: Outcome | undefined;
  for (const rcpt of input.rcpts) {
    conv.macros.set('R', [['{rcpt_addr}', rcpt]]);
    const r = await conv.rcpt([`<${rcpt}>`]);
    recipients.push({ address: rcpt, action: ACTION_NAME[r.action], smtp: smtpText(r) });
    if (r.action === 'reject' || r.action === 'tempfail') lastRefusal = r;
    else accepted++;
  }
  if (accepted === 0) return done('envrcpt', lastRefusal ?? { action: 'reject', mods: [], reason: 'no recipients' });

  o = await conv.data();
  if (o.action !== 'continue') return done('data', o);
  for (const h of headers) await conv.header(h.name, h.value, true);
  o = await conv.eoh();
  if (o.action !== 'continue') return done('eoh', o);
  for (let off = 0; off < body.length; off += MAX_BODY_CHUNK) {
    o = await conv.bodyChunk(body.subarray(off, off + MAX_BODY_CHUNK));
    if (o.action !== 'continue' && o.action !== 'quarantine') break;
  }
  o = await conv.eom();
  if (o.action !== 'continue' && o.action !== 'quarantine') return done('eom', o);
  const output = await applyModifications(headers, body, o.mods);
  const result = done('eom', o, output);
  await conv.close();
  return result;
}

function dedupe(entries: TraceEntry[]): TraceEntry[] {
  return [...new Set(entries)];
}

export const checkCommand: Command = {
  ...about('check'),
  async run(argv) {
    const a = parseArgs(argv, { ...ENVELOPE_OPTIONS, expect: { value: true } }, ONE_MESSAGE);
    const { envelope, messageFile } = envelopeOf(a);
    const message = readMessage(messageFile);
    const { config, file: policyFile } = loadPolicyOrExit(str(a, 'config'));
    // Offline logs go to stderr so that stdout stays machine-readable.
    const log = createLogger(
      { ...config.logging, level: config.logging.level === 'debug' ? 'debug' : 'warn' },
      process.stderr,
    );
    const policy = new CompiledPolicy(config, policyFile, log, { offline: true });
    const input: CheckInput = { ...envelope, message };
    let result: CheckResult;
    try {
      result = await runCheck(policy, input);
    } finally {
      await policy.close();
    }
    const out = str(a, 'out');
    if (out && result.output) writeFileSync(out, result.output);
    const { output: _unused, ...printable } = result;
    void _unused;
    if (bool(a, 'json')) process.stdout.write(JSON.stringify(printable, null, 2) + '\n');
    else process.stdout.write(formatText(result));
    // --expect: exit 1 with a diff-like report when the result is not the expected one.
    const expectFile = str(a, 'expect');
    const mismatch = expectFile ? expectationReport(expectFile, result) : null;
    if (mismatch) process.stderr.write(mismatch);
    return mismatch ? 1 : 0;
  },
};

function formatText(r: CheckResult): string {
  const lines = r.rules.map(
    (t) =>
      `  ${t.phase.padEnd(8)} ${t.rule.padEnd(14)} ${(t.monitor ? `would ${t.action}` : t.action).padEnd(16)} ${t.recipient ? `<${t.recipient}> ` : ''}${t.reason ?? ''}`,
  );
  for (const rc of r.recipients) lines.push(`  rcpt     <${rc.address}> ${rc.action}${rc.smtp ? `: ${rc.smtp}` : ''}`);
  // Where the client address is (the origin rule's lookup), also when no rule objected.
  const origin = r.rules.find((t) => typeof t.details?.origin === 'string')?.details?.origin;
  if (origin !== undefined) lines.push(`origin: ${String(origin)}`);
  lines.push(
    `action: ${r.action}${r.smtp ? `\nreply: ${r.smtp}` : ''}${r.quarantine ? `\nquarantine: ${r.quarantine}` : ''}`,
  );
  return lines.join('\n') + '\n';
}
