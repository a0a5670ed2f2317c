// Rule 10 through the real stack: `relayguard audit` against the reference gateway passes every
// probe; against a deliberately weakened gateway (VRFY on, Postfix an open relay and relayguard's
// relay rule off, no size limit anywhere, clamd stopped) it fails exactly those probes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseDocument } from 'yaml';
import { REFERENCE_PROBES } from '../support/audit-probes.js';
import {
  clearQueues,
  ensureStack,
  holdQueue,
  OPEN_RELAY_RESTRICTIONS,
  postconf,
  referencePolicy,
  restorePostconf,
  runRelayguard,
  sinkFiles,
  stack,
  startClamd,
  startRelayguard,
  stopClamd,
  type RelayguardProcess,
} from './harness.js';

const AUDIT_TIMEOUT_MS = 150_000;
const ALL_PROBES = REFERENCE_PROBES;

interface Probe {
  name: string;
  ok: boolean;
  detail: string;
  [k: string]: unknown;
}
interface Report {
  ok: boolean;
  id: string;
  probes: Probe[];
}

async function audit(
  configPath: string,
  extra: string[] = [],
): Promise<{ code: number | null; report: Report; stderr: string }> {
  const r = await runRelayguard(
    ['audit', '--smtp', `${stack.host}:${stack.smtpPort}`, '--config', configPath, '--json', ...extra],
    { timeoutMs: AUDIT_TIMEOUT_MS },
  );
  let report: Report;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`audit printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, report, stderr: r.stderr };
}

const describeProbes = (r: Report) =>
  r.probes.map((p) => `${p.ok ? 'ok  ' : 'FAIL'} ${p.name}: ${p.detail}`).join('\n');

describe('rule 10: relayguard audit of the reference gateway', () => {
  let rg: RelayguardProcess;
  before(async () => {
    await ensureStack();
    await restorePostconf();
    await clearQueues();
    rg = await startRelayguard();
  });
  after(async () => {
    await rg?.stop();
  });

  test('passes every probe (exit 0), cleans up its held message, and leaks no test mail', async () => {
    const sinkBefore = new Set(sinkFiles());
    const junit = join(stack.baseDir, `audit-${process.pid}.xml`);
    const { code, report, stderr } = await audit(rg.configPath, ['--junit', junit]);
    assert.deepEqual(
      report.probes.map((p) => p.name),
      ALL_PROBES,
    );
    assert.equal(report.ok, true, describeProbes(report) + stderr);
    assert.equal(code, 0);

    const byName = new Map(report.probes.map((p) => [p.name, p]));
    assert.match(byName.get('vrfy-refused')!.detail, /502 5\.5\.1/);
    assert.match(byName.get('open-relay-refused')!.detail, /outside client 203\.0\.113\.9 \(XCLIENT\): 554 5\.7\.1/);
    assert.match(byName.get('size-limit-enforced')!.detail, /SIZE=2097153 refused: 552 5\.3\.4/);
    assert.match(byName.get('virus-refused-inbound')!.detail, /refused at end of data: 5\d\d /);
    assert.equal(byName.get('virus-held-outbound')!.verified, true, byName.get('virus-held-outbound')!.detail);
    assert.match(byName.get('starttls')!.detail, /TLSv1\.[23]/);
    assert.match(byName.get('milter')!.detail, new RegExp(`127\\.0\\.0\\.1:${stack.milterPort} answered OPTNEG`));

    // The held EICAR message was removed from the hold queue again.
    const held = byName.get('virus-held-outbound')!.queue_id as string;
    assert.equal(
      (await holdQueue()).some((e) => e.queue_id === held),
      false,
    );
    // Nothing the audit sent reached the next hop.
    for (const f of sinkFiles().filter((x) => !sinkBefore.has(x))) {
      assert.doesNotMatch(readFileSync(join(stack.sinkDir, f), 'latin1'), new RegExp(report.id));
    }
    const xml = readFileSync(junit, 'utf8');
    assert.match(xml, new RegExp(`<testsuites name="relayguard audit" tests="${ALL_PROBES.length}" failures="0"`));
  });

  test('the table form says so, and a second run right after still passes (no self-inflicted ban)', async () => {
    const r = await runRelayguard(['audit', '--smtp', `${stack.host}:${stack.smtpPort}`, '--config', rg.configPath], {
      timeoutMs: AUDIT_TIMEOUT_MS,
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^all ${ALL_PROBES.length} probes passed$`, 'm'));
    assert.match(r.stdout, /^open-relay-refused\s+ok\s+refused for outside client/m);
  });
});

describe('rule 10: relayguard audit of a weakened gateway', () => {
  let rg: RelayguardProcess;
  before(async () => {
    await ensureStack();
    await clearQueues();
    // relayguard still runs, but its relay and size rules are off: Postfix alone decides those.
    const doc = parseDocument(readFileSync(referencePolicy, 'utf8'));
    doc.setIn(['rules', 'relay', 'mode'], 'off');
    doc.setIn(['rules', 'size', 'mode'], 'off');
    rg = await startRelayguard({ configText: doc.toString() });
    await postconf({
      disable_vrfy_command: 'no',
      smtpd_relay_restrictions: OPEN_RELAY_RESTRICTIONS,
      message_size_limit: '0',
    });
    await stopClamd();
  });
  after(async () => {
    await rg?.stop();
    await restorePostconf();
    await startClamd();
    await clearQueues();
  });

  test('fails exactly VRFY, open relay, size, both EICAR probes and clamd (exit 1)', async () => {
    const { code, report } = await audit(rg.configPath);
    assert.equal(code, 1);
    assert.equal(report.ok, false);
    const failed = report.probes.filter((p) => !p.ok).map((p) => p.name);
    assert.deepEqual(
      failed,
      [
        'vrfy-refused',
        'open-relay-refused',
        'size-limit-enforced',
        'virus-refused-inbound',
        'virus-held-outbound',
        'clamd',
      ],
      describeProbes(report),
    );

    const byName = new Map(report.probes.map((p) => [p.name, p]));
    assert.match(byName.get('vrfy-refused')!.detail, /VRFY answered: 252/);
    assert.match(
      byName.get('open-relay-refused')!.detail,
      /^OPEN RELAY: RCPT TO:<relayguard-audit@relay-test\.invalid> accepted from outside client 203\.0\.113\.9/,
    );
    // No size rule left in the policy: the audit holds the gateway to Postfix's default limit.
    assert.match(
      byName.get('size-limit-enforced')!.detail,
      /^SIZE=10240001 \(over Postfix's default limit; the policy has no size rule\) answered 250 /,
    );
    assert.match(byName.get('virus-refused-inbound')!.detail, /only deferred: 4\d\d/);
    assert.match(byName.get('virus-held-outbound')!.detail, /only deferred: 4\d\d/);
    assert.match(byName.get('clamd')!.detail, /clamd tcp:127\.0\.0\.1:\d+: /);
    // What was not weakened still holds.
    for (const name of [
      'expn-refused',
      'spoofed-sender-refused',
      'blocked-attachment-refused',
      'starttls',
      'dnsbl:bl.test',
      'milter',
    ]) {
      assert.equal(byName.get(name)?.ok, true, `${name}: ${byName.get(name)?.detail}`);
    }
  });
});
