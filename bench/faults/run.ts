// Fault runs through the real stack (see fault-run.ts and bench/README.md):
//
//   RG_E2E_SLOT=7 node dist/bench/faults/run.js [--messages 300] [--concurrency 10] [--outage-ms 5000]
//        [--only clamd-kill,dns-stop,relayguard-kill,relayguard-term,reload-bad-good]
//
// Prints one line per run: sent, delivered, refused 5xx, tempfailed 4xx, held, lost. Exit 1
// when any run lost a message, delivered EICAR or delivered something unscanned.
import { DEFAULT_FAULT_OPTIONS, FAULT_KINDS, formatReports, passed, runFault, type FaultReport } from './fault-run.js';
import { listOf, readOptions, whole } from '../lib/options.js';

async function main(): Promise<void> {
  const { messages, concurrency, outageMs, only } = readOptions(
    'faults',
    {
      args: process.argv.slice(2),
      options: {
        messages: { type: 'string', default: String(DEFAULT_FAULT_OPTIONS.messages) },
        concurrency: { type: 'string', default: String(DEFAULT_FAULT_OPTIONS.concurrency) },
        'outage-ms': { type: 'string', default: String(DEFAULT_FAULT_OPTIONS.outageMs) },
        only: { type: 'string', default: FAULT_KINDS.join(',') },
      },
    },
    ({ values: v }) => ({
      messages: whole(v.messages, 'messages'),
      concurrency: whole(v.concurrency, 'concurrency'),
      outageMs: whole(v['outage-ms'], 'outage-ms'),
      only: listOf(v.only, 'only', FAULT_KINDS),
    }),
  );
  const reports: FaultReport[] = [];
  for (const kind of only) {
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
