// The audit's probe logic against a scripted gateway, and its report formats.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eicarTestFile, auditMessage, AUDIT_HEADER } from '../../src/audit/messages.js';
import {
  DEFAULT_OUTSIDE_IPS,
  parseHostPort,
  runAudit,
  type AuditReport,
  type ProbeResult,
} from '../../src/audit/probes.js';
import { formatJson, formatJunit, formatTable, xmlEscape } from '../../src/audit/report.js';
import type { Mta } from '../../src/deps/mta.js';
import { PostfixMta, type PostfixTools } from '../../src/deps/mta-postfix.js';
import { SendmailMta } from '../../src/deps/mta-sendmail.js';
import { PACKAGE_ROOT } from '../../src/cli/command.js';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import type { PolicyConfig } from '../../src/rules/policy-schema.js';
import { FakeDns } from './dnsbl-fake-server.js';
import { fakeClamd, fakeMilter, FakeGateway, GOOD_GATEWAY, type FakeGatewayOptions } from './audit-fake-gateway.js';
import { REFERENCE_PROBES } from '../support/audit-probes.js';

const TIMEOUTS = { replyMs: 3000, dataMs: 3000 };
const NOW = Date.parse('2026-11-28T12:00:00Z');
const FRESH_DB = 'Fri Nov 27 09:00:00 2026';
const OLD_DB = 'Sat Oct 10 09:00:00 2026';
/** The scripted queue tools and Sendmail queues of these tests. */
const tmpRoot = mkdtempSync(join(tmpdir(), 'rg-audit-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

interface Env {
  milterPort: number;
  clamdPort: number;
  dns: string;
}

function policy(env: Env, extra = ''): PolicyConfig {
  const text = `
server:
  listen: inet:127.0.0.1:${env.milterPort}
local_domains: [example.test]
networks:
  internal: [127.0.0.0/8]
dns:
  servers: ["${env.dns}"]
  timeout: 500ms
  budget: 1s
rules:
  size:
    max_bytes: 1000
  antivirus:
    clamd:
      address: tcp:127.0.0.1:${env.clamdPort}
      timeout: 2s
  blocklists:
    ip_lists:
      - zone: bl.test
        codes: [127.0.0.2]
${extra}`;
  const r = parsePolicyText(text, 'audit-test.yaml');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.config;
}

async function audit(
  gw: FakeGatewayOptions,
  config: PolicyConfig,
  held: Mta | null = null,
  bindIps?: string[],
): Promise<{ report: AuditReport; gateway: FakeGateway }> {
  const gateway = new FakeGateway(gw);
  const port = await gateway.start();
  try {
    const report = await runAudit({
      host: '127.0.0.1',
      port,
      config,
      rcpt: 'postmaster@example.test',
      id: 'test-1',
      held,
      ...(bindIps ? { bindIps } : {}),
      timeouts: TIMEOUTS,
      now: () => NOW,
    });
    return { report, gateway };
  } finally {
    await gateway.stop();
  }
}

function probe(r: AuditReport, name: string): ProbeResult {
  const p = r.probes.find((x) => x.name === name);
  assert.ok(p, `probe ${name} in ${r.probes.map((x) => x.name).join(', ')}`);
  return p;
}

describe('audit probes against a scripted gateway', () => {
  let dns: FakeDns;
  let clamd: Awaited<ReturnType<typeof fakeClamd>>;
  let oldClamd: Awaited<ReturnType<typeof fakeClamd>>;
  let milter: Awaited<ReturnType<typeof fakeMilter>>;
  let env: Env;

  before(async () => {
    dns = new FakeDns({ '2.0.0.127.bl.test': { a: ['127.0.0.2'] } });
    clamd = await fakeClamd(FRESH_DB);
    oldClamd = await fakeClamd(OLD_DB);
    milter = await fakeMilter();
    env = { milterPort: milter.port, clamdPort: clamd.port, dns: await dns.start() };
  });
  after(async () => {
    await dns.stop();
    await clamd.stop();
    await oldClamd.stop();
    await milter.stop();
  });

  it('a well-behaved gateway passes every probe but STARTTLS (not offered here)', async () => {
    const { report, gateway } = await audit(GOOD_GATEWAY, policy(env));
    assert.deepEqual(
      report.probes.map((p) => p.name),
      REFERENCE_PROBES,
    );
    const failed = report.probes.filter((p) => !p.ok).map((p) => `${p.name}: ${p.detail}`);
    assert.deepEqual(failed, ['starttls: EHLO does not offer STARTTLS: mail crosses the network in clear']);
    assert.equal(report.ok, false);
    assert.match(
      probe(report, 'open-relay-refused').detail,
      /554 5\.7\.1 <relayguard-audit@relay-test\.invalid>: Relay access denied.*accepted/,
    );
    assert.match(probe(report, 'size-limit-enforced').detail, /SIZE=1001 refused: 552 5\.3\.4/);
    assert.match(
      probe(report, 'dnsbl:bl.test').detail,
      /127\.0\.0\.2 listed \(127\.0\.0\.2\); 127\.0\.0\.1 not listed/,
    );
    assert.match(probe(report, 'clamd').detail, /signatures 1\.1 day\(s\) old/);
    // The held message could not be looked for (no Postfix tools): said so, not silently passed.
    const held = probe(report, 'virus-held-outbound');
    assert.equal(held.verified, false);
    assert.match(held.detail, /accepted as HELD1.*not verified/);
    // Each outside probe posed as its own TEST-NET address (one refusal each in an offender ledger).
    const outsideClients = gateway.commands.filter((c) => c.startsWith('XCLIENT')).map((c) => /ADDR=(\S+)/.exec(c)![1]);
    assert.deepEqual(outsideClients, [...DEFAULT_OUTSIDE_IPS]);
    // Every message the audit sent carries the marker header.
    for (const t of gateway.transactions.filter((x) => x.data))
      assert.match(t.data!, new RegExp(`^${AUDIT_HEADER}: test-1 `, 'm'));
  });

  it('a weakened gateway fails exactly the probes for what was weakened', async () => {
    const weak: FakeGatewayOptions = {
      ...GOOD_GATEWAY,
      vrfy: '252 2.0.0 postmaster@example.test',
      openRelay: true,
      sizeLimit: null,
      virusInbound: '451 4.3.0 Message could not be scanned',
      virusOutbound: '451 4.3.0 Message could not be scanned',
      starttls: false,
    };
    const cfg = policy({ ...env, clamdPort: oldClamd.port });
    const { report, gateway } = await audit(weak, cfg);
    const failed = report.probes.filter((p) => !p.ok).map((p) => p.name);
    assert.deepEqual(failed, [
      'vrfy-refused',
      'open-relay-refused',
      'size-limit-enforced',
      'starttls',
      'virus-refused-inbound',
      'virus-held-outbound',
      'clamd',
    ]);
    assert.match(
      probe(report, 'open-relay-refused').detail,
      /^OPEN RELAY: RCPT TO:<relayguard-audit@relay-test\.invalid> accepted/,
    );
    // The open relay was only detected, never used: no message went to the foreign recipient.
    const relayTx = gateway.transactions.filter((t) => t.rcpts.includes('relayguard-audit@relay-test.invalid'));
    assert.equal(relayTx.length, 1);
    assert.equal(relayTx[0]!.data, undefined);
    assert.match(probe(report, 'size-limit-enforced').detail, /SIZE=1001 .* answered 250 2\.1\.0 Ok, not 552/);
    assert.match(probe(report, 'virus-refused-inbound').detail, /only deferred: 451 4\.3\.0/);
    assert.match(probe(report, 'clamd').detail, /older than 7 days/);
  });

  it('without XCLIENT from an internal address, outside probes say they could not be done', async () => {
    const { report } = await audit({ ...GOOD_GATEWAY, xclient: false }, policy(env));
    for (const name of ['open-relay-refused', 'spoofed-sender-refused', 'virus-refused-inbound']) {
      const p = probe(report, name);
      assert.equal(p.ok, false);
      assert.match(
        p.detail,
        /^not tested: the gateway offers no XCLIENT to us and this host \(127\.0\.0\.1\) is internal/,
      );
    }
    // These work as an internal client too.
    assert.match(probe(report, 'size-limit-enforced').detail, /outbound limit/);
    assert.equal(probe(report, 'size-limit-enforced').ok, true);
    assert.equal(probe(report, 'blocked-attachment-refused').ok, true);
    assert.equal(probe(report, 'virus-held-outbound').ok, true);
  });

  it('DNSBL: a list that answers its test point with an error code, or lists 127.0.0.1, fails', async () => {
    const bad = new FakeDns({
      '2.0.0.127.bl.test': { a: ['127.255.255.254'] },
      '1.0.0.127.bl.test': { a: ['127.0.0.2'] },
    });
    const server = await bad.start();
    try {
      const { report } = await audit(GOOD_GATEWAY, policy({ ...env, dns: server }));
      const p = probe(report, 'dnsbl:bl.test');
      assert.equal(p.ok, false);
      assert.match(p.detail, /test point 127\.0\.0\.2 is list error ELISTERROR \(127\.255\.255\.254\), not a listing/);
      bad.set('2.0.0.127.bl.test', { a: ['127.0.0.2'] });
      const again = probe((await audit(GOOD_GATEWAY, policy({ ...env, dns: server }))).report, 'dnsbl:bl.test');
      assert.equal(again.ok, false);
      assert.match(again.detail, /127\.0\.0\.1 \(never listed, RFC 5782\) reads as listed/);
    } finally {
      await bad.stop();
    }
  });

  it('relayguard not listening fails the milter probe; no antivirus rule means no clamd probe', async () => {
    const cfg = policy({ ...env, milterPort: 1 }, '');
    const { report } = await audit(GOOD_GATEWAY, cfg);
    assert.equal(probe(report, 'milter').ok, false);
    const noAv = parsePolicyText('local_domains: [example.test]\nnetworks:\n  internal: [127.0.0.0/8]\n', 'x.yaml');
    assert.ok(noAv.ok);
    const r2 = (await audit(GOOD_GATEWAY, noAv.config)).report;
    assert.equal(
      r2.probes.some((p) => p.name === 'clamd' || p.name.startsWith('dnsbl:')),
      false,
    );
  });

  describe('the held outbound message, with Postfix queue tools', () => {
    function tools(queueName: string): { tools: PostfixTools; calls: string } {
      const dir = mkdtempSync(join(tmpRoot, 'tools-'));
      const calls = join(dir, 'calls');
      writeFileSync(
        join(dir, 'postqueue'),
        `#!/bin/sh\necho "$@" >> ${calls}\necho '{"queue_name": "${queueName}", "queue_id": "HELD1", "sender": "x"}'\n`,
      );
      // Like Postfix's: postsuper reports what it did on stderr.
      writeFileSync(
        join(dir, 'postsuper'),
        `#!/bin/sh\necho "postsuper $@" >> ${calls}\necho 'postsuper: Deleted: 1 message' >&2\n`,
      );
      chmodSync(join(dir, 'postqueue'), 0o755);
      chmodSync(join(dir, 'postsuper'), 0o755);
      return {
        tools: {
          postqueue: join(dir, 'postqueue'),
          postsuper: join(dir, 'postsuper'),
          postcat: '/bin/false',
          postconf: '/bin/false',
          configDir: '/etc/pf-test',
          timeoutMs: 5000,
        },
        calls,
      };
    }

    it('found in the hold queue: verified and removed with postsuper -d ID hold', async () => {
      const t = tools('hold');
      const p = probe((await audit(GOOD_GATEWAY, policy(env), new PostfixMta(t.tools))).report, 'virus-held-outbound');
      assert.equal(p.ok, true);
      assert.equal(p.verified, true);
      assert.match(p.detail, /held as HELD1 \(hold queue\); removed: postsuper -d HELD1 hold/);
      assert.match(readFileSync(t.calls, 'utf8'), /^postsuper -c \/etc\/pf-test -d HELD1 hold$/m);
    });

    it('in another queue: not held, the probe fails and nothing is deleted', async () => {
      const t = tools('active');
      const p = probe((await audit(GOOD_GATEWAY, policy(env), new PostfixMta(t.tools))).report, 'virus-held-outbound');
      assert.equal(p.ok, false);
      assert.match(p.detail, /NOT HELD: it is in the active queue/);
      assert.doesNotMatch(readFileSync(t.calls, 'utf8'), /postsuper/);
    });
  });

  it('--bind: outside probes connect from those addresses in turn instead of posing with XCLIENT', async () => {
    const outsideOnly = policy(env).networks.internal.length; // 127.0.0.0/8
    assert.equal(outsideOnly, 1);
    // 127.0.0.2 is inside 127.0.0.0/8: refused as a source for outside probes.
    const inside = (await audit({ ...GOOD_GATEWAY, xclient: false }, policy(env), null, ['127.0.0.2'])).report;
    assert.match(
      probe(inside, 'open-relay-refused').detail,
      /^not tested: --bind 127\.0\.0\.2 is inside the policy's internal networks/,
    );
    const cfg = parsePolicyText(
      `server:\n  listen: inet:127.0.0.1:${env.milterPort}\nlocal_domains: [example.test]\nnetworks:\n  internal: [127.0.0.1/32]\n`,
      'bind.yaml',
    );
    assert.ok(cfg.ok);
    const { report, gateway } = await audit({ ...GOOD_GATEWAY, xclient: false }, cfg.config, null, [
      '127.0.0.2',
      '127.0.0.3',
    ]);
    for (const name of ['open-relay-refused', 'spoofed-sender-refused', 'virus-refused-inbound']) {
      const p = probe(report, name);
      assert.equal(p.ok, true, `${name}: ${p.detail}`);
      assert.match(p.detail, /this host's address 127\.0\.0\.[23] \(--bind/);
    }
    // The outside transactions came from the --bind addresses in turn, the outbound one from 127.0.0.1.
    const clients = new Set(gateway.transactions.map((t) => t.client.replace(/^::ffff:/, '')));
    assert.deepEqual([...clients].sort(), ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
    assert.equal(
      gateway.commands.some((c) => c.startsWith('XCLIENT')),
      false,
    );
  });

  describe("the held outbound message, in Sendmail's quarantine", () => {
    /** Sendmail's answer at end of data names the job; its queue IDs have 8 or more characters. */
    const SENDMAIL_GATEWAY: FakeGatewayOptions = {
      ...GOOD_GATEWAY,
      virusOutbound: '250 2.0.0 5B4DqRkL012345 Message accepted for delivery',
    };
    /** A queue directory as Sendmail keeps it, with the job quarantined (hf) or queued (qf). */
    function queue(prefix: 'hf' | 'qf'): { cf: string; dir: string } {
      const base = mkdtempSync(join(tmpRoot, 'sendmail-'));
      const dir = join(base, 'mqueue');
      mkdirSync(dir);
      writeFileSync(
        join(dir, `${prefix}5B4DqRkL012345`),
        'V8\nT1764331200\nS<postmaster@example.test>\nqvirus Eicar-Signature (ref abc-1)\nRpostmaster@example.test\nH?D?Date: x\n.\n',
      );
      writeFileSync(join(dir, 'df5B4DqRkL012345'), 'body\n');
      const cf = join(base, 'sendmail.cf');
      writeFileSync(cf, `O QueueDirectory=${dir}\n`);
      return { cf, dir };
    }

    it('quarantined: verified and its files deleted', async () => {
      const q = queue('hf');
      const held = new SendmailMta({ sendmail: '/bin/false', cf: q.cf });
      const p = probe((await audit(SENDMAIL_GATEWAY, policy(env), held)).report, 'virus-held-outbound');
      assert.equal(p.ok, true, p.detail);
      assert.equal(p.verified, true);
      assert.match(p.detail, /held as 5B4DqRkL012345 \(Sendmail quarantine\); removed/);
      assert.equal(existsSync(join(q.dir, 'hf5B4DqRkL012345')), false);
      assert.equal(existsSync(join(q.dir, 'df5B4DqRkL012345')), false);
    });

    it('queued for delivery but not quarantined: the probe fails and the job stays', async () => {
      const q = queue('qf');
      const held = new SendmailMta({ sendmail: '/bin/false', cf: q.cf });
      const p = probe((await audit(SENDMAIL_GATEWAY, policy(env), held)).report, 'virus-held-outbound');
      assert.equal(p.ok, false);
      assert.match(p.detail, /NOT HELD: it is in the mail queue, not quarantined/);
      assert.equal(existsSync(join(q.dir, 'qf5B4DqRkL012345')), true);
    });
  });
});

describe('audit messages', () => {
  it('assembles the standard EICAR test file at run time; the source never holds it whole', () => {
    const e = eicarTestFile();
    assert.equal(e.length, 68);
    assert.equal(createHash('md5').update(e).digest('hex'), '44d88612fea8a8f36de82e1278abb02f');
    const marker = ['EICAR', 'STANDARD', 'ANTIVIRUS', 'TEST', 'FILE'].join('-');
    for (const f of ['src/audit/messages.ts', 'dist/src/audit/messages.js']) {
      assert.equal(readFileSync(join(PACKAGE_ROOT, f), 'utf8').includes(marker), false, f);
    }
  });

  it('builds a MIME message with the marker header and a base64 attachment', () => {
    const m = auditMessage({
      id: 'ID',
      probe: 'p',
      from: 'a@x.test',
      to: 'b@y.test',
      subject: 's',
      text: 't',
      host: 'h',
      attachment: { filename: 'f.exe', contentType: 'application/octet-stream', content: Buffer.from('MZ') },
    }).toString('latin1');
    assert.match(m, /^X-Relayguard-Audit: ID p\r$/m);
    assert.match(m, /Content-Disposition: attachment; filename="f\.exe"\r\n\r\nTVo=\r\n/);
    assert.doesNotMatch(m.replace(/\r\n/g, ''), /\n/);
  });

  it('reads HOST:PORT', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:2525'), { host: '127.0.0.1', port: 2525 });
    assert.deepEqual(parseHostPort('mx.example.test'), { host: 'mx.example.test', port: 25 });
    assert.deepEqual(parseHostPort('[::1]:2525'), { host: '::1', port: 2525 });
    assert.throws(() => parseHostPort('a:b:c'));
    assert.throws(() => parseHostPort('host:70000'));
  });
});

describe('audit report formats', () => {
  const report: AuditReport = {
    ok: false,
    id: 'ID1',
    smtp: '127.0.0.1:2525',
    started: '2026-11-28T12:00:00.000Z',
    probes: [
      { name: 'banner', ok: true, detail: '220 mx ESMTP', ms: 3 },
      {
        name: 'open-relay-refused',
        ok: false,
        detail: 'OPEN RELAY: RCPT TO:<a@b> accepted & "sent" \u0001',
        ms: 1500,
        foreign: '250 2.1.5 Ok',
      },
    ],
  };

  it('table: one row per probe and a summary', () => {
    const t = formatTable(report).split('\n');
    assert.match(t[1]!, /^PROBE\s+RESULT\s+DETAIL$/);
    assert.match(t[2]!, /^banner\s+ok\s+220 mx ESMTP$/);
    assert.match(t[3]!, /^open-relay-refused\s+FAIL\s+OPEN RELAY/);
    assert.equal(t[4], '1 of 2 probes FAILED');
  });

  it('JSON: {ok, probes: [{name, ok, detail}]} with the extra evidence', () => {
    const j = JSON.parse(formatJson(report)) as { ok: boolean; probes: Array<Record<string, unknown>> };
    assert.equal(j.ok, false);
    assert.deepEqual(Object.keys(j.probes[0]!).slice(0, 3), ['name', 'ok', 'detail']);
    assert.equal(j.probes[1]!.foreign, '250 2.1.5 Ok');
  });

  it('JUnit XML: a testcase per probe, failures marked, text escaped', () => {
    const x = formatJunit(report);
    assert.match(
      x,
      /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<testsuites name="relayguard audit" tests="2" failures="1"/,
    );
    assert.match(
      x,
      /<testcase classname="relayguard\.audit" name="banner" time="0\.003"><system-out>220 mx ESMTP<\/system-out><\/testcase>/,
    );
    assert.match(
      x,
      /<testcase classname="relayguard\.audit" name="open-relay-refused" time="1\.500"><failure message="OPEN RELAY: RCPT TO:&lt;a@b&gt; accepted &amp; &quot;sent&quot; " type="ProbeFailed">/,
    );
    assert.equal(xmlEscape('a\u0000b\u{1F600}'), 'ab\u{1F600}');
    // Balanced: every opened testcase is closed.
    assert.equal((x.match(/<testcase /g) ?? []).length, (x.match(/<\/testcase>/g) ?? []).length);
  });
});
