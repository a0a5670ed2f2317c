// relayguard milter-check: the MTA side against any milter (relayguard or another), with one
// message and the envelope options of `check`; prints each step's reply, the end-of-message
// modifications and what the SMTP client would see.
import { writeFileSync } from 'node:fs';
import { runMilterCheck, type MilterCheckResult } from '../audit/milter-check.js';
import { parseListen, type ListenAddress } from '../session/server.js';
import { bool, parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { ENVELOPE_OPTIONS, envelopeOf, ONE_MESSAGE, readMessage } from './envelope-args.js';
import { loadPolicyOrExit } from './policy-file.js';

export const milterCheckCommand: Command = {
  ...about('milter-check'),
  async run(argv) {
    const a = parseArgs(argv, { milter: { value: true }, ...ENVELOPE_OPTIONS }, ONE_MESSAGE);
    const spec = str(a, 'milter');
    const policy = str(a, 'config');
    if (spec && policy) throw new UsageError('--milter and --config both name the milter: give one');
    const { envelope, messageFile } = envelopeOf(a);
    const listen = spec ?? loadPolicyOrExit(policy).config.server.listen;
    let milter: ListenAddress;
    try {
      milter = parseListen(listen);
    } catch (err) {
      throw new UsageError((err as Error).message.replace('bad listen address', 'bad milter address'));
    }
    const message = readMessage(messageFile);
    let result: MilterCheckResult;
    try {
      result = await runMilterCheck({ milter, ...envelope, message });
    } catch (err) {
      const where = milter.kind === 'unix' ? `unix:${milter.path}` : `inet:${milter.host}:${milter.port}`;
      process.stderr.write(`relayguard milter-check: ${where}: ${(err as Error).message}\n`);
      return 1;
    }
    const out = str(a, 'out');
    if (out && result.output) writeFileSync(out, result.output);
    const { output: _unused, ...printable } = result;
    void _unused;
    process.stdout.write(bool(a, 'json') ? JSON.stringify(printable, null, 2) + '\n' : formatText(result));
    return 0;
  },
};

function formatText(r: MilterCheckResult): string {
  const hex = (n: number) => `0x${n.toString(16)}`;
  const lines = [
    `negotiated: version ${r.negotiated.version}, actions ${hex(r.negotiated.actions)}, protocol ${hex(r.negotiated.protocol)}`,
  ];
  for (const s of r.steps)
    lines.push(`  ${s.phase.padEnd(8)} ${s.sent.slice(0, 40).padEnd(40)} ${s.reply}${s.smtp ? `: ${s.smtp}` : ''}`);
  for (const m of r.modifications) lines.push(`  eom      ${m}`);
  for (const rc of r.recipients) lines.push(`  rcpt     <${rc.address}> ${rc.action}${rc.smtp ? `: ${rc.smtp}` : ''}`);
  lines.push(
    `action: ${r.action} (at ${r.phase})${r.smtp ? `\nreply: ${r.smtp}` : ''}${r.quarantine !== undefined ? `\nquarantine: ${r.quarantine}` : ''}`,
  );
  return lines.join('\n') + '\n';
}
