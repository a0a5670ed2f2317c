// relayguard runs mailauth's DKIM, SPF, ARC and DMARC checks itself (src/deps/mail-auth.ts,
// verifyMessage) instead of through mailauth's authenticate(), whose module also loads BIMI's
// certificate and HTTP code. This holds the two to the same results on signed, tampered, sealed
// and unsigned mail, for clients with and without an address, and checks what a fresh process
// that authenticates a message has loaded.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { authenticate, dkimSign, sealMessage } from 'mailauth';
import { checkAuthentication, verifyMessage, type VerifyOptions } from '../../src/deps/mail-auth.js';
import { dkimTxtRecord } from '../../src/deps/signing-key.js';
import { FakeDns } from './dnsbl-fake-server.js';

const CLIENT_IP = '203.0.113.9';
const CLIENT_IP6 = '2001:db8::25';
const ed = generateKeyPairSync('ed25519');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const arcKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }).toString();

const dns = new FakeDns();
let dnsServer = '';
before(async () => {
  dnsServer = await dns.start();
  for (const [selector, domain, key] of [
    ['ed', 'outside.test', ed],
    ['rsa', 'outside.test', rsa],
    ['arc', 'forwarder.test', arcKey],
  ] as const) {
    const record = dkimTxtRecord(pem(key.privateKey), domain, selector);
    dns.setTxt(record.name, record.value);
  }
  dns.set('outside.test', { a: [], txt: [`v=spf1 ip4:${CLIENT_IP} ip6:${CLIENT_IP6} -all`] });
  dns.set('relaxed.test', { a: [], txt: [`v=spf1 ip4:${CLIENT_IP} ~all`] });
  dns.set('_dmarc.outside.test', { a: [], txt: ['v=DMARC1; p=reject'] });
  dns.set('_dmarc.relaxed.test', { a: [], txt: ['v=DMARC1; p=quarantine; sp=none'] });
});
after(() => dns.stop());

/** The resolver contract mailauth takes, answered by the fake server through Node's resolver. */
async function resolver(): Promise<VerifyOptions['resolver']> {
  const { Resolver } = await import('node:dns/promises');
  const r = new Resolver({ timeout: 500, tries: 1 });
  r.setServers([dnsServer]);
  return (name, type) => r.resolve(name, type) as Promise<string[][] | string[]>;
}

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');
const message = (from: string, body = 'Hello.\n') =>
  crlf(`From: ${from}\nTo: u@example.test\nSubject: hello\nMessage-ID: <1@outside.test>\n\n${body}`);

async function signed(raw: Buffer, domain = 'outside.test'): Promise<Buffer> {
  const s = await dkimSign(raw, {
    signTime: new Date(),
    canonicalization: 'relaxed/relaxed',
    signatureData: [
      { signingDomain: domain, selector: 'ed', privateKey: pem(ed.privateKey), algorithm: 'ed25519-sha256' },
      { signingDomain: domain, selector: 'rsa', privateKey: pem(rsa.privateKey), algorithm: 'rsa-sha256' },
    ],
  } as Parameters<typeof dkimSign>[1]);
  assert.deepEqual(s.errors, []);
  return Buffer.concat([Buffer.from(s.signatures), raw]);
}

async function sealed(raw: Buffer, cv: 'none' | 'pass' = 'none'): Promise<Buffer> {
  const set = await sealMessage(raw, {
    signTime: new Date(),
    signingDomain: 'forwarder.test',
    selector: 'arc',
    privateKey: pem(arcKey.privateKey),
    authResults: 'forwarder.test; dkim=pass header.d=outside.test',
    cv,
  } as Parameters<typeof sealMessage>[1]);
  return Buffer.concat([set, raw]);
}

interface Case {
  name: string;
  raw: () => Promise<Buffer>;
  ip: string | null;
  helo: string;
  sender: string;
  /** Every DNS question fails as a timeout does (temperror paths). */
  dnsDown?: boolean;
}

/** A resolver whose every answer is a timeout. */
const timingOut: VerifyOptions['resolver'] = () =>
  Promise.reject(Object.assign(new Error('queryTxt ETIMEOUT'), { code: 'ETIMEOUT' }));

const CASES: Case[] = [
  {
    name: 'signed twice, aligned, SPF pass',
    raw: () => signed(message('a@outside.test')),
    ip: CLIENT_IP,
    helo: 'mx.outside.test',
    sender: 'a@outside.test',
  },
  {
    name: 'body changed after signing',
    raw: async () =>
      Buffer.from((await signed(message('a@outside.test'))).toString('latin1').replace('Hello.', 'Hellp.'), 'latin1'),
    ip: '198.51.100.7',
    helo: 'mx.elsewhere.test',
    sender: 'a@outside.test',
  },
  {
    name: 'signed by another domain, From aligned through SPF only',
    raw: () => signed(message('b@relaxed.test')),
    ip: CLIENT_IP,
    helo: 'mx.relaxed.test',
    sender: 'bounce@relaxed.test',
  },
  {
    name: 'unsigned from a host SPF forbids',
    raw: async () => message('a@outside.test'),
    ip: '198.51.100.7',
    helo: 'x.test',
    sender: 'a@outside.test',
  },
  {
    name: 'unsigned, IPv6 client SPF allows',
    raw: async () => message('a@outside.test'),
    ip: CLIENT_IP6,
    helo: 'mx6.outside.test',
    sender: 'a@outside.test',
  },
  {
    name: 'local client without an address, null sender',
    raw: async () => message('a@outside.test'),
    ip: null,
    helo: 'localhost',
    sender: '',
  },
  {
    name: 'HELO an address literal',
    raw: () => signed(message('a@outside.test')),
    ip: CLIENT_IP,
    helo: CLIENT_IP,
    sender: 'a@outside.test',
  },
  {
    name: 'no HELO at all',
    raw: async () => message('c@sub.relaxed.test'),
    ip: CLIENT_IP,
    helo: '',
    sender: 'c@relaxed.test',
  },
  {
    name: 'ARC set over a signed message',
    raw: async () => sealed(await signed(message('a@outside.test'))),
    ip: '198.51.100.7',
    helo: 'fwd.test',
    sender: 'a@outside.test',
  },
  {
    name: 'ARC set broken after sealing',
    raw: async () =>
      Buffer.from(
        (await sealed(message('a@outside.test'))).toString('latin1').replace('Subject: hello', 'Subject: changed'),
        'latin1',
      ),
    ip: '198.51.100.7',
    helo: 'fwd.test',
    sender: 'a@outside.test',
  },
  {
    name: 'signed, every DNS answer a timeout',
    raw: () => signed(message('a@outside.test')),
    ip: CLIENT_IP,
    helo: 'mx.outside.test',
    sender: 'a@outside.test',
    dnsDown: true,
  },
  {
    name: 'Received headers',
    raw: async () =>
      crlf(
        'Received: from mx.elsewhere.test (mx.elsewhere.test [198.51.100.7])\n\tby gw.example.test; Mon, 7 Dec 2026 10:00:00 +0000\n' +
          'From: a@outside.test\nTo: u@example.test\nSubject: one\n\nbody\n',
      ),
    ip: CLIENT_IP,
    helo: 'mx.outside.test',
    sender: 'a@outside.test',
  },
  {
    name: 'no From header',
    raw: async () => crlf('To: u@example.test\nSubject: none\n\nbody\n'),
    ip: CLIENT_IP,
    helo: 'mx.outside.test',
    sender: 'a@outside.test',
  },
];

/** What relayguard reads from a result, as JSON; authenticate() adds authResults to the ARC result. */
const comparable = (r: { dkim: unknown; spf: unknown; arc: unknown; dmarc: unknown }) =>
  JSON.parse(
    JSON.stringify({ dkim: r.dkim, spf: r.spf, arc: r.arc, dmarc: r.dmarc }, (k, v: unknown) =>
      k === 'authResults' ? undefined : v,
    ),
  ) as unknown;

describe('verifyMessage: the same results as mailauth authenticate() with BIMI off', () => {
  /** Both on one case: the message as a Buffer, or as a stream (as relayguard passes it). */
  async function compare(c: Case, asStream: boolean): Promise<void> {
    const raw = await c.raw();
    const resolve = c.dnsDown ? timingOut : await resolver();
    const input = () => (asStream ? Readable.from([raw]) : raw);
    const mta = 'gw.example.test';
    const ours = await verifyMessage(input(), {
      ip: c.ip,
      helo: c.helo,
      sender: c.sender,
      mta,
      resolver: resolve,
      minBitLength: 1024,
    });
    const theirs = await authenticate(input(), {
      ...(c.ip ? { ip: c.ip } : {}),
      helo: c.helo,
      sender: c.sender,
      mta,
      resolver: resolve,
      minBitLength: 1024,
      disableBimi: true,
    });
    assert.deepEqual(comparable(ours), comparable(theirs));
  }

  for (const c of CASES) it(c.name, () => compare(c, false));

  it('the same results when the message comes as a stream', async () => {
    for (const c of CASES) await compare(c, true);
  });

  it('the cases are not all alike: pass, fail, none and ARC results all occur', async () => {
    const resolve = await resolver();
    const seen = new Set<string>();
    for (const c of CASES) {
      const r = await verifyMessage(await c.raw(), {
        ip: c.ip,
        helo: c.helo,
        sender: c.sender,
        mta: 'gw',
        resolver: c.dnsDown ? timingOut : resolve,
        minBitLength: 1024,
      });
      for (const d of r.dkim.results ?? []) seen.add(`dkim=${d.status?.result}`);
      if (r.spf) seen.add(`spf=${r.spf.status?.result}`);
      if (r.dmarc) seen.add(`dmarc=${r.dmarc.status?.result}`);
      seen.add(`arc=${r.arc?.status?.result}`);
    }
    for (const want of [
      'dkim=pass',
      'dkim=neutral',
      'spf=pass',
      'spf=fail',
      'spf=none',
      'dmarc=pass',
      'dmarc=fail',
      'arc=pass',
      'arc=fail',
      'arc=none',
      'spf=temperror',
      'dkim=temperror',
    ])
      assert.ok(seen.has(want), `${want} not among ${[...seen].join(' ')}`);
  });
});

describe('DMARC with several authors in From (RFC 7489 section 6.6.1)', () => {
  const twoAuthors = (from: string) =>
    crlf(`From: ${from}\nTo: u@example.test\nSubject: two\nMessage-ID: <2@outside.test>\n\nbody\n`);
  const verify = async (raw: Buffer) =>
    verifyMessage(raw, {
      ip: CLIENT_IP,
      helo: 'mx.outside.test',
      sender: 'a@outside.test',
      mta: 'gw.example.test',
      resolver: await resolver(),
      minBitLength: 1024,
    });

  it('each author domain is checked; the strictest failing policy stands (mailauth alone: no result)', async () => {
    // outside.test passes by SPF alignment; relaxed.test (p=quarantine) is not aligned: it fails.
    const raw = twoAuthors('a@outside.test, b@relaxed.test');
    const theirs = await authenticate(raw, {
      ip: CLIENT_IP,
      helo: 'mx.outside.test',
      sender: 'a@outside.test',
      mta: 'gw.example.test',
      resolver: await resolver(),
      disableBimi: true,
    });
    assert.equal(theirs.dmarc, false, 'mailauth gives several authors no DMARC result');
    const ours = await verify(raw);
    assert.ok(ours.dmarc);
    assert.equal(ours.dmarc.status?.result, 'fail');
    assert.equal((ours.dmarc as { policy?: string }).policy, 'quarantine');
    assert.deepEqual(
      ours.dmarcEach.map((d) => (d ? `${d.status?.result}:${(d as { domain?: string }).domain}` : 'false')),
      ['pass:outside.test', 'fail:relaxed.test'],
    );
  });

  it('the Authentication-Results lines name each domain; one domain twice is checked once', async () => {
    const facts = await checkAuthentication(
      {
        message: twoAuthors('a@outside.test, b@relaxed.test'),
        ip: CLIENT_IP,
        helo: 'mx.outside.test',
        sender: 'a@outside.test',
        authservId: 'gw.example.test',
        signal: new AbortController().signal,
      },
      { dnsServers: [dnsServer], dnsTimeoutMs: 500, minKeyBits: 1024 },
    );
    const dmarcLines = facts.lines.filter((l) => l.startsWith('dmarc='));
    assert.equal(dmarcLines.length, 2, facts.lines.join('\n'));
    assert.match(dmarcLines[0]!, /^dmarc=pass .*header\.from=outside\.test/);
    assert.match(dmarcLines[1]!, /^dmarc=fail .*header\.from=relaxed\.test/);
    assert.deepEqual(facts.dmarc, { result: 'fail', policy: 'quarantine', domain: 'relaxed.test' });
    const same = await verify(twoAuthors('a@outside.test, "Other" <c@Outside.test>'));
    assert.equal(same.dmarcEach.length, 1);
    assert.equal(same.dmarc && same.dmarc.status?.result, 'pass');
  });
});

describe('what authenticating a message loads', () => {
  it("a fresh process that verifies a message has not loaded mailauth's BIMI code", () => {
    const mod = fileURLToPath(new URL('../../src/deps/mail-auth.js', import.meta.url));
    const code = `
      import { createRequire } from 'node:module';
      const { checkAuthentication, dkimSignatures } = await import(${JSON.stringify(mod)});
      const msg = Buffer.from('From: a@outside.test\\r\\nTo: u@example.test\\r\\nSubject: x\\r\\n\\r\\nbody\\r\\n');
      const input = { message: msg, ip: '${CLIENT_IP}', helo: 'h.test', sender: 'a@outside.test', authservId: 'gw', signal: AbortSignal.timeout(20000) };
      // A DNS server that is not there: every lookup fails, quickly.
      const r = await checkAuthentication(input, { dnsServers: ['127.0.0.1:9'], dnsTimeoutMs: 200, minKeyBits: 1024 });
      const { Readable } = await import('node:stream');
      const { generateKeyPairSync } = await import('node:crypto');
      const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      await dkimSignatures(Readable.from([msg]), [{ domain: 'example.test', selector: 's', privateKey: key, algorithm: 'ed25519-sha256' }]);
      const loaded = Object.keys(createRequire(import.meta.url).cache);
      console.log(JSON.stringify({ spf: r.spf.result, loaded }));
    `;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(out.status, 0, out.stderr);
    const { spf, loaded } = JSON.parse(out.stdout) as { spf: string; loaded: string[] };
    assert.equal(spf, 'temperror', 'the checks ran');
    assert.ok(
      loaded.some((p) => p.includes('/mailauth/lib/dkim/')),
      'the probe sees mailauth modules',
    );
    const bimi = loaded.filter((p) => /\/mailauth\/lib\/bimi\/|\/@postalsys\/vmc\/|\/undici\//.test(p));
    assert.deepEqual(bimi, []);
  });
});
