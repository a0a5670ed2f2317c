// relayguard audit: probe a live gateway (rule 10) and report every probe; exit 0 only when all
// pass. Test messages go to the audit mailbox (--rcpt, default postmaster@<first local domain>)
// and carry an X-Relayguard-Audit header.
import { writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { newAuditId } from '../audit/messages.js';
import { parseHostPort, runAudit } from '../audit/probes.js';
import { openMta } from '../deps/open-mta.js';
import { formatJson, formatJunit, formatTable } from '../audit/report.js';
import { bool, parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { loadPolicyOrExit, postfixConfigDir } from './policy-file.js';

/** How long one postqueue/postsuper/sendmail run may take. */
const MTA_TOOL_TIMEOUT_MS = 10_000;

export const auditCommand: Command = {
  ...about('audit'),
  async run(argv) {
    const a = parseArgs(argv, {
      smtp: { value: true },
      config: { value: true },
      rcpt: { value: true },
      'outside-ip': { value: true },
      bind: { value: true },
      helo: { value: true },
      json: { value: false },
      junit: { value: true },
    });
    const smtp = str(a, 'smtp');
    if (!smtp) throw new UsageError('--smtp HOST:PORT is required');
    let target: { host: string; port: number };
    try {
      target = parseHostPort(smtp);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const outsideIp = str(a, 'outside-ip');
    if (outsideIp !== undefined && !isIP(outsideIp)) throw new UsageError('--outside-ip needs an IP address');
    // Without XCLIENT (Sendmail) outside probes connect from these addresses of this host.
    const bindIps = str(a, 'bind')
      ?.split(',')
      .map((ip) => ip.trim());
    if (bindIps && !bindIps.every((ip) => isIP(ip)))
      throw new UsageError('--bind needs IP addresses of this host, separated by commas');
    const { config } = loadPolicyOrExit(str(a, 'config'));
    const firstDomain = config.local_domains[0]?.replace(/^\*?\./, '');
    const rcpt = str(a, 'rcpt') ?? (firstDomain ? `postmaster@${firstDomain}` : undefined);
    if (!rcpt) throw new UsageError('--rcpt ADDR is required when the policy names no local_domains');

    const report = await runAudit({
      host: target.host,
      port: target.port,
      config,
      rcpt,
      id: newAuditId(),
      ...(outsideIp ? { outsideIp } : {}),
      ...(bindIps ? { bindIps } : {}),
      ...(str(a, 'helo') ? { helo: str(a, 'helo')! } : {}),
      held: openMta(config.mta, { configDir: postfixConfigDir(config), timeoutMs: MTA_TOOL_TIMEOUT_MS }),
    });
    const junit = str(a, 'junit');
    if (junit) writeFileSync(junit, formatJunit(report));
    process.stdout.write(bool(a, 'json') ? formatJson(report) : formatTable(report));
    return report.ok ? 0 : 1;
  },
};
