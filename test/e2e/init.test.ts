// relayguard init against the test Postfix: the policy it writes validates, has every rule in
// monitor mode, takes its domains, networks, size and clamd from the live installation, and a
// monitor-mode serve through the real Postfix delivers the mail while logging, rule by rule, the
// refusals that the same policy in enforce mode makes (checked with `relayguard check`).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import {
  clearQueues,
  eicar,
  ensureStack,
  message,
  restorePostconf,
  runRelayguard,
  smtp,
  stack,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
} from './harness.js';

let dir: string;
let policyFile: string;
let rg: RelayguardProcess | undefined;
const clamdConf = join(stack.clamdDir, 'clamd.conf');

before(async () => {
  await ensureStack();
  await restorePostconf();
  await clearQueues();
  dir = mkdtempSync(join(stack.baseDir, 'init-'));
  policyFile = join(dir, 'relayguard.yaml');
});

after(async () => {
  await rg?.stop();
  await clearQueues();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Cases the monitor-mode policy lets through and the enforce-mode one refuses. */
const CASES = [
  {
    name: 'EICAR from outside',
    rule: 'antivirus',
    from: 'someone@outside.test',
    data: () =>
      message({
        from: 'someone@outside.test',
        to: 'user@example.test',
        body: 'scan me',
        attachments: [{ filename: 'eicar.txt', content: eicar() }],
      }),
  },
  {
    name: 'an .exe attachment from outside',
    rule: 'content',
    from: 'someone@outside.test',
    data: () =>
      message({
        from: 'someone@outside.test',
        to: 'user@example.test',
        body: 'run me',
        attachments: [{ filename: 'setup.exe', content: 'MZ not really' }],
      }),
  },
  {
    name: 'our domain as sender from outside',
    rule: 'access',
    from: 'ceo@example.test',
    data: () => message({ from: 'ceo@example.test', to: 'user@example.test', body: 'wire the money' }),
  },
];

describe('relayguard init from the test Postfix (MAIL_CONFIG)', () => {
  test('writes a policy that validates, every rule in monitor mode, values from Postfix and clamd.conf', async () => {
    const r = await runRelayguard(['init', '--out', policyFile, '--clamd-conf', clamdConf]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /wrote .*relayguard\.yaml \(every rule in monitor mode\)/);
    const v = await runRelayguard(['validate', '--config', policyFile]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const text = readFileSync(policyFile, 'utf8');
    const loaded = parsePolicyText(text, policyFile);
    assert.ok(loaded.ok);
    const rules = loaded.config.rules as Record<string, { mode: string } | undefined>;
    const active = Object.entries(rules).filter(([, c]) => c !== undefined);
    assert.ok(active.length >= 8, active.map(([n]) => n).join(' '));
    for (const [name, c] of active) assert.equal(c!.mode, 'monitor', name);
    // Every rule says how to enforce it.
    for (const [name] of active)
      assert.match(text, new RegExp(`^  ${name}:\\n(    #[^\\n]*\\n)*    # [^\\n]*enforce`, 'm'), name);
    assert.deepEqual(loaded.config.local_domains, ['example.test']); // relay_domains of the test Postfix
    assert.deepEqual(loaded.config.networks.internal, ['127.0.0.0/8']); // its mynetworks
    assert.equal((rules.size as unknown as { max_bytes: number }).max_bytes, 10240000); // its message_size_limit
    assert.equal(
      (rules.antivirus as unknown as { clamd: { address: string } }).clamd.address,
      `unix:${stack.clamdSocket}`,
    ); // clamd.conf LocalSocket
    assert.equal(loaded.config.mta.config_directory, stack.postfixConfigDir);
    assert.match(text, /^ {2}# blocklists:$/m); // DNS lists: a commented example only
  });

  test('never overwrites an existing file', async () => {
    const before = readFileSync(policyFile, 'utf8');
    const r = await runRelayguard(['init', '--out', policyFile, '--clamd-conf', clamdConf]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exists; not overwritten/);
    assert.equal(readFileSync(policyFile, 'utf8'), before);
  });

  test('without clamd.conf: antivirus left as a commented example, still valid', async () => {
    const r = await runRelayguard(['init', '--clamd-conf', join(dir, 'no-clamd.conf')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}# antivirus: no clamd found \(.*no-clamd\.conf: ENOENT\)/m);
    assert.ok(parsePolicyText(r.stdout, 'stdout').ok);
  });

  test('monitor-mode serve delivers and logs the refusals the enforce-mode policy makes', async () => {
    rg = await startRelayguard({ config: policyFile });
    const enforce = join(dir, 'enforce.yaml');
    writeFileSync(enforce, readFileSync(rg.configPath, 'utf8').replace(/^(\s+)mode: monitor$/gm, '$1mode: enforce'));
    for (const c of CASES) {
      const data = c.data();
      const before = rg.logs().length;
      const s = await smtp({ from: c.from, to: ['user@example.test'], data, xclient: { addr: '203.0.113.9' } });
      assert.equal(s.ok, true, `${c.name}: ${s.dataReply?.full ?? s.error}`);
      await waitForDelivery(s.queueId!);
      const logged = rg.logs().slice(before);
      assert.match(logged, new RegExp(`monitor: ${c.rule} would reject`), `${c.name}\n${logged}`);

      const eml = join(dir, `${c.rule}.eml`);
      writeFileSync(eml, data);
      const r = await runRelayguard([
        'check',
        '--config',
        enforce,
        '--client-ip',
        '203.0.113.9',
        '--from',
        c.from,
        '--rcpt',
        'user@example.test',
        '--json',
        eml,
      ]);
      const verdict = JSON.parse(r.stdout) as {
        action: string;
        smtp: string;
        rules: Array<{ rule: string; action: string }>;
      };
      assert.equal(verdict.action, 'reject', `${c.name}: ${r.stdout}`);
      assert.ok(
        verdict.rules.some((t) => t.rule === c.rule && t.action === 'reject'),
        `${c.name}: ${r.stdout}`,
      );
      // Nothing else the monitor log says would reject that enforce does not.
      const wouldRules = [...logged.matchAll(/monitor: ([a-z_]+) would reject/g)].map((m) => m[1]!);
      for (const w of wouldRules)
        assert.ok(
          verdict.rules.some((t) => t.rule === w && t.action === 'reject'),
          `${c.name}: monitor said ${w}; check: ${r.stdout}`,
        );
    }
  });
});
