// A third-party milter client (OpenDKIM's miltertest) drives relayguard directly: option
// negotiation, macros, several messages per connection, the trace header, a refusal at RCPT
// and a temporary failure. The Lua scripts are in test/e2e/miltertest/.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureStack, fixturesDir, repoRoot, run, stack, startRelayguard, type RelayguardProcess } from './harness.js';

const SCRIPTS = join(repoRoot, 'test', 'e2e', 'miltertest');
const SCRIPT_TIMEOUT_MS = 60_000;

/** Runs one Lua script against the relayguard on this slot's milter port. */
async function miltertest(rg: RelayguardProcess, script: string): Promise<void> {
  const r = await run(
    'miltertest',
    [
      '-s',
      join(SCRIPTS, `${script}.lua`),
      '-D',
      `sock=inet:${stack.milterPort}@127.0.0.1`,
      '-D',
      `lib=${join(SCRIPTS, 'lib.lua')}`,
    ],
    { timeoutMs: SCRIPT_TIMEOUT_MS },
  );
  const report = `miltertest ${script}.lua exited ${r.code}\n${r.stdout}${r.stderr}\n--- relayguard output (last 4000 chars) ---\n${rg.logs().slice(-4000)}`;
  assert.equal(r.code, 0, report);
  assert.doesNotMatch(r.stdout, /^not ok/m, report);
  assert.match(r.stdout, new RegExp(`^# ${script}: all \\d+ checks passed$`, 'm'), report);
}

before(() => ensureStack());

describe('miltertest against relayguard (fixtures/miltertest.yaml)', () => {
  let rg: RelayguardProcess;
  before(async () => {
    rg = await startRelayguard({ config: join(fixturesDir, 'miltertest.yaml'), metrics: false });
  });
  after(async () => {
    await rg?.stop();
  });

  for (const script of ['negotiation', 'macros', 'several-messages', 'trace-header', 'reject-rcpt']) {
    test(script, () => miltertest(rg, script));
  }
});

describe('miltertest against relayguard with clamd unreachable (fixtures/miltertest-clamd-down.yaml)', () => {
  let rg: RelayguardProcess;
  before(async () => {
    rg = await startRelayguard({ config: join(fixturesDir, 'miltertest-clamd-down.yaml'), metrics: false });
  });
  after(async () => {
    await rg?.stop();
  });

  test('tempfail', () => miltertest(rg, 'tempfail'));
});
