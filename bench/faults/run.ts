// Fault runs through the real stack (see fault-run.ts and bench/README.md):
//
//   RG_E2E_SLOT=7 node dist/bench/faults/run.js [--messages 300] [--concurrency 10] [--outage-ms 5000]
//        [--only clamd-kill,dns-stop,relayguard-kill,relayguard-term,reload-bad-good]
//
// Prints one line per run: sent, delivered, refused 5xx, tempfailed 4xx, held, lost. Exit 1
// when any run lost a message, delivered EICAR or delivered something unscanned.
import {
  DEFAULT_FAULT_OPTIONS,
  FAULT_KINDS,
  formatReports,
  passed,
  runFault,
  type FaultKind,
  type FaultReport,
} from './fault-run.js';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const messages = Number(opt('--messages') ?? DEFAULT_FAULT_OPTIONS.messages);
  const concurrency = Number(opt('--concurrency') ?? DEFAULT_FAULT_OPTIONS.concurrency);
  const outageMs = Number(opt('--outage-ms') ?? DEFAULT_FAULT_OPTIONS.outageMs);
  const only = (opt('--only')?.split(',') ?? FAULT_KINDS) as FaultKind[];
  const reports: FaultReport[] = [];
  for (const kind of only) {
    if (!FAULT_KINDS.includes(kind)) throw new Error(`unknown fault ${kind}; known: ${FAULT_KINDS.join(', ')}`);
    const r = await runFault(kind, {
      messages,
      concurrency,
      outageMs,
      log: (l) => process.stderr.write(`[faults] ${l}\n`),
    });
    reports.push(r);
    process.stderr.write(
      `[faults] ${kind}: sent ${r.sent}, delivered ${r.delivered}, refused ${r.refused}, tempfailed ${r.tempfailed}, held ${r.held}, lost ${r.lost}${passed(r) ? '' : '  FAILED'}\n`,
    );
  }
  process.stdout.write(formatReports(reports));
  process.exitCode = reports.every(passed) ? 0 : 1;
}

main().catch((err: Error) => {
  process.stderr.write(`faults FAILED: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
