// Rule `authentication` and the inbound notice modes, through the policy engine (so the order
// of the rules and the shared facts are what a real message meets), with a local UDP DNS server
// that serves the outside domain's DKIM keys, SPF and DMARC records, and messages signed here by
// mailauth's signer.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import libmime from 'libmime';
import { dkimSign } from 'mailauth';
import { silentLogger } from '../../src/ops/logging.js';
import { PolicyEngine } from '../../src/engine/engine.js';
import type { ConnectionContext, Modification } from '../../src/policy/types.js';
import { authenticate } from 'mailauth';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authservIdOf, authenticationResultsValue, closedComments } from '../../src/deps/mail-auth.js';
import { dkimTxtRecord } from '../../src/deps/signing-key.js';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { authenticationRule, authenticationSchema, forgedIndexes } from '../../src/rules/authentication.js';
import { disclaimerRule, disclaimerSchema } from '../../src/rules/disclaimer.js';
import { taggedSubject } from '../../src/rules/inbound-notice.js';
import { applyModifications } from '../../src/session/offline-message.js';
import { fakeEnv, fakeMessage, loadCorpusPolicy } from '../golden/disclaimer/run-case.js';
import { FakeDns } from './dnsbl-fake-server.js';

const { settings } = loadCorpusPolicy();
const CLIENT_IP = '203.0.113.9';
const ed = generateKeyPairSync('ed25519');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

const keyDir = mkdtempSync(join(tmpdir(), 'relayguard-auth-'));
after(() => rmSync(keyDir, { recursive: true, force: true }));
const sealPem = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();
const SEAL_KEY = join(keyDir, 'arc.pem');
writeFileSync(SEAL_KEY, sealPem);
const SEAL = { domain: 'gw.example.test', selector: 'arc', private_key_file: SEAL_KEY };

const dns = new FakeDns();
let server = '';
before(async () => {
  server = await dns.start();
  for (const [selector, key] of [
    ['ed', ed],
    ['rsa', rsa],
  ] as const) {
    const record = dkimTxtRecord(
      key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      'outside.test',
      selector,
    );
    dns.setTxt(record.name, record.value);
  }
  dns.set('outside.test', { a: [], txt: [`v=spf1 ip4:${CLIENT_IP} -all`] });
  dns.set('_dmarc.outside.test', { a: [], txt: ['v=DMARC1; p=reject'] });
  dns.set('_dmarc.relaxed.test', { a: [], txt: ['v=DMARC1; p=none'] });
  const seal = dkimTxtRecord(sealPem, 'gw.example.test', 'arc');
  dns.setTxt(seal.name, seal.value);
  dns.set('relaxed.test', { a: [], txt: [`v=spf1 ip4:${CLIENT_IP} -all`] });
});
after(() => dns.stop());

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');
const plain = (from = 'a@outside.test', extra = '') =>
  crlf(`From: ${from}\nTo: u@example.test\nSubject: hello\nMessage-ID: <1@outside.test>\n${extra}\nHello.\n`);

async function sign(raw: Buffer, headerKeys?: string): Promise<Buffer> {
  const s = await dkimSign(raw, {
    // One clock read for t= (src/deps/mail-auth.ts, SIGN_TIME_NOTE): else the input is sometimes mis-signed.
    signTime: new Date(),
    canonicalization: 'relaxed/relaxed',
    // mailauth 4.13.3 reads a colon-separated string here (its types say string[]).
    ...(headerKeys ? { headerList: headerKeys } : {}),
    signatureData: [
      {
        signingDomain: 'outside.test',
        selector: 'ed',
        privateKey: ed.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        algorithm: 'ed25519-sha256',
      },
    ],
  } as Parameters<typeof dkimSign>[1]);
  assert.deepEqual(s.errors, []);
  return Buffer.concat([Buffer.from(s.signatures), raw]);
}

function conn(): ConnectionContext {
  const macros = new Map([['j', 'gw.example.test']]);
  return {
    id: 'c1',
    client: { ip: CLIENT_IP, hostname: 'mail.outside.test', port: 25, family: 'inet' },
    helo: 'mail.outside.test',
    macros: { get: (n: string) => macros.get(n) },
    internalNetwork: false,
    networkGroups: [],
    state: new Map(),
    log: silentLogger(),
  };
}

interface Run {
  mods: Modification[];
  trace: Record<string, Record<string, unknown> | undefined>;
  output: string;
}

async function run(
  raw: Buffer,
  opts: {
    notice?: string;
    direction?: 'inbound' | 'outbound';
    from?: string;
    auth?: Record<string, unknown> | null;
  } = {},
): Promise<Run> {
  const env = fakeEnv(settings);
  const rules = [];
  if (opts.auth !== null)
    rules.push(
      authenticationRule.create(
        authenticationSchema.parse({ dns_servers: [server], dns_timeout: '500ms', ...opts.auth }),
        env,
      ),
    );
  rules.push(
    disclaimerRule.create(
      disclaimerSchema.parse({ inbound: { text: 'This message came from outside.', notice: opts.notice ?? 'body' } }),
      env,
    ),
  );
  const engine = new PolicyEngine(rules);
  const from = opts.from ?? 'a@outside.test';
  const msg = fakeMessage(raw, opts.direction ?? 'inbound', from);
  const result = await engine.run('eom', { conn: conn(), msg, signal: AbortSignal.timeout(10_000) });
  const split = raw.indexOf('\r\n\r\n');
  const headers = raw
    .subarray(0, split + 2)
    .toString('latin1')
    .split(/\r\n(?![ \t])/)
    .filter(Boolean)
    .map((l) => ({ name: l.slice(0, l.indexOf(':')), value: l.slice(l.indexOf(':') + 1) }));
  const output = (await applyModifications(headers, raw.subarray(split + 4), result.mods)).toString('latin1');
  return { mods: result.mods, trace: Object.fromEntries(result.trace.map((t) => [t.rule, t.details])), output };
}

/** RFC 5322 comments removed (nested, with quoted-pairs), as a reader of the header sees the rest. */
function withoutComments(v: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === '\\') {
      if (depth === 0) out += c + (v[i + 1] ?? '');
      i++;
    } else if (quoted) {
      out += c;
      if (c === '"') quoted = false;
    } else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) {
      out += c;
      if (c === '"') quoted = true;
    }
  }
  return out;
}

const bodyAfter = (m: string | Buffer) => {
  const s = m.toString('latin1');
  return s.slice(s.indexOf('\r\n\r\n') + 4);
};
const arValue = (r: Run) => {
  const m = r.mods.find((x) => x.type === 'insertHeader' && x.name === 'Authentication-Results');
  return m && m.type === 'insertHeader' ? m.value : '';
};

describe('rule authentication', () => {
  it('records dkim, spf and dmarc pass under our authserv-id, at the top, and in the trace', async () => {
    const r = await run(await sign(plain()));
    const ar = arValue(r);
    assert.match(ar, /^gw\.example\.test;\n/);
    assert.match(ar, /dkim=pass header\.i=@outside\.test header\.s=ed header\.a=ed25519-sha256/);
    assert.match(ar, /spf=pass .*smtp\.mailfrom=a@outside\.test smtp\.helo=mail\.outside\.test/);
    assert.match(ar, /dmarc=pass \(p=REJECT/);
    const ins = r.mods.find((x) => x.type === 'insertHeader');
    assert.equal(ins && ins.type === 'insertHeader' ? ins.index : -1, 0);
    assert.deepEqual(
      {
        dkim: r.trace.authentication?.dkim,
        spf: r.trace.authentication?.spf,
        dmarc: r.trace.authentication?.dmarc,
        p: r.trace.authentication?.dmarc_policy,
      },
      { dkim: 'pass(outside.test,aligned)', spf: 'pass', dmarc: 'pass', p: 'reject' },
    );
  });

  it('a tampered body does not pass DKIM (mailauth says neutral) and, with SPF from another domain, fails DMARC', async () => {
    const signed = await sign(plain());
    const tampered = Buffer.from(signed.toString('latin1').replace('Hello.', 'Hullo.'), 'latin1');
    const r = await run(tampered, { notice: 'header' });
    assert.match(arValue(r), /dkim=neutral \(body hash did not verify\)/);
    assert.match(arValue(r), /dmarc=pass/, 'SPF still passes and is aligned');
    const other = await run(tampered, { from: 'x@relaxed.test', notice: 'header' });
    // The envelope is relaxed.test, the From is outside.test: neither identifier aligns.
    assert.match(arValue(other), /spf=pass .*smtp\.mailfrom=x@relaxed\.test/);
    assert.match(arValue(other), /dmarc=fail/);
  });

  it('removes incoming Authentication-Results that claim our authserv-id (any case), keeps others', async () => {
    const raw = await sign(
      plain(
        'a@outside.test',
        'Authentication-Results: other.test; dkim=pass\nAuthentication-Results: GW.example.test; dkim=pass; dmarc=pass\nAuthentication-Results: (comment) gw.example.test;\n spf=pass\n',
      ),
    );
    const r = await run(raw, { notice: 'header' });
    const removed = r.mods.filter((m) => m.type === 'changeHeader' && m.name === 'Authentication-Results');
    assert.deepEqual(
      removed.map((m) => (m.type === 'changeHeader' ? [m.index, m.value] : [])),
      [
        [3, ''],
        [2, ''],
      ],
    );
    assert.equal(r.trace.authentication?.forged_removed, 2);
    assert.equal((r.output.match(/^Authentication-Results: gw\.example\.test;/gim) ?? []).length, 1, r.output);
    assert.match(r.output, /^Authentication-Results: other\.test; dkim=pass/m);
  });

  it('a "(" in the envelope sender cannot swallow the results after it into a comment', async () => {
    // Security regression: mailauth escapes ")" in the SPF comment but not "(", so the comment
    // "(… domain of "a(b"@relaxed.test …)" stayed open to the end of the header and a reader
    // saw no dmarc result at all (a fail turned into nothing).
    const raw = crlf('From: x@outside.test\nSubject: hi\n\nHello.\n');
    const r = await run(raw, { notice: 'header', from: '"a(b"@relaxed.test' });
    const visible = withoutComments(arValue(r));
    assert.match(visible, /spf=pass/);
    assert.match(visible, /dmarc=fail/, arValue(r));
  });

  it('closes and flattens comments whatever is in them', () => {
    assert.equal(closedComments('spf=pass (x "a(b" y) smtp.mailfrom=z'), 'spf=pass (x "a\\(b" y) smtp.mailfrom=z');
    assert.equal(closedComments('a=b (open'), 'a=b (open)');
    assert.equal(closedComments('a=b (x\\) y\\'), 'a=b (x\\) y)');
    assert.equal(closedComments('a="q(x" (c) d'), 'a="q(x" (c) d');
  });

  it('outbound mail is not checked and gets no header', async () => {
    const r = await run(plain('a@example.test'), { direction: 'outbound', from: 'a@example.test' });
    assert.equal(arValue(r), '');
    assert.equal(r.trace.authentication, undefined);
  });

  it('a DNS server that never answers gives temperror results before the deadline, not a refusal', async () => {
    const silent = new FakeDns();
    silent.silentByDefault = true;
    const addr = await silent.start();
    try {
      const t0 = Date.now();
      const r = await run(await sign(plain()), {
        notice: 'header',
        auth: { dns_servers: [addr], dns_timeout: '200ms' },
      });
      assert.ok(Date.now() - t0 < 8_000);
      assert.match(arValue(r), /dkim=(temperror|neutral)/);
      assert.match(arValue(r), /spf=temperror/);
    } finally {
      await silent.stop();
    }
  });

  it('a check over its budget: no header, forged ones still removed, the message goes on', async () => {
    const silent = new FakeDns();
    silent.silentByDefault = true;
    const addr = await silent.start();
    try {
      const t0 = Date.now();
      const raw = await sign(plain('a@outside.test', 'Authentication-Results: gw.example.test; dmarc=pass\n'));
      const r = await run(raw, { notice: 'header', auth: { dns_servers: [addr], dns_timeout: '5s', budget: '300ms' } });
      assert.ok(Date.now() - t0 < 3_000, `took ${Date.now() - t0} ms`);
      assert.equal(arValue(r), '');
      assert.deepEqual(
        r.mods.find((m) => m.type === 'changeHeader'),
        { type: 'changeHeader', name: 'Authentication-Results', index: 1, value: '' },
      );
      assert.equal(r.trace.authentication?.error, 'took longer than the budget of 300 ms');
    } finally {
      await silent.stop();
    }
  });

  it('parses authserv-ids and builds a folded value', () => {
    assert.equal(authservIdOf('  (x) Example.COM; spf=pass'), 'example.com');
    assert.equal(authservIdOf('example.com 1; none'), 'example.com');
    assert.deepEqual(
      forgedIndexes(
        [
          { name: 'authentication-results', value: 'a.test; none' },
          { name: 'Subject', value: 'x' },
          { name: 'Authentication-Results', value: 'b.test;\n none' },
        ],
        'B.test',
      ),
      [2],
    );
    assert.equal(
      authenticationResultsValue({ authservId: 'a.test', lines: ['dkim=none', 'spf=none'] }),
      'a.test;\n\tdkim=none;\n\tspf=none',
    );
    assert.equal(authenticationSchema.safeParse({ authserv_id: 'bad id;' }).success, false);
    assert.equal(authenticationSchema.safeParse({ dns_servers: ['127.0.0.1:53; rm'] }).success, false);
  });
});

describe('inbound notice modes', () => {
  it('body: the text goes into the body (no valid signature to keep, or p=none)', async () => {
    const r = await run(plain('a@relaxed.test'), { from: 'a@relaxed.test' });
    assert.match(bodyAfter(r.output), /This message came from outside\./);
    assert.equal(r.trace.disclaimer?.notice, 'body');
  });

  it('body on p=reject mail with a valid aligned signature falls back to the banner header', async () => {
    const raw = await sign(plain());
    const r = await run(raw);
    assert.equal(bodyAfter(r.output), bodyAfter(raw), 'the body is unchanged');
    assert.match(r.output, /^X-External-Sender: This message came from outside\.$/m);
    assert.equal(r.trace.disclaimer?.notice, 'header');
    assert.match(String(r.trace.disclaimer?.notice_fallback), /body would break the DKIM signature/);
  });

  it('subject: the tag once, never twice on a reply; the body byte-identical', async () => {
    const raw = plain('a@relaxed.test');
    const r = await run(raw, { notice: 'subject', from: 'a@relaxed.test' });
    assert.match(r.output, /^Subject: \[EXTERNAL\] hello$/m);
    assert.equal(bodyAfter(r.output), bodyAfter(raw));
    const reply = crlf('From: a@relaxed.test\nSubject: Re: [external] hello\n\nHi.\n');
    const again = await run(reply, { notice: 'subject', from: 'a@relaxed.test' });
    assert.equal(again.mods.filter((m) => m.type !== 'insertHeader').length, 0);
    assert.equal(again.trace.disclaimer?.code, 'already-present');
  });

  it('header: a banner header only', async () => {
    const raw = plain('a@relaxed.test');
    const r = await run(raw, { notice: 'header', from: 'a@relaxed.test' });
    assert.deepEqual(
      r.mods.filter((m) => m.type !== 'insertHeader'),
      [{ type: 'addHeader', name: 'X-External-Sender', value: 'This message came from outside.' }],
    );
  });

  it('auto: body without a valid signature, subject when no valid signature covers Subject, else the banner', async () => {
    const unsigned = await run(plain('a@relaxed.test'), { notice: 'auto', from: 'a@relaxed.test' });
    assert.equal(unsigned.trace.disclaimer?.notice, 'body');
    const noSubject = await run(await sign(plain(), 'From:To:Message-ID'), { notice: 'auto' });
    assert.equal(noSubject.trace.disclaimer?.notice, 'subject');
    assert.match(noSubject.output, /^Subject: \[EXTERNAL\] hello$/m);
    const covered = await run(await sign(plain()), { notice: 'auto' });
    assert.equal(covered.trace.disclaimer?.notice, 'header');
  });

  it('auto without rule authentication: any DKIM-Signature counts as valid and covering everything', async () => {
    const r = await run(await sign(plain('a@relaxed.test')), { notice: 'auto', from: 'a@relaxed.test', auth: null });
    assert.equal(r.trace.disclaimer?.notice, 'header');
    assert.equal(r.trace.disclaimer?.notice_auto, 'headers');
    // An explicit mode without verified results does as configured: the DMARC policy is unknown.
    const body = await run(await sign(plain()), { auth: null });
    assert.equal(body.trace.disclaimer?.notice, 'body');
  });

  it('header mode does not add a second banner on a second pass', async () => {
    const first = await run(plain('a@relaxed.test'), { notice: 'header', from: 'a@relaxed.test' });
    const again = await run(Buffer.from(first.output, 'latin1'), { notice: 'header', from: 'a@relaxed.test' });
    assert.equal((again.output.match(/^X-External-Sender:/gm) ?? []).length, 1);
    assert.equal(again.trace.disclaimer?.code, 'already-present');
  });

  it('tags encoded subjects and finds the tag inside encoded-words', () => {
    assert.equal(taggedSubject('=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=', '[EXTERNAL]'), '[EXTERNAL] =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=');
    assert.equal(taggedSubject('=?UTF-8?Q?=5BEXTERNAL=5D_hi?=', '[EXTERNAL]'), null);
    assert.equal(taggedSubject(undefined, '[EXTERN]'), '[EXTERN]');
    const encoded = taggedSubject('x', '[Extern – außen]')!;
    assert.match(encoded, /^[\x20-\x7e]+$/, 'ASCII on the wire');
    assert.equal(libmime.decodeWords(encoded), '[Extern – außen] x');
    assert.equal(taggedSubject(encoded, '[Extern – außen]'), null);
    assert.equal(disclaimerSchema.safeParse({ inbound: { text: 'x', notice: 'banner' } }).success, false);
  });
});

describe('ARC seal', () => {
  it('body mode on p=reject mail: with a seal the notice goes into the body and the ARC set verifies (cv=none, i=1)', async () => {
    const raw = await sign(plain());
    const r = await run(raw, { auth: { arc_seal: SEAL } });
    assert.equal(r.trace.disclaimer?.notice, 'body');
    assert.equal(r.trace.disclaimer?.notice_fallback, undefined);
    assert.match(bodyAfter(r.output), /This message came from outside\./);
    assert.equal(r.trace.authentication?.arc_sealed, 'gw.example.test/arc');
    assert.match(r.output, /^ARC-Seal: i=1; a=rsa-sha256; .*cv=none/m);
    assert.match(r.output, /^ARC-Authentication-Results: i=1; gw\.example\.test;/m);
    const names = r.output
      .split('\r\n')
      .filter((l) => /^[A-Za-z-]+:/.test(l))
      .map((l) => l.slice(0, l.indexOf(':')));
    assert.deepEqual(names.slice(0, 4), [
      'ARC-Seal',
      'ARC-Message-Signature',
      'ARC-Authentication-Results',
      'Authentication-Results',
    ]);
    // Another hop checks the chain (mailauth here; dkimpy in the e2e test).
    const next = await authenticate(Buffer.from(r.output, 'latin1'), {
      ip: '192.0.2.1',
      helo: 'x',
      sender: 'a@outside.test',
      mta: 'next.test',
      resolver: async (name: string, type: string) => {
        const { Resolver } = await import('node:dns/promises');
        const res = new Resolver();
        res.setServers([server]);
        return res.resolve(name, type) as Promise<string[][]>;
      },
      disableBimi: true,
    });
    assert.equal((next.arc as { status: { result: string } }).status.result, 'pass');
    assert.equal(
      (next.dkim.results as Array<{ status: { result: string } }>)[0]!.status.result,
      'neutral',
      'the original signature is broken: that is why we seal',
    );
  });

  it('is not added when relayguard only adds header fields', async () => {
    const r = await run(await sign(plain()), { notice: 'header', auth: { arc_seal: SEAL } });
    assert.doesNotMatch(r.output, /^ARC-Seal:/m);
  });

  it('a missing, unreadable or wrong key is a policy error naming the file', () => {
    const check = (extra: string) =>
      parsePolicyText(
        `rules:\n  authentication:\n    arc_seal: { domain: gw.example.test, selector: arc, ${extra} }\n`,
        'p.yaml',
      );
    const missing = check(`private_key_file: ${join(keyDir, 'nope.pem')}`);
    assert.equal(missing.ok, false);
    assert.match(JSON.stringify(missing.ok ? '' : missing.errors), /cannot read private key file .*nope\.pem: ENOENT/);
    const notKey = join(keyDir, 'not.pem');
    writeFileSync(notKey, 'hello');
    assert.match(
      JSON.stringify((check(`private_key_file: ${notKey}`) as { errors: unknown }).errors),
      /is not a PEM private key/,
    );
    assert.match(
      JSON.stringify((check(`private_key_file: ${SEAL_KEY}, algorithm: ed25519-sha256`) as { errors: unknown }).errors),
      /holds a rsa key, ed25519-sha256 needs ed25519/,
    );
    assert.equal(check(`private_key_file: ${SEAL_KEY}`).ok, true);
  });
});
