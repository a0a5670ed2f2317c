// Issue 20 through the real Postfix: inbound mail signed by an outside domain (keys, SPF and
// DMARC served by nsd on loopback) gets an Authentication-Results header from relayguard with
// the results an independent verifier agrees with; a forged one with our authserv-id is
// removed; the inbound notice in subject and header modes leaves the body byte-identical and
// the sender's DKIM signature valid (checked by dkimpy, Debian's python3-dkim, not by us), and
// body mode never breaks the signature DMARC p=reject relies on.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseDocument } from 'yaml';
import {
  clearQueues,
  ensureStack,
  referencePolicy,
  repoRoot,
  run,
  runRelayguard,
  smtp,
  stack,
  startRelayguard,
  waitForDeliveryDetails,
  type RelayguardProcess,
} from './harness.js';
import { dkimRecord, makeKey, OutsideDns, outsideDnsServer, type DkimKey } from './auth/outside-dns.js';

const OUTSIDE = { addr: '203.0.113.9', helo: 'mail.outside.test' };
const AUTHSERV_ID = 'gw.example.test';
const NOTICE = 'This message came from outside example.test';
const VERIFY = join(repoRoot, 'test', 'e2e', 'auth', 'dkimpy-verify.py');

const rsa = makeKey('outside.test', 'rsa2026', 'rsa-sha256');
const ed = makeKey('outside.test', 'ed2026', 'ed25519-sha256');
const relaxedKey = makeKey('relaxed.test', 'sel', 'rsa-sha256');
/** The gateway's ARC key, made by `relayguard keygen`, published as it prints the record. */
const sealKey = { domain: 'example.test', selector: 'arc2026' };
let sealRecord = '';
/** Outbound DKIM keys of example.test, also made by keygen. */
const OUT_KEYS = [
  { selector: 'out-rsa', algorithm: 'rsa-sha256' },
  { selector: 'out-ed', algorithm: 'ed25519-sha256' },
] as const;
const outRecords: Record<string, string> = {};
const keyFile = (selector: string) => join(stack.baseDir, 'auth-keys', `${selector}.pem`);

async function keygen(selector: string, algorithm: string): Promise<string> {
  rmSync(keyFile(selector), { force: true });
  const kg = await runRelayguard([
    'keygen',
    '--domain',
    'example.test',
    '--selector',
    selector,
    '--key',
    keyFile(selector),
    '--algorithm',
    algorithm,
  ]);
  assert.equal(kg.code, 0, kg.stderr);
  const line = kg.stdout.split('\n').find((l) => l.startsWith(`${selector}._domainkey.example.test. IN TXT (`));
  assert.ok(line, kg.stdout);
  return [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
}
const SEAL_KEY_FILE = join(stack.baseDir, 'auth-keys', `${sealKey.selector}.pem`);
const dns = new OutsideDns();
let rg: RelayguardProcess | undefined;

before(async () => {
  await ensureStack();
  await clearQueues();
  mkdirSync(join(stack.baseDir, 'auth-keys'), { recursive: true });
  sealRecord = await keygen(sealKey.selector, 'rsa-sha256');
  for (const k of OUT_KEYS) outRecords[`${k.selector}._domainkey`] = await keygen(k.selector, k.algorithm);
  await dns.start([
    {
      domain: 'outside.test',
      txt: {
        '@': `v=spf1 ip4:${OUTSIDE.addr} -all`,
        _dmarc: 'v=DMARC1; p=reject; adkim=r; aspf=r',
        [`${rsa.selector}._domainkey`]: dkimRecord(rsa),
        [`${ed.selector}._domainkey`]: dkimRecord(ed),
      },
    },
    { domain: 'example.test', txt: { [`${sealKey.selector}._domainkey`]: sealRecord, ...outRecords } },
    {
      domain: 'relaxed.test',
      txt: {
        '@': `v=spf1 ip4:${OUTSIDE.addr} -all`,
        _dmarc: 'v=DMARC1; p=none',
        [`${relaxedKey.selector}._domainkey`]: dkimRecord(relaxedKey),
      },
    },
  ]);
});

after(async () => {
  await rg?.stop();
  await dns.stop();
});

/** The reference policy with rule authentication on and the inbound notice in `notice` mode. */
async function startWith(notice: 'body' | 'subject' | 'header' | 'auto', seal = false, sign = false): Promise<void> {
  await rg?.stop();
  const doc = parseDocument(readFileSync(referencePolicy, 'utf8'));
  const arcSeal = seal
    ? { arc_seal: { domain: sealKey.domain, selector: sealKey.selector, private_key_file: SEAL_KEY_FILE } }
    : {};
  doc.setIn(
    ['rules', 'authentication'],
    doc.createNode({
      mode: 'enforce',
      authserv_id: AUTHSERV_ID,
      dns_servers: [outsideDnsServer],
      dns_timeout: '2s',
      ...arcSeal,
    }),
  );
  doc.setIn(['rules', 'disclaimer', 'inbound', 'notice'], notice);
  if (sign) {
    const keys = OUT_KEYS.map((k) => ({
      domain: 'example.test',
      selector: k.selector,
      private_key_file: keyFile(k.selector),
      algorithm: k.algorithm,
    }));
    doc.setIn(['rules', 'dkim_sign'], doc.createNode({ mode: 'enforce', keys }));
  }
  rg = await startRelayguard({ configText: doc.toString() });
}

/** Signs with dkimpy (not with the library relayguard uses): relaxed/simple, the default headers. */
async function sign(raw: string, keys: DkimKey[], headers?: string[]): Promise<Buffer> {
  const script = [
    'import sys, json, dkim',
    'keys = json.loads(sys.argv[1]); headers = json.loads(sys.argv[2])',
    'msg = sys.stdin.buffer.read()',
    'for k in keys:',
    '    kw = {"include_headers": [h.encode() for h in headers]} if headers else {}',
    '    sig = dkim.sign(msg, k["selector"].encode(), k["domain"].encode(), k["pem"].encode(), signature_algorithm=k["algorithm"].encode(), **kw)',
    '    msg = sig + msg',
    'sys.stdout.buffer.write(msg)',
  ].join('\n');
  const arg = JSON.stringify(
    keys.map((k) => ({ selector: k.selector, domain: k.domain, pem: dkimpyPrivateKey(k), algorithm: k.algorithm })),
  );
  const r = await run('/usr/bin/python3', ['-c', script, arg, JSON.stringify(headers ?? null)], {
    input: Buffer.from(raw.replace(/\r?\n/g, '\r\n'), 'utf8'),
  });
  assert.equal(r.code, 0, r.stderr);
  return Buffer.from(r.stdout, 'latin1');
}

/** dkimpy takes RSA keys as PEM and Ed25519 keys as the base64 of the 32-byte seed (RFC 8463). */
function dkimpyPrivateKey(k: DkimKey): string {
  if (k.algorithm === 'rsa-sha256') return k.privateKeyPem;
  const der = createPrivateKey(k.privateKeyPem).export({ type: 'pkcs8', format: 'der' });
  return der.subarray(der.length - 32).toString('base64');
}

interface Verified {
  dkim: Array<{ d: string; s: string; a: string; ok: boolean; error?: string }>;
  arc: string;
}

async function independentlyVerify(message: Buffer): Promise<Verified> {
  const r = await run('/usr/bin/python3', [VERIFY, outsideDnsServer], { input: message });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Verified;
}

function letter(from: string, subject = 'Quarterly figures', extra = ''): string {
  return [
    `From: Alice <${from}>`,
    'To: user@example.test',
    `Subject: ${subject}`,
    `Message-ID: <${Date.now()}.${Math.random()}@outside.test>`,
    'Date: Mon, 07 Dec 2026 06:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    extra,
    '',
    'Hello,',
    '',
    'the figures are attached in spirit.',
    '-- ',
    'Alice',
    '',
  ]
    .filter((l, i) => l !== '' || i > 7)
    .join('\n');
}

async function deliver(data: Buffer | string, from: string): Promise<{ raw: Buffer; text: string }> {
  const r = await smtp({ from, to: ['user@example.test'], data, xclient: OUTSIDE });
  assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
  const d = await waitForDeliveryDetails(r.queueId!);
  return { raw: d.raw, text: d.raw.toString('latin1') };
}

/** Header fields of a delivered message (LF line ends), unfolded. */
function fields(text: string, name: string): string[] {
  const head = text.slice(0, text.indexOf('\n\n'));
  return head
    .split(/\n(?![ \t])/)
    .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    .map((l) =>
      l
        .slice(name.length + 1)
        .replace(/\s+/g, ' ')
        .trim(),
    );
}
/** The body after the header block, LF line ends (smtp-sink writes LF, the signer CRLF). */
const bodyOf = (b: Buffer) => {
  const s = b.toString('latin1').replace(/\r\n/g, '\n');
  return s.slice(s.indexOf('\n\n') + 2);
};
const ours = (text: string) =>
  fields(text, 'Authentication-Results').filter((v) => v.toLowerCase().startsWith(`${AUTHSERV_ID};`));

describe('authentication and the inbound notice through Postfix', () => {
  test('body mode, p=reject, signed rsa and ed25519: results recorded, the signature kept intact (banner instead of body text)', async () => {
    await startWith('body');
    const signed = await sign(letter('alice@outside.test'), [rsa, ed]);
    const { raw, text } = await deliver(signed, 'alice@outside.test');
    const ar = ours(text);
    assert.equal(ar.length, 1, text);
    assert.match(ar[0]!, /dkim=pass header\.i=@outside\.test header\.s=rsa2026 header\.a=rsa-sha256/);
    assert.match(ar[0]!, /dkim=pass header\.i=@outside\.test header\.s=ed2026 header\.a=ed25519-sha256/);
    assert.match(ar[0]!, /spf=pass .*smtp\.mailfrom=alice@outside\.test smtp\.helo=mail\.outside\.test/);
    assert.match(ar[0]!, /dmarc=pass \(p=REJECT/);
    // The independent verifier agrees, on the message as delivered.
    const v = await independentlyVerify(raw);
    assert.deepEqual(
      v.dkim.map((s) => [s.s, s.ok]),
      [
        ['ed2026', true],
        ['rsa2026', true],
      ],
      JSON.stringify(v),
    );
    assert.equal(bodyOf(raw), bodyOf(signed), 'body byte-identical');
    assert.equal(
      fields(text, 'X-External-Sender')[0],
      `${NOTICE}. Do not open links or attachments unless you trust the sender.`,
    );
  });

  test('body mode, p=none, unsigned: the notice goes into the body and the results say none', async () => {
    const { raw, text } = await deliver(letter('bob@relaxed.test'), 'bob@relaxed.test');
    assert.match(bodyOf(raw), new RegExp(NOTICE));
    const ar = ours(text);
    assert.equal(ar.length, 1, text);
    assert.match(ar[0]!, /dkim=none/);
    assert.match(ar[0]!, /spf=pass/);
    assert.match(ar[0]!, /dmarc=pass \(p=NONE/);
  });

  test('a forged Authentication-Results with our authserv-id is removed; one of another host stays', async () => {
    const forged = letter(
      'mallory@relaxed.test',
      'Invoice',
      `Authentication-Results: ${AUTHSERV_ID}; dkim=pass header.d=bank.test; dmarc=pass header.from=bank.test\nAuthentication-Results: mx.other.test; spf=pass`,
    );
    const { text } = await deliver(forged, 'mallory@relaxed.test');
    const ar = ours(text);
    assert.equal(ar.length, 1, text);
    assert.doesNotMatch(ar[0]!, /bank\.test/);
    assert.match(ar[0]!, /dkim=none/);
    assert.deepEqual(
      fields(text, 'Authentication-Results').filter((v) => v.startsWith('mx.other.test')),
      ['mx.other.test; spf=pass'],
    );
  });

  test('subject mode: p=reject mail keeps its signature (banner); p=none mail signed without Subject is tagged and still verifies', async () => {
    await startWith('subject');
    const strict = await sign(letter('alice@outside.test'), [rsa]);
    const a = await deliver(strict, 'alice@outside.test');
    assert.equal(bodyOf(a.raw), bodyOf(strict));
    assert.deepEqual(fields(a.text, 'Subject'), ['Quarterly figures']);
    assert.equal((await independentlyVerify(a.raw)).dkim[0]?.ok, true);

    const loose = await sign(letter('carol@relaxed.test'), [relaxedKey], ['From', 'To', 'Date', 'Message-ID']);
    const b = await deliver(loose, 'carol@relaxed.test');
    assert.equal(bodyOf(b.raw), bodyOf(loose), 'body byte-identical');
    assert.deepEqual(fields(b.text, 'Subject'), ['[EXTERNAL] Quarterly figures']);
    assert.equal((await independentlyVerify(b.raw)).dkim[0]?.ok, true);
    assert.match(ours(b.text)[0]!, /dkim=pass header\.i=@relaxed\.test/);

    // A reply that already carries the tag does not get it twice.
    const reply = await deliver(letter('carol@relaxed.test', 'Re: [EXTERNAL] Quarterly figures'), 'carol@relaxed.test');
    assert.deepEqual(fields(reply.text, 'Subject'), ['Re: [EXTERNAL] Quarterly figures']);
  });

  test('header mode: a banner only, body byte-identical, both signatures still verify', async () => {
    await startWith('header');
    const signed = await sign(letter('alice@outside.test'), [rsa, ed]);
    const { raw, text } = await deliver(signed, 'alice@outside.test');
    assert.equal(bodyOf(raw), bodyOf(signed));
    assert.deepEqual(fields(text, 'Subject'), ['Quarterly figures']);
    assert.equal(fields(text, 'X-External-Sender').length, 1);
    const v = await independentlyVerify(raw);
    assert.deepEqual(
      v.dkim.map((s) => s.ok),
      [true, true],
      JSON.stringify(v),
    );
  });

  test('auto mode: body for unsigned mail, subject when no signature covers Subject', async () => {
    await startWith('auto');
    const unsigned = await deliver(letter('dave@relaxed.test'), 'dave@relaxed.test');
    assert.match(bodyOf(unsigned.raw), new RegExp(NOTICE));
    const loose = await sign(letter('carol@relaxed.test'), [relaxedKey], ['From', 'To', 'Date', 'Message-ID']);
    const b = await deliver(loose, 'carol@relaxed.test');
    assert.deepEqual(fields(b.text, 'Subject'), ['[EXTERNAL] Quarterly figures']);
    assert.equal((await independentlyVerify(b.raw)).dkim[0]?.ok, true);
  });

  test('body mode with an ARC seal, p=reject: the notice in the body, dkim/spf/dmarc=pass recorded, dkimpy verifies the ARC chain (cv=pass)', async () => {
    await startWith('body', true);
    const signed = await sign(letter('alice@outside.test'), [rsa, ed]);
    const { raw, text } = await deliver(signed, 'alice@outside.test');
    assert.match(bodyOf(raw), new RegExp(NOTICE), 'the notice is in the body');
    const ar = ours(text);
    assert.equal(ar.length, 1, text);
    assert.match(ar[0]!, /dkim=pass header\.i=@outside\.test header\.s=rsa2026/);
    assert.match(ar[0]!, /spf=pass/);
    assert.match(ar[0]!, /dmarc=pass \(p=REJECT/);
    assert.equal(fields(text, 'ARC-Seal').length, 1);
    assert.match(fields(text, 'ARC-Seal')[0]!, /i=1; .*cv=none; d=example\.test; s=arc2026/);
    assert.match(fields(text, 'ARC-Authentication-Results')[0]!, /^i=1; gw\.example\.test; dkim=pass .*dmarc=pass/);
    const v = await independentlyVerify(raw);
    assert.equal(v.arc, 'pass', JSON.stringify(v));
    // The sender's own signatures are broken by the notice: the seal is what carries the result.
    assert.deepEqual(
      v.dkim.map((s) => s.ok),
      [false, false],
    );
  });

  test('a tampered sealed message fails the independent ARC check', async () => {
    const signed = await sign(letter('alice@outside.test'), [rsa]);
    const { raw } = await deliver(signed, 'alice@outside.test');
    const tampered = Buffer.from(
      raw.toString('latin1').replace('the figures are attached', 'the figures are attacked'),
      'latin1',
    );
    assert.notEqual(tampered.toString('latin1'), raw.toString('latin1'));
    assert.equal((await independentlyVerify(raw)).arc, 'pass');
    assert.equal((await independentlyVerify(tampered)).arc, 'fail');
  });

  test('outbound DKIM signing after the disclaimer: rsa-sha256 and ed25519-sha256 signatures that dkimpy verifies', async () => {
    await startWith('body', true, true);
    const r = await smtp({
      from: 'alice@example.test',
      to: ['bob@partner.test'],
      data: letter('alice@example.test').replace('To: user@example.test', 'To: bob@partner.test'),
    });
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    const d = await waitForDeliveryDetails(r.queueId!);
    assert.match(bodyOf(d.raw), /This email is confidential/, 'the disclaimer is in the signed body');
    assert.equal(ours(d.raw.toString('latin1')).length, 0, 'outbound mail gets no Authentication-Results');
    const v = await independentlyVerify(d.raw);
    assert.deepEqual(
      v.dkim.map((s) => [s.d, s.s, s.a, s.ok]).sort(),
      [
        ['example.test', 'out-ed', 'ed25519-sha256', true],
        ['example.test', 'out-rsa', 'rsa-sha256', true],
      ],
      JSON.stringify(v),
    );
  });

  test('the results, seals and signatures are counted in the metrics', async () => {
    await deliver(await sign(letter('alice@outside.test'), [rsa]), 'alice@outside.test');
    const res = await fetch(`http://127.0.0.1:${stack.metricsPort}/metrics`);
    const text = await res.text();
    assert.match(text, /relayguard_auth_results_total\{method="dkim",result="pass"\} [1-9]/);
    assert.match(text, /relayguard_auth_results_total\{method="dmarc",result="pass"\} [1-9]/);
    assert.match(text, /relayguard_arc_seals_total [1-9]/);
    assert.match(text, /relayguard_dkim_signatures_total\{algorithm="ed25519-sha256"\} 1/);
  });
});
