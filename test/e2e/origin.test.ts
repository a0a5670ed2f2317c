// The origin rule through the real Postfix, with .mmdb files written by MaxMind's Perl writer at
// test time: XCLIENT addresses in allowed and denied countries (IPv4 and IPv6), a denied network
// inside an allowed country, internal and authenticated clients (never judged), a database
// replaced while relayguard runs (picked up without a restart), the age metric, `relayguard
// check`, and the score action feeding the offender ledger until the address is banned.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseDocument } from 'yaml';
import { mmdblookup, writeMmdb, type MmdbSpec } from '../support/mmdb-writer.js';
import {
  clearQueues,
  ensureStack,
  message,
  postconf,
  referencePolicy,
  runRelayguard,
  smtp,
  stack,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
  type SmtpResult,
  type XclientAttributes,
} from './harness.js';

const dir = join(stack.baseDir, 'relayguard', `origin-${process.pid}`);
mkdirSync(dir, { recursive: true });
const countryDb = join(dir, 'GeoLite2-Country.mmdb');
const asnDb = join(dir, 'GeoLite2-ASN.mmdb');

const country = (iso: string) => ({ country: { iso_code: iso } });
const as = (n: number, org: string) => ({ autonomous_system_number: n, autonomous_system_organization: org });

function countries(moveDeToRu = false): MmdbSpec {
  return {
    type: 'GeoLite2-Country',
    networks: [
      { network: '100.64.1.0/24', data: country(moveDeToRu ? 'RU' : 'DE') },
      { network: '100.64.2.0/24', data: country('RU') },
      { network: '100.64.5.0/24', data: country('DE') },
      { network: '2001:db8:de::/48', data: country('DE') },
      { network: '2001:db8:ee::/48', data: country('RU') },
      // Internal networks placed in a denied country: they must never be judged anyway.
      { network: '10.0.0.0/8', data: country('RU') },
      { network: '127.0.0.0/8', data: country('RU') },
    ],
  };
}
const ASNS: MmdbSpec = {
  type: 'GeoLite2-ASN',
  networks: [
    { network: '100.64.1.0/24', data: as(64500, 'Example Telekom AG') },
    { network: '100.64.2.0/24', data: as(64501, 'Example Russian ISP') },
    { network: '100.64.5.0/24', data: as(64666, 'Bulletproof Hosting Ltd') },
    { network: '2001:db8:de::/48', data: as(64500, 'Example Telekom AG') },
    { network: '2001:db8:ee::/48', data: as(64501, 'Example Russian ISP') },
  ],
};

/** The reference gateway's policy with an origin block. */
function policyWith(origin: Record<string, unknown>): string {
  const doc = parseDocument(readFileSync(referencePolicy, 'utf8'));
  doc.setIn(
    ['rules', 'origin'],
    doc.createNode({
      mode: 'enforce',
      databases: [countryDb, asnDb],
      reload_check: '1s',
      max_age: '30d',
      exempt: ['partner'],
      ...origin,
    }),
  );
  return doc.toString();
}

/** XCLIENT wants IPv6 addresses as IPV6:..., Postfix hands the milter the bare address. */
function send(from: string, xclient: XclientAttributes, body = 'origin test'): Promise<SmtpResult> {
  const to = 'user@example.test';
  return smtp({ from, to: [to], data: message({ from, to, body }), xclient });
}

function assertRefusedAtMail(r: SmtpResult, text: RegExp): void {
  // Greeted normally: the rule speaks at MAIL, where Postfix shows a milter's text.
  assert.equal(r.xclientReply?.code, 220, r.xclientReply?.full ?? r.error);
  assert.equal(r.mailReply?.code, 554, r.mailReply?.full ?? r.error);
  assert.equal(r.mailReply?.enhanced, '5.7.1');
  assert.match(r.mailReply.text, text);
  assert.match(r.mailReply.text, /\(ref [0-9a-z-]+\)$/);
  assert.equal(r.ok, false);
}

async function assertDelivered(r: SmtpResult, body = 'origin test'): Promise<string> {
  assert.equal(r.mailReply?.code, 250, r.mailReply?.full ?? r.error);
  assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
  const delivered = await waitForDelivery(r.queueId!);
  assert.match(delivered, new RegExp(body));
  return delivered;
}

before(async () => {
  await ensureStack();
  await clearQueues();
  writeMmdb(countries(), countryDb);
  writeMmdb(ASNS, asnDb);
  // The files as libmaxminddb reads them: the test data is what the test thinks it is.
  assert.equal(mmdblookup(countryDb, '100.64.2.9', 'country', 'iso_code'), 'RU');
  assert.equal(mmdblookup(countryDb, '2001:db8:ee::9', 'country', 'iso_code'), 'RU');
  assert.equal(mmdblookup(asnDb, '100.64.5.9', 'autonomous_system_number'), '64666');
});

describe('origin: allow DE/AT/CH, deny "*Bulletproof*" networks, refuse at MAIL', () => {
  let rg: RelayguardProcess;

  before(async () => {
    rg = await startRelayguard({
      configText: policyWith({ inbound: { allow_countries: ['DE', 'AT', 'CH'], deny_asns: ['*Bulletproof*'] } }),
    });
  });
  after(async () => {
    await rg?.stop();
  });

  test('a client from a country not allowed (RU): 554 5.7.1 at MAIL naming country and AS, with the reference', async () => {
    const r = await send('sender@outside.test', { addr: '100.64.2.9' });
    assertRefusedAtMail(r, /Client host \[100\.64\.2\.9\] refused: mail from country RU, AS64501 is not accepted here/);
    const ref = /\(ref ([0-9a-z-]+)\)$/.exec(r.mailReply!.text)![1]!;
    // The reference finds the decision, which names the place and the list entry that decided.
    const line = await rg.waitForLog(new RegExp(`"ref":"${ref}"`));
    const decision = JSON.parse(line) as {
      rule: string;
      trace: Array<{ rule: string; details?: Record<string, unknown> }>;
    };
    assert.equal(decision.rule, 'origin');
    assert.deepEqual(decision.trace.find((t) => t.rule === 'origin')?.details, {
      origin: 'RU AS64501 (Example Russian ISP)',
      country: 'RU',
      asn: 64501,
      as_org: 'Example Russian ISP',
      because: 'not on the allow lists',
    });
  });

  test('a denied network inside an allowed country is refused; an allowed country passes with its place in the trace header', async () => {
    assertRefusedAtMail(
      await send('sender@outside.test', { addr: '100.64.5.9' }),
      /mail from country DE, AS64666 is not accepted here/,
    );
    const v4 = await assertDelivered(await send('sender@outside.test', { addr: '100.64.1.9' }));
    assert.match(v4, /^X-Relayguard: direction=inbound; .*; origin=DE\/AS64500$/m);
  });

  test('IPv6 clients: RU refused, DE delivered', async () => {
    // The test Postfix speaks IPv4 only, and then refuses IPv6 XCLIENT addresses.
    const restore = await postconf({ inet_protocols: 'all' });
    try {
      assertRefusedAtMail(
        await send('sender@outside.test', { addr: 'IPV6:2001:db8:ee::9' }),
        /Client host \[2001:db8:ee::9\] refused: mail from country RU, AS64501/,
      );
      const v6 = await assertDelivered(await send('sender@outside.test', { addr: 'IPV6:2001:db8:de::9' }));
      assert.match(v6, /^X-Relayguard: direction=inbound; .*; origin=DE\/AS64500$/m);
    } finally {
      await restore();
    }
  });

  test('never judged: an authenticated client from the denied country, internal clients placed in it', async () => {
    await assertDelivered(await send('alice@example.test', { addr: '100.64.2.9', login: 'alice' }));
    await assertDelivered(await send('bob@example.test', { addr: '10.1.2.3' }));
    await assertDelivered(await send('bob@example.test', { addr: '127.0.0.5' }));
  });

  test('relayguard check --client-ip shows the place and the same refusal', async () => {
    const eml = join(dir, 'check.eml');
    writeFileSync(eml, 'From: sender@outside.test\r\nSubject: check\r\n\r\nhello\r\n');
    const r = await runRelayguard([
      'check',
      '--config',
      rg.configPath,
      '--client-ip',
      '100.64.2.9',
      '--from',
      'sender@outside.test',
      '--rcpt',
      'user@example.test',
      eml,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^origin: RU AS64501 \(Example Russian ISP\)$/m);
    assert.match(
      r.stdout,
      /^reply: 554 5\.7\.1 Client host \[100\.64\.2\.9\] refused: mail from country RU, AS64501 is not accepted here \(ref offline-\w+\)$/m,
    );
    const ok = await runRelayguard([
      'check',
      '--config',
      rg.configPath,
      '--client-ip',
      '2001:db8:de::1',
      '--from',
      'sender@outside.test',
      '--rcpt',
      'user@example.test',
      eml,
    ]);
    assert.match(ok.stdout, /^origin: DE AS64500 \(Example Telekom AG\)$/m);
    assert.match(ok.stdout, /^action: accept$/m);
  });

  test('the database age is a metric', async () => {
    const raw = await (await fetch(`http://127.0.0.1:${stack.metricsPort}/metrics`)).text();
    const m = new RegExp(
      `^relayguard_origin_database_age_seconds\\{database="${countryDb.replace(/[.]/g, '\\.')}"\\} (\\d+)$`,
      'm',
    ).exec(raw);
    assert.ok(
      m,
      raw
        .split('\n')
        .filter((l) => l.includes('origin'))
        .join('\n'),
    );
    assert.ok(Number(m[1]) < 600, `a database written just now is ${m[1]} s old`);
    assert.match(raw, /^relayguard_origin_verdicts_total\{result="out_of_place",action="reject"\} [1-9]/m);
  });

  test('a replaced database file is picked up without a restart', async () => {
    try {
      // geoipupdate's way: a new file renamed over the old one. 100.64.1.0/24 moves to RU.
      writeMmdb(countries(true), countryDb);
      await new Promise((r) => setTimeout(r, 1200)); // reload_check is 1 s
      assertRefusedAtMail(await send('sender@outside.test', { addr: '100.64.1.9' }), /mail from country RU, AS64500/);
      await rg.waitForLog(/origin: reloaded .*GeoLite2-Country\.mmdb \(GeoLite2-Country, built/);
    } finally {
      writeMmdb(countries(), countryDb);
    }
    await new Promise((r) => setTimeout(r, 1200));
    await assertDelivered(await send('sender@outside.test', { addr: '100.64.1.9' }));
  });
});

describe('origin: action score feeds the offender ledger (threshold 5)', () => {
  let rg: RelayguardProcess;

  before(async () => {
    rg = await startRelayguard({
      configText: policyWith({ inbound: { allow_countries: ['DE'], action: 'score', score: 3 } }),
    });
  });
  after(async () => {
    await rg?.stop();
  });

  test('out of place is delivered with the score in the trace header; twice is 6 offences: banned at connect; offenders lists it under RU', async () => {
    const first = await assertDelivered(await send('sender@outside.test', { addr: '100.64.2.20' }));
    assert.match(first, /^X-Relayguard: direction=inbound; .*; origin=RU\/AS64501; origin-score=3$/m);
    await assertDelivered(await send('sender@outside.test', { addr: '100.64.2.20' }));
    const banned = await send('sender@outside.test', { addr: '100.64.2.20' });
    assert.equal(banned.xclientReply?.code, 554, banned.xclientReply?.full ?? banned.error);
    assert.match(
      banned.mailReply?.text ?? '',
      /Client host \[100\.64\.2\.20\] banned until .* after repeated policy violations/,
    );
    // An allowed client scores nothing.
    await assertDelivered(await send('sender@outside.test', { addr: '100.64.1.20' }));

    const r = await runRelayguard(['offenders', '--config', rg.configPath, '--country', 'RU', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = (
      JSON.parse(r.stdout) as {
        offenders: Array<{ ip: string; country: string; banned: boolean; offences: number; last_kind: string }>;
      }
    ).offenders;
    assert.deepEqual(
      rows.map((o) => [o.ip, o.country, o.banned, o.offences, o.last_kind]),
      [['100.64.2.20', 'RU', true, 5, 'origin']],
    );
    const de = await runRelayguard(['offenders', '--config', rg.configPath, '--country', 'DE', '--json']);
    assert.deepEqual((JSON.parse(de.stdout) as { offenders: unknown[] }).offenders, []);
    assert.equal((await runRelayguard(['unban', '100.64.2.20', '--config', rg.configPath])).code, 0);
  });
});
