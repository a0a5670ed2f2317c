// The origin rule: .mmdb files written by MaxMind's own Perl writer at test time, read by
// mmdb-lib and cross-checked with libmaxminddb's mmdblookup; the rule through the real engine and
// Conversation, with the offender ledger in a temporary state directory.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Transport from 'winston-transport';
import winston from 'winston';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { policySchema } from '../../src/rules/policy-schema.js';
import { Auditor } from '../../src/audit/probes.js';
import type { ProbeOutcome } from '../../src/policy/rule-parts.js';
import { kitClient, kitPolicy } from '../support/rule-kit.js';
import type { PolicyConfig } from '../../src/rules/policy-schema.js';
import { openExistingOffenderLedger } from '../../src/deps/offender-ledger.js';
import { registry } from '../../src/ops/metrics.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { ledgerPolicyOf, offendersSchema } from '../../src/rules/offenders.js';
import { MAX_DATABASE_BYTES, MmdbFile, readOrigin } from '../../src/rules/origin/database.js';
import { directionSchema, OriginJudge, orgPattern } from '../../src/rules/origin/judge.js';
import { originSchema } from '../../src/rules/origin.js';
import { Conversation } from '../../src/session/conversation.js';
import { ASNS, COUNTRIES, mmdblookup, writeMmdb, type MmdbSpec } from '../support/mmdb-writer.js';

/** The audit's probes of the origin rule (no gateway is contacted to build or run them). */
const originProbes = (config: PolicyConfig) =>
  new Auditor({ host: '127.0.0.1', port: 25, config, rcpt: 'audit@example.test', id: 'test', held: null })
    .ruleProbes()
    .filter((p) => p.name.startsWith('origin-db:'));

const root = mkdtempSync(join(tmpdir(), 'rg-origin-'));
after(() => rmSync(root, { recursive: true, force: true }));
const countryDb = writeMmdb(COUNTRIES, join(root, 'country.mmdb'));
const asnDb = writeMmdb(ASNS, join(root, 'asn.mmdb'));

/** A logger that keeps its lines, to assert on warnings. */
function capturingLog() {
  const lines: Array<{ level: string; message: string }> = [];
  const t = new (class extends Transport {
    override log(info: { level: string; message: string }, next: () => void) {
      lines.push({ level: info.level, message: info.message });
      next();
    }
  })();
  return { log: winston.createLogger({ level: 'debug', transports: [t] }), lines };
}

const policies: CompiledPolicy[] = [];
after(async () => {
  for (const p of policies) await p.close();
});
let dirs = 0;

function compile(
  origin: Record<string, unknown>,
  opts: { offenders?: Record<string, unknown>; log?: winston.Logger } = {},
) {
  const stateDir = join(root, `s${++dirs}`);
  const policy = kitPolicy(
    { origin: { databases: [countryDb, asnDb], ...origin }, ...(opts.offenders ? { offenders: opts.offenders } : {}) },
    {
      server: { state_dir: stateDir },
      networks: { internal: ['127.0.0.0/8'], groups: { partner: ['198.51.100.128/25'] } },
    },
    opts.log ? { log: opts.log } : {},
  );
  policies.push(policy);
  return { policy, stateDir };
}

/** Connect, EHLO, MAIL FROM: the outcome of connect and of MAIL. */
async function session(policy: CompiledPolicy, ip: string, auth?: string) {
  const { c, connect } = await kitClient(policy, { ip, helo: null });
  const connectTrace = c.currentTrace;
  await c.helo('client.test');
  if (auth) c.macros.set('M', [['{auth_authen}', auth]]);
  const mail = await c.mail(['<sender@outside.test>']);
  return { c, connect, mail, connectTrace, mailTrace: c.currentTrace };
}

describe('origin databases: mmdb-lib agrees with libmaxminddb on files from the Perl writer', () => {
  const samples = [
    '192.0.2.1',
    '198.51.100.7',
    '198.51.100.200',
    '203.0.113.5',
    '203.0.113.200',
    '100.64.3.4',
    '2001:db8:de::25',
    '2001:db8:ee:1::1',
    '::ffff:192.0.2.9',
    '8.8.8.8',
    '2001:db8:ff::1',
  ];
  for (const ip of samples) {
    it(`${ip}`, () => {
      const c = new MmdbFile(countryDb, 60_000);
      const a = new MmdbFile(asnDb, 60_000);
      c.load();
      a.load();
      const country = c.lookup(ip)?.country ?? null;
      const asn = a.lookup(ip)?.asn ?? null;
      assert.equal(country, mmdblookup(countryDb, ip, 'country', 'iso_code'));
      assert.equal(asn === null ? null : String(asn), mmdblookup(asnDb, ip, 'autonomous_system_number'));
    });
  }

  it('the file metadata gives the type and build date', () => {
    const f = new MmdbFile(writeMmdb({ ...COUNTRIES, build_epoch: 1_700_000_000 }, join(root, 'dated.mmdb')), 60_000);
    f.load();
    assert.deepEqual(f.status(), {
      path: join(root, 'dated.mmdb'),
      type: 'GeoLite2-Country',
      builtAt: 1_700_000_000_000,
      error: null,
    });
  });

  it('reads the IPinfo lite layout (country_code, asn "AS…", as_name) from one file', () => {
    const spec: MmdbSpec = {
      type: 'ipinfo lite',
      networks: [
        {
          network: '192.0.2.0/24',
          data: {
            country: 'Germany',
            country_code: 'DE',
            continent_code: 'EU',
            asn: 'AS64500',
            as_name: 'Example Telekom AG',
            as_domain: 'example.test',
          },
        },
      ],
    };
    const f = new MmdbFile(writeMmdb(spec, join(root, 'ipinfo.mmdb')), 60_000);
    f.load();
    assert.deepEqual(f.lookup('192.0.2.77'), { country: 'DE', asn: 64500, org: 'Example Telekom AG' });
  });

  it('records without the expected fields give no facts, not made-up ones', () => {
    assert.deepEqual(readOrigin({ country: { iso_code: 'Germany' }, asn: 'ASX' }), {});
    assert.deepEqual(readOrigin('DE'), {});
    assert.deepEqual(readOrigin({ registered_country: { iso_code: 'fr' } }), { country: 'FR' });
  });

  it('a file that is not a MaxMind DB is refused with its name', () => {
    const bad = join(root, 'bad.mmdb');
    writeFileSync(bad, 'not a database\n');
    assert.throws(() => new MmdbFile(bad, 60_000).load(), new RegExp(`${bad}: not a MaxMind DB file`));
  });
});

describe('origin judge: the order of the lists', () => {
  const judge = (cfg: Record<string, unknown>) => new OriginJudge(directionSchema.parse(cfg));

  it('deny_asns wins over an allowed country; allow_asns wins over a denied country', () => {
    const j = judge({
      allow_countries: ['DE'],
      deny_countries: ['RU'],
      allow_asns: [64502],
      deny_asns: ['*bulletproof*'],
    });
    assert.deepEqual(j.judge({ country: 'DE', asn: 64501, org: 'Bulletproof Hosting Ltd' }), {
      outOfPlace: true,
      because: 'deny_asns: *bulletproof*',
    });
    assert.deepEqual(j.judge({ country: 'RU', asn: 64502 }), { outOfPlace: false, because: 'allow_asns: AS64502' });
    assert.deepEqual(j.judge({ country: 'RU', asn: 1 }), { outOfPlace: true, because: 'deny_countries: RU' });
    assert.deepEqual(j.judge({ country: 'DE', asn: 1 }), { outOfPlace: false, because: 'allow_countries: DE' });
    assert.deepEqual(j.judge({ country: 'FR' }), { outOfPlace: true, because: 'not on the allow lists' });
  });

  it('an address the databases do not place follows `unknown` (allow by default)', () => {
    assert.equal(judge({ allow_countries: ['DE'] }).judge({}).outOfPlace, false);
    assert.equal(judge({ allow_countries: ['DE'], unknown: 'deny' }).judge({}).outOfPlace, true);
    // Known AS but no country: allow_countries cannot say, so it is "unknown" too.
    assert.equal(judge({ allow_countries: ['DE'], unknown: 'deny' }).judge({ asn: 5 }).outOfPlace, true);
    assert.equal(judge({ allow_countries: ['DE'] }).judge({ asn: 5 }).outOfPlace, false);
    // Without allow lists only the deny lists count.
    assert.equal(judge({ deny_countries: ['RU'], unknown: 'deny' }).judge({}).outOfPlace, false);
  });

  it('organisation patterns: * is any run, case ignored, whole name, no regex', () => {
    assert.equal(orgPattern('*hosting*')('Example Cloud Hosting LLC'), true);
    assert.equal(orgPattern('Example*')('example telekom ag'), true);
    assert.equal(orgPattern('Example')('Example Telekom AG'), false);
    assert.equal(orgPattern('*AG')('Example Telekom AG'), true);
    assert.equal(orgPattern('a*a')('a'), false);
    assert.equal(orgPattern('(.*)+$')('(.*)+$'), true);
    assert.equal(orgPattern('(.*)+$')('anything'), false);
    // A hostile pattern against a long name stays linear.
    const started = performance.now();
    assert.equal(orgPattern(`${'*a'.repeat(100)}*b`)('a'.repeat(100_000)), false);
    assert.ok(performance.now() - started < 500);
  });

  it('the policy is checked: country codes, AS numbers, contradictions', () => {
    const issues = (cfg: Record<string, unknown>) => {
      const r = originSchema.safeParse({ databases: ['x.mmdb'], inbound: cfg });
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    assert.deepEqual(issues({ deny_countries: ['UK', 'XX', 'Germany'] }), [
      'inbound.deny_countries.0: "UK" is written GB in ISO 3166 and in the databases',
      'inbound.deny_countries.1: "XX" is not an assigned ISO 3166 country code',
      'inbound.deny_countries.2: "GERMANY" is not a two-letter ISO 3166 country code',
    ]);
    assert.deepEqual(issues({ allow_countries: ['de'], deny_countries: ['DE'] }), [
      'inbound.deny_countries: DE is both allowed and denied',
    ]);
    assert.deepEqual(issues({ deny_asns: ['AS99999999999'] }), ['inbound.deny_asns.0: AS numbers go up to 4294967295']);
    assert.deepEqual(
      originSchema.parse({ databases: ['x'], inbound: { deny_asns: ['as64500', 64501, 'Some Org*'] } }).inbound
        .deny_asns,
      [64500, 64501, 'Some Org*'],
    );
    assert.deepEqual(issues({ action: 'drop' }).length, 1);
    assert.deepEqual(issues({ score: 0 }).length, 1);
  });
});

describe('origin rule through the engine', () => {
  const denyRu = { inbound: { allow_countries: ['DE', 'AT'], deny_asns: ['*Bulletproof*'] } };

  it('a client from a country not allowed is refused at MAIL with 554 5.7.1, the place and the reference', async () => {
    const { policy } = compile(denyRu);
    const { connect, mail, connectTrace } = await session(policy, '203.0.113.5');
    assert.equal(connect.action, 'continue');
    const trace = connectTrace.find((t) => t.rule === 'origin');
    assert.deepEqual(trace?.details, {
      origin: 'KP AS64503 (Example Cloud Hosting LLC)',
      country: 'KP',
      asn: 64503,
      as_org: 'Example Cloud Hosting LLC',
    });
    assert.equal(mail.action, 'reject');
    assert.equal(mail.rule, 'origin');
    assert.equal(mail.reply?.code, 554);
    assert.equal(mail.reply?.enhanced, '5.7.1');
    assert.match(
      mail.reply.text,
      /^Client host \[203\.0\.113\.5\] refused: mail from country KP, AS64503 is not accepted here \(ref [\w-]+\)$/,
    );
  });

  it('IPv6: a denied network in an allowed country is refused, an allowed one passes', async () => {
    const { policy } = compile({ inbound: { allow_countries: ['DE'], deny_asns: [64501] } });
    assert.equal((await session(policy, '2001:db8:ee::9')).mail.action, 'reject');
    assert.equal((await session(policy, '2001:db8:de::9')).mail.action, 'continue');
  });

  it('allowed countries pass; internal, authenticated and partner clients are never judged', async () => {
    const { policy } = compile({ inbound: { allow_countries: ['DE'] } });
    const allowed = await session(policy, '192.0.2.10');
    assert.equal(allowed.mail.action, 'continue');
    assert.equal(allowed.mailTrace.find((t) => t.rule === 'origin')?.details?.because, 'allow_countries: DE');
    const internal = await session(policy, '127.0.0.5');
    assert.equal(internal.mail.action, 'continue');
    assert.deepEqual(internal.connectTrace.find((t) => t.rule === 'origin')?.details, { exempt: 'internal network' });
    const roaming = await session(policy, '198.51.100.7', 'alice');
    assert.equal(roaming.mail.action, 'continue');
    assert.deepEqual(roaming.mailTrace.find((t) => t.rule === 'origin')?.details, { exempt: 'authenticated' });
    // The same address without a login is refused: the exemption is the login, not the address.
    assert.equal((await session(policy, '198.51.100.7')).mail.action, 'reject');
    const { policy: withPartner } = compile({ exempt: ['partner'], inbound: { allow_countries: ['DE'] } });
    const partner = await session(withPartner, '198.51.100.200');
    assert.equal(partner.mail.action, 'continue');
    assert.deepEqual(partner.mailTrace.find((t) => t.rule === 'origin')?.details, { exempt: 'network group partner' });
  });

  it('tempfail defers with 450 4.7.1; monitor logs and lets the client through', async () => {
    const { policy } = compile({ inbound: { deny_countries: ['RU'], action: 'tempfail' } });
    const deferred = (await session(policy, '198.51.100.7')).mail;
    assert.equal(deferred.action, 'tempfail');
    assert.equal(deferred.reply?.code, 450);
    assert.equal(deferred.reply?.enhanced, '4.7.1');
    const { log, lines } = capturingLog();
    const { policy: watching } = compile({ inbound: { deny_countries: ['RU'], action: 'monitor' } }, { log });
    const c = new Conversation({ policy: watching, log });
    await c.connect({ hostname: 'x', family: 'inet', port: 1, address: '198.51.100.7' });
    const mail = await c.mail(['<a@outside.test>']);
    assert.equal(mail.action, 'continue');
    assert.equal(c.currentTrace.find((t) => t.rule === 'origin')?.details?.out_of_place, true);
    assert.ok(
      lines.some((l) =>
        /origin: 198\.51\.100\.7 from RU AS64501 .* is out of place \(deny_countries: RU\); action monitor/.test(
          l.message,
        ),
      ),
    );
  });

  it('a custom reply text gets the placeholders', async () => {
    const { policy } = compile({
      inbound: {
        deny_countries: ['RU'],
        reply: 'No mail from {country} ({asn}) for [{ip}], see https://example.test/geo',
      },
    });
    assert.match(
      (await session(policy, '198.51.100.7')).mail.reply!.text,
      /^No mail from RU \(AS64501\) for \[198\.51\.100\.7\], see https:\/\/example\.test\/geo \(ref /,
    );
  });

  it('score: offences in the offender ledger with the country, once per connection; enough of them ban the address', async () => {
    const { policy, stateDir } = compile(
      { inbound: { allow_countries: ['DE'], action: 'score', score: 2 } },
      { offenders: { threshold: 4 } },
    );
    const first = await session(policy, '203.0.113.200');
    assert.equal(first.mail.action, 'continue');
    assert.equal(first.mailTrace.find((t) => t.rule === 'origin')?.details?.score, 2);
    // A second MAIL on the same connection does not score again.
    await first.c.mail(['<again@outside.test>']);
    const ledger = (await openExistingOffenderLedger(
      { state_dir: stateDir },
      ledgerPolicyOf(offendersSchema.parse({ threshold: 4 })),
    ))!;
    try {
      let rows = await ledger.list();
      assert.deepEqual(
        rows.map((r) => [r.ip, r.count, r.country, r.lastKind, r.bannedUntil !== null]),
        [['203.0.113.200', 2, 'AT', 'origin', false]],
      );
      await session(policy, '203.0.113.200');
      rows = await ledger.list();
      assert.deepEqual(
        rows.map((r) => [r.ip, r.count, r.country, r.bannedUntil !== null]),
        [['203.0.113.200', 4, 'AT', true]],
      );
      // Now the offenders rule refuses it at connect.
      assert.equal((await session(policy, '203.0.113.200')).connect.rule, 'offenders');
      // An allowed client earns nothing.
      await session(policy, '192.0.2.10');
      assert.equal((await ledger.list()).length, 1);
    } finally {
      await ledger.close();
    }
  });

  it('score: the trace header carries the place and the score for a downstream filter', async () => {
    const config = policySchema.parse({
      local_domains: ['example.test'],
      rules: {
        trace_header: {},
        origin: { databases: [countryDb, asnDb], inbound: { allow_countries: ['DE'], action: 'score' } },
      },
    });
    const p = new CompiledPolicy(config, 't.yaml', winston.createLogger({ silent: true }));
    policies.push(p);
    const c = new Conversation({ policy: p, log: winston.createLogger({ silent: true }) });
    await c.connect({ hostname: 'x', family: 'inet', port: 1, address: '198.51.100.7' });
    await c.mail(['<a@outside.test>']);
    await c.rcpt(['<u@example.test>']);
    await c.data();
    await c.eoh();
    const eom = await c.eom(Buffer.from('x\r\n'));
    const header = eom.mods.find((m) => m.type === 'addHeader' && m.name === 'X-Relayguard') as
      { value: string } | undefined;
    assert.match(header?.value ?? '', /; origin=RU\/AS64501; origin-score=1$/);
  });

  it('the offender ledger records the country of an address banned for other refusals', async () => {
    // A blocked sender earns the offence; the origin rule only monitors (it places the address).
    const stateDir = join(root, `s${++dirs}`);
    const p = new CompiledPolicy(
      policySchema.parse({
        server: { state_dir: stateDir },
        local_domains: ['example.test'],
        rules: {
          blocklists: { blocked_domains: ['blocked.test'] },
          offenders: { threshold: 1 },
          origin: { mode: 'monitor', databases: [countryDb, asnDb], inbound: {} },
        },
      }),
      't.yaml',
      winston.createLogger({ silent: true }),
    );
    policies.push(p);
    const c = new Conversation({ policy: p, log: winston.createLogger({ silent: true }) });
    await c.connect({ hostname: 'x', family: 'inet6', port: 1, address: '2001:db8:ee::77' });
    assert.equal((await c.mail(['<x@blocked.test>'])).action, 'reject');
    await new Promise((r) => setImmediate(r));
    const ledger = (await openExistingOffenderLedger(
      { state_dir: stateDir },
      ledgerPolicyOf(offendersSchema.parse({ threshold: 1 })),
    ))!;
    try {
      assert.deepEqual(
        (await ledger.list()).map((r) => [r.ip, r.country, r.bannedUntil !== null]),
        [['2001:db8:ee::77', 'RU', true]],
      );
    } finally {
      await ledger.close();
    }
  });
});

describe('origin databases: missing, replaced, old', () => {
  it('enforcing, a missing file stops the policy with the file name; monitoring, it is logged and skipped', async () => {
    const missing = join(root, 'nope.mmdb');
    assert.throws(
      () => compile({ databases: [missing], inbound: { deny_countries: ['RU'] } }),
      new RegExp(`rule origin: database ${missing}: file not found \\(download it first, see docs/rules/origin.md\\)`),
    );
    const { log, lines } = capturingLog();
    const { policy } = compile(
      { mode: 'monitor', databases: [missing], reload_check: 0, inbound: { deny_countries: ['RU'] } },
      { log },
    );
    assert.ok(lines.some((l) => l.level === 'warn' && l.message.includes(`database ${missing} not loaded`)));
    const before = await session(policy, '198.51.100.7');
    assert.deepEqual(before.connectTrace.find((t) => t.rule === 'origin')?.details, { origin: 'unknown' });
    // The file appears (a first geoipupdate run): picked up without a reload.
    writeMmdb(COUNTRIES, missing);
    const afterwards = await session(policy, '198.51.100.7');
    const entry = afterwards.mailTrace.find((t) => t.rule === 'origin');
    assert.deepEqual([entry?.action, entry?.monitor, entry?.details?.country], ['reject', true, 'RU']);
    assert.equal(afterwards.mail.action, 'continue');
  });

  it('validate: a missing or broken file is an error at its line when enforcing, not when monitoring', () => {
    const bad = join(root, 'broken.mmdb');
    writeFileSync(bad, 'x');
    const text = (mode: string) =>
      `local_domains: [example.test]\nrules:\n  origin:\n    mode: ${mode}\n    databases:\n      - ${countryDb}\n      - ${join(root, 'absent.mmdb')}\n      - ${bad}\n    inbound: { deny_countries: [RU] }\n`;
    const r = parsePolicyText(text('enforce'), 'p.yaml');
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.deepEqual(
      r.errors.map((e) => [e.line, e.path]),
      [
        [7, 'rules.origin.databases.1'],
        [8, 'rules.origin.databases.2'],
      ],
    );
    assert.equal(
      r.errors[0]!.message,
      `rules.origin.databases.1: ${join(root, 'absent.mmdb')}: file not found (download it first, see docs/rules/origin.md)`,
    );
    assert.match(
      r.errors[1]!.message,
      new RegExp(`^rules\\.origin\\.databases\\.2: ${bad}: not a MaxMind DB file \\(.+\\)$`),
    );
    assert.equal(parsePolicyText(text('monitor'), 'p.yaml').ok, true);
  });

  it('a replaced file is picked up at the next check; a broken replacement keeps the data before', async () => {
    const file = writeMmdb(COUNTRIES, join(root, 'swap.mmdb'));
    const { log, lines } = capturingLog();
    const { policy } = compile({ databases: [file], reload_check: 0, inbound: { deny_countries: ['RU'] } }, { log });
    assert.equal((await session(policy, '192.0.2.10')).mail.action, 'continue');
    // The update moves 192.0.2.0/24 to RU.
    writeMmdb({ ...COUNTRIES, networks: [{ network: '192.0.2.0/24', data: { country: { iso_code: 'RU' } } }] }, file);
    assert.equal((await session(policy, '192.0.2.10')).mail.action, 'reject');
    assert.ok(lines.some((l) => l.message.startsWith(`origin: reloaded ${file} (GeoLite2-Country`)));
    // A truncated download renamed into place: logged, the data before stays.
    writeFileSync(file, 'garbage');
    assert.equal((await session(policy, '192.0.2.10')).mail.action, 'reject');
    assert.ok(
      lines.some(
        (l) =>
          l.level === 'error' &&
          l.message.startsWith(`origin: ${file}: cannot use the new version (not a MaxMind DB file (`) &&
          l.message.endsWith('); keeping the data loaded before'),
      ),
    );
  });

  it('a damaged data section places nobody: the client is unknown (not a 4xx for our broken file), said once', async () => {
    const good = readFileSync(countryDb);
    const damaged = Buffer.from(good);
    // The control byte before the first "DE" string of the data section becomes garbage: the
    // file loads (metadata and tree are intact), the record of a DE address does not decode.
    const { Reader } = await import('mmdb-lib');
    const start = new Reader(good).metadata.searchTreeSize + 16;
    const at = good.indexOf('DE', start);
    assert.ok(at > start);
    damaged[at - 1] = 0xff;
    const file = join(root, 'damaged.mmdb');
    writeFileSync(file, damaged);
    const { log, lines } = capturingLog();
    const { policy } = compile({ databases: [file], inbound: { allow_countries: ['DE'] } }, { log });
    for (let i = 0; i < 2; i++) {
      const s = await session(policy, '192.0.2.10');
      assert.equal(s.mail.action, 'continue');
      assert.equal(s.mailTrace.find((t) => t.rule === 'origin')?.details?.because, 'unknown: allow');
    }
    assert.equal(lines.filter((l) => l.level === 'error' && l.message.includes('the file is damaged')).length, 1);
  });

  it('a file larger than MAX_DATABASE_BYTES is refused before it is read', () => {
    const huge = join(root, 'huge.mmdb');
    writeFileSync(huge, '');
    truncateSync(huge, MAX_DATABASE_BYTES + 1); // sparse: no disk, no memory
    assert.throws(
      () => new MmdbFile(huge, 0).load(),
      new RegExp(`${huge}: ${MAX_DATABASE_BYTES + 1} bytes, more than the ${MAX_DATABASE_BYTES} a database may have`),
    );
    // At the limit a file is read (a smaller limit, so the test does not read 512 MiB).
    const size = statSync(countryDb).size;
    assert.doesNotThrow(() => new MmdbFile(countryDb, 0, {}, Date.now, size).load());
    assert.throws(() => new MmdbFile(countryDb, 0, {}, Date.now, size - 1).load(), /more than the/);
  });

  it('the check interval bounds the stat calls: within it, a replaced file is not read yet', () => {
    let now = 1_000_000;
    const file = writeMmdb(COUNTRIES, join(root, 'interval.mmdb'));
    const f = new MmdbFile(file, 60_000, {}, () => now);
    f.load();
    writeMmdb({ ...COUNTRIES, networks: [{ network: '192.0.2.0/24', data: { country: { iso_code: 'FR' } } }] }, file);
    now += 59_000;
    assert.equal(f.lookup('192.0.2.1')?.country, 'DE');
    now += 1_000;
    assert.equal(f.lookup('192.0.2.1')?.country, 'FR');
  });

  it('data older than max_age is a warning; the age is a metric', async () => {
    const old = writeMmdb(
      { ...COUNTRIES, build_epoch: Math.floor(Date.now() / 1000) - 50 * 86_400 },
      join(root, 'old.mmdb'),
    );
    const { log, lines } = capturingLog();
    compile({ databases: [old], max_age: '30d', inbound: { deny_countries: ['RU'] } }, { log });
    assert.ok(
      lines.some(
        (l) =>
          l.level === 'warn' &&
          l.message.includes(`origin: ${old} was built`) &&
          l.message.includes('older than max_age (30 days)'),
      ),
    );
    const metrics = await registry.getSingleMetricAsString('relayguard_origin_database_age_seconds');
    const m = new RegExp(
      `relayguard_origin_database_age_seconds\\{database="${old.replace(/[.]/g, '\\.')}"\\} (\\d+)`,
    ).exec(metrics);
    assert.ok(m, metrics);
    assert.ok(Math.abs(Number(m[1]) - 50 * 86_400) < 120, m[1]);
  });

  it('a closed policy (after a reload) takes its databases out of the age metric; the new one stays', async () => {
    const a = writeMmdb(COUNTRIES, join(root, 'metric-a.mmdb'));
    const b = writeMmdb(COUNTRIES, join(root, 'metric-b.mmdb'));
    const first = compile({ databases: [a], inbound: { deny_countries: ['RU'] } }).policy;
    const second = compile({ databases: [b], inbound: { deny_countries: ['RU'] } }).policy;
    await first.close();
    let text = await registry.getSingleMetricAsString('relayguard_origin_database_age_seconds');
    assert.ok(!text.includes('metric-a.mmdb') && text.includes('metric-b.mmdb'), text);
    await second.close();
    text = await registry.getSingleMetricAsString('relayguard_origin_database_age_seconds');
    assert.ok(!text.includes('metric-b.mmdb'), text);
  });

  it('audit: one probe per file with its type and age; old or missing fails', async () => {
    const fresh = writeMmdb(
      { ...ASNS, build_epoch: Math.floor(Date.now() / 1000) - 2 * 86_400 },
      join(root, 'fresh-asn.mmdb'),
    );
    const stale = writeMmdb(
      { ...COUNTRIES, build_epoch: Math.floor(Date.now() / 1000) - 40 * 86_400 },
      join(root, 'stale.mmdb'),
    );
    const gone = join(root, 'gone.mmdb');
    const config = policySchema.parse({
      local_domains: ['example.test'],
      rules: { origin: { mode: 'monitor', max_age: '30d', databases: [fresh, stale, gone], inbound: {} } },
    });
    const results: Array<ProbeOutcome & { name: string }> = await Promise.all(
      originProbes(config).map(async (p) => ({ name: p.name, ...(await p.run()) })),
    );
    assert.deepEqual(
      results.map((r) => [r.name, r.ok]),
      [
        [`origin-db:${fresh}`, true],
        [`origin-db:${stale}`, false],
        [`origin-db:${gone}`, false],
      ],
    );
    assert.match(results[0]!.detail, /: GeoLite2-ASN, built \d{4}-\d\d-\d\d, 2 day\(s\) old$/);
    assert.match(results[1]!.detail, /40 day\(s\) old \(older than max_age 30 days: is geoipupdate running\?\)$/);
    assert.ok(Math.abs(Number(results[1]!.database_age_s) - 40 * 86_400) < 60);
    assert.match(results[2]!.detail, /gone\.mmdb: file not found; the origin rule judges nobody with it$/);
    // No active origin rule: no probes.
    assert.deepEqual(originProbes(policySchema.parse({ local_domains: ['example.test'], rules: {} })), []);
  });
});
