// The audit leaves no trace in the offender ledger: ten runs in a row, well inside the offender
// window (10 minutes, 5 offences), all pass, and `relayguard offenders` lists none of the probe
// addresses afterwards. Before the exemption the sixth run failed (its probe addresses banned).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_OUTSIDE_IPS } from '../../src/audit/probes.js';
import {
  clearQueues,
  ensureStack,
  restorePostconf,
  runRelayguard,
  stack,
  startRelayguard,
  type RelayguardProcess,
} from './harness.js';

const RUNS = 10;
const AUDIT_TIMEOUT_MS = 150_000;
let rg: RelayguardProcess;
const started = Date.now();

before(async () => {
  await ensureStack();
  await restorePostconf();
  await clearQueues();
  rg = await startRelayguard();
});

after(async () => {
  await rg?.stop();
  await clearQueues();
});

describe(`relayguard audit ${RUNS} times in a row`, () => {
  for (let i = 1; i <= RUNS; i++) {
    test(`run ${i} passes every probe`, async () => {
      const r = await runRelayguard(
        ['audit', '--smtp', `${stack.host}:${stack.smtpPort}`, '--config', rg.configPath, '--json'],
        { timeoutMs: AUDIT_TIMEOUT_MS },
      );
      const report = JSON.parse(r.stdout) as {
        ok: boolean;
        probes: Array<{ name: string; ok: boolean; detail: string }>;
      };
      assert.deepEqual(
        report.probes.filter((p) => !p.ok),
        [],
        r.stderr,
      );
      assert.equal(r.code, 0);
    });
  }

  test('all inside one offender window, and the ledger knows none of the probe addresses', async () => {
    assert.ok(
      Date.now() - started < 10 * 60_000,
      `the runs took ${Math.round((Date.now() - started) / 1000)} s, longer than the 10 minute window`,
    );
    const r = await runRelayguard(['offenders', '--config', rg.configPath]);
    assert.equal(r.code, 0, r.stderr);
    for (const ip of DEFAULT_OUTSIDE_IPS)
      assert.doesNotMatch(r.stdout, new RegExp(`\\b${ip.replace(/\./g, '\\.')}\\b`), r.stdout);
  });
});
