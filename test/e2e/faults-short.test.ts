// The short fault run for CI (the long one is bench/faults/run.ts): a few messages through the
// real stack while, in turn, clamd is killed, the DNS list server stops answering, relayguard is
// SIGKILLed, gets SIGTERM, and reloads a bad then a good policy. No message may be lost, no
// EICAR may reach the sink, nothing may be delivered unscanned.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { FAULT_KINDS, formatReports, runFault, type FaultReport } from '../../bench/faults/fault-run.js';

/** Small enough for CI (the whole file stays under a minute), large enough to span each fault. */
const SHORT = { messages: 15, concurrency: 4, outageMs: 1500, faultDelayMs: 100, eicarEvery: 5 };

describe('fault runs (short): every message is accounted for', { timeout: 120_000 }, () => {
  const reports: FaultReport[] = [];
  for (const kind of FAULT_KINDS) {
    it(kind, { timeout: 60_000 }, async () => {
      const r = await runFault(kind, SHORT);
      reports.push(r);
      const table = formatReports([r]);
      assert.equal(r.sent, SHORT.messages);
      assert.equal(r.lost, 0, `lost messages\n${table}`);
      assert.equal(r.errors, 0, `sessions without an SMTP answer\n${table}`);
      assert.equal(r.eicarDelivered, 0, `EICAR reached the sink\n${table}`);
      assert.equal(r.unscannedDelivered, 0, `delivered without a scan\n${table}`);
      assert.equal(r.deliveredDespiteRefusal, 0, `delivered although refused\n${table}`);
      assert.equal(r.duplicates, 0, `delivered twice\n${table}`);
      // The run must have exercised the fault: something was delivered, and where the milter or
      // clamd was down, some message was told to come back later.
      assert.ok(r.delivered > 0, `nothing delivered\n${table}`);
      if (kind === 'clamd-kill')
        assert.ok(r.eicarDuringOutage > 0 && r.tempfailed > 0, `the outage was not exercised\n${table}`);
      if (kind === 'relayguard-kill') assert.ok(r.tempfailed > 0, `no message met the dead milter\n${table}`);
      assert.ok(r.inFlightAtFault > 0, `no session was in flight when the fault struck\n${table}`);
    });
  }
  after(() => {
    if (reports.length) process.stdout.write(formatReports(reports));
  });
});
