// Rule dkim_sign through the policy engine after the disclaimer's rewrite: the signatures cover
// the message as delivered and verify (mailauth here; dkimpy in the e2e test), one per key of
// the From domain, rsa-sha256 and ed25519-sha256.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dkimVerify } from 'mailauth';
import { dkimTxtRecord } from '../../src/deps/signing-key.js';
import { silentLogger } from '../../src/ops/logging.js';
import { PolicyEngine } from '../../src/engine/engine.js';
import type { ConnectionContext } from '../../src/policy/types.js';
import { dkimSignRule, dkimSignSchema, fromDomain, keysFor } from '../../src/rules/dkim-sign.js';
import { disclaimerRule, disclaimerSchema } from '../../src/rules/disclaimer.js';
import { applyModifications, splitMessage } from '../../src/session/offline-message.js';
import { fakeEnv, fakeMessage, loadCorpusPolicy } from '../golden/disclaimer/run-case.js';
import { FakeDns } from './dnsbl-fake-server.js';

const { settings } = loadCorpusPolicy();
const dir = mkdtempSync(join(tmpdir(), 'relayguard-dkim-sign-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const pem = (type: 'rsa' | 'ed25519') =>
  (type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519')).privateKey
    .export({ type: 'pkcs8', format: 'pem' })
    .toString();
const files = { rsa: join(dir, 'rsa.pem'), ed: join(dir, 'ed.pem'), sub: join(dir, 'sub.pem') };
const pems = { rsa: pem('rsa'), ed: pem('ed25519'), sub: pem('rsa') };
for (const k of ['rsa', 'ed', 'sub'] as const) writeFileSync(files[k], pems[k]);
const KEYS = [
  { domain: 'example.test', selector: 'r1', private_key_file: files.rsa },
  { domain: 'example.test', selector: 'e1', private_key_file: files.ed, algorithm: 'ed25519-sha256' },
  { domain: 'sales.example.test', selector: 's1', private_key_file: files.sub },
];

const dns = new FakeDns();
let server = '';
before(async () => {
  server = await dns.start();
  for (const [k, d, s] of [
    ['rsa', 'example.test', 'r1'],
    ['ed', 'example.test', 'e1'],
    ['sub', 'sales.example.test', 's1'],
  ] as const) {
    const r = dkimTxtRecord(pems[k], d, s);
    dns.set(r.name, { a: [], txt: r.value.match(/.{1,255}/g)! });
  }
});
after(() => dns.stop());

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');
const conn = {
  id: 'c',
  client: { ip: '10.0.0.5', hostname: 'x', port: 1, family: 'inet' },
  macros: { get: () => undefined },
  internalNetwork: true,
  networkGroups: [],
  state: new Map(),
  log: silentLogger(),
} as ConnectionContext;

async function send(
  raw: Buffer,
): Promise<{ output: Buffer; trace: Record<string, Record<string, unknown> | undefined> }> {
  const env = fakeEnv(settings);
  const engine = new PolicyEngine([
    disclaimerRule.create(disclaimerSchema.parse({ outbound: { text: 'Confidential.' } }), env),
    dkimSignRule.create(dkimSignSchema.parse({ keys: KEYS }), env),
  ]);
  const r = await engine.run('eom', {
    conn,
    msg: fakeMessage(raw, 'outbound', 'a@example.test'),
    signal: AbortSignal.timeout(10_000),
  });
  const { headers, body } = splitMessage(raw);
  return {
    output: await applyModifications(headers, body, r.mods),
    trace: Object.fromEntries(r.trace.map((t) => [t.rule, t.details])),
  };
}

async function verify(message: Buffer) {
  const { Resolver } = await import('node:dns/promises');
  const res = new Resolver();
  res.setServers([server]);
  const r = await dkimVerify(message, {
    resolver: (name: string, type: string) => res.resolve(name, type) as Promise<string[][]>,
  });
  return (r.results as Array<{ signingDomain: string; selector: string; status: { result: string } }>).map(
    (x) => `${x.selector}.${x.signingDomain}=${x.status.result}`,
  );
}

describe('rule dkim_sign', () => {
  it('signs after the disclaimer with every key of the From domain, and the signatures verify', async () => {
    const r = await send(crlf('From: Alice <a@example.test>\nTo: b@partner.test\nSubject: x\n\nHello.\n'));
    assert.match(r.output.toString('latin1'), /Confidential\./);
    assert.deepEqual((await verify(r.output)).sort(), ['e1.example.test=pass', 'r1.example.test=pass']);
    assert.equal(r.trace.dkim_sign?.signed, 'example.test/r1 example.test/e1');
  });

  it('a subdomain with its own key gets that key only; a foreign From domain is not signed', async () => {
    const sub = await send(crlf('From: s@sales.example.test\nSubject: x\n\nHi.\n'));
    assert.deepEqual(await verify(sub.output), ['s1.sales.example.test=pass']);
    const other = await send(crlf('From: x@elsewhere.test\nSubject: x\n\nHi.\n'));
    assert.doesNotMatch(other.output.toString('latin1'), /DKIM-Signature/);
    assert.equal(other.trace.dkim_sign?.skipped, 'no key for elsewhere.test');
  });

  it('reads the From domain carefully', () => {
    assert.deepEqual(fromDomain([{ name: 'From', value: '"x@evil.test" <a@Example.TEST>' }]), {
      domain: 'example.test',
    });
    assert.deepEqual(
      fromDomain([
        { name: 'From', value: 'a@example.test' },
        { name: 'from', value: 'b@example.test' },
      ]),
      { skip: 'several From headers' },
    );
    assert.deepEqual(fromDomain([{ name: 'From', value: 'a@example.test, b@evil.test' }]), {
      skip: 'From has addresses in several domains',
    });
    assert.deepEqual(keysFor([], 'x.test'), []);
  });
});
