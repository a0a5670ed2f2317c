// relayguard milter-check: the MTA side against any milter (relayguard or another), with one
// message and the envelope options of `check`; prints each step's reply, the end-of-message
// modifications and what the SMTP client would see.
import { readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { runMilterCheck, type MilterCheckResult } from '../audit/milter-check.js';
import { parseListen, type ListenAddress } from '../session/server.js';
import { bool, list, parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { loadPolicyOrExit } from './policy-file.js';

export const milterCheckCommand: Command = {
  ...about('milter-check'),
  async run(argv) {
    const a = parseArgs(
      argv,
      {
        milter: { value: true },
        config: { value: true },
        'client-ip': { value: true },
        helo: { value: true },
        from: { value: true },
        rcpt: { value: true, repeat: true },
        auth: { value: true },
        tls: { value: true },
        out: { value: true },
        json: { value: false },
      },
      { min: 0, max: 1 },
    );
    const spec = str(a, 'milter');
    const policy = str(a, 'config');
    if (spec && policy) throw new UsageError('--milter and --config both name the milter: give one');
    const clientIp = str(a, 'client-ip');
    if (!clientIp || !isIP(clientIp)) throw new UsageError('--client-ip IP is required');
    const rcpts = list(a, 'rcpt');
    if (rcpts.length === 0) throw new UsageError('at least one --rcpt ADDR is required');
    const file = a.positional[0];
    if (!file) throw new UsageError('exactly one MESSAGE.eml is required');
    const listen = spec ?? loadPolicyOrExit(policy).config.server.listen;
    let milter: ListenAddress;
    try {
      milter = parseListen(listen);
    } catch (err) {
      throw new UsageError((err as Error).message.replace('bad listen address', 'bad milter address'));
    }
    const message = file === '-' ? readFileSync(0) : readFileSync(file);
    let result: MilterCheckResult;
    try {
      result = await runMilterCheck({
        milter,
        clientIp,
        rcpts,
        message,
        ...Object.fromEntries(
          (['helo', 'from', 'auth', 'tls'] as const).flatMap((k) => (str(a, k) !== undefined ? [[k, str(a, k)!]] : [])),
        ),
      });
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
