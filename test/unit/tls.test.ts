// Rule 9 (TLS policy and TLS header) through the real engine and Conversation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { policySchema } from '../../src/rules/policy-schema.js';
import type { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { describeTls, tlsRank } from '../../src/rules/tls.js';
import { kitMail, kitPolicy } from '../support/rule-kit.js';

const TLS13: Array<[string, string]> = [
  ['{tls_version}', 'TLSv1.3'],
  ['{cipher}', 'TLS_AES_256_GCM_SHA384'],
  ['{cipher_bits}', '256'],
];

const NETWORKS = {
  networks: { internal: ['127.0.0.0/8', '10.0.0.0/8'], groups: { partner: ['198.51.100.0/24', '2001:db8:100::/48'] } },
};
const compile = (
  tls: Record<string, unknown> = { require: { networks: ['partner', '2001:db8:7::/48'] } },
): CompiledPolicy => kitPolicy({ tls }, NETWORKS);

async function mail(policy: CompiledPolicy, ip: string, tls?: Array<[string, string]>, from = '<x@partner.test>') {
  // Postfix sends the TLS macros with HELO once STARTTLS is done.
  const { c, mail: out } = await kitMail(policy, from, { ip, ...(tls ? { heloMacros: tls } : {}) });
  return { c, out };
}

test('partner network without TLS: 530 5.7.0 at MAIL; with TLS accepted', async () => {
  const policy = compile();
  const plain = await mail(policy, '198.51.100.7');
  assert.equal(plain.out.action, 'reject');
  assert.equal(plain.out.reply?.code, 530);
  assert.equal(plain.out.reply?.enhanced, '5.7.0');
  assert.match(plain.out.reply?.text ?? '', /STARTTLS/);
  assert.equal((await mail(policy, '198.51.100.7', TLS13)).out.action, 'continue');
});

test('IPv6: group and CIDR entries both apply', async () => {
  const policy = compile();
  assert.equal((await mail(policy, '2001:db8:100::5')).out.action, 'reject');
  assert.equal((await mail(policy, '2001:db8:7::5')).out.action, 'reject');
  assert.equal((await mail(policy, '2001:db8:7::5', TLS13)).out.action, 'continue');
  assert.equal((await mail(policy, '2001:db8:8::5')).out.action, 'continue');
});

test('other clients need no TLS', async () => {
  const policy = compile();
  assert.equal((await mail(policy, '203.0.113.9')).out.action, 'continue');
  assert.equal((await mail(policy, '127.0.0.1')).out.action, 'continue');
});

test('minimum version and cipher bits', async () => {
  const policy = compile({ require: { networks: ['partner'] }, min_version: 'TLSv1.2', min_cipher_bits: 128 });
  const old = await mail(policy, '198.51.100.7', [
    ['{tls_version}', 'TLSv1.1'],
    ['{cipher_bits}', '256'],
  ]);
  assert.equal(old.out.action, 'reject');
  assert.equal(old.out.reply?.code, 530);
  assert.match(old.out.reply?.text ?? '', /TLSv1\.1 is below TLSv1\.2/);
  assert.equal(
    (
      await mail(policy, '198.51.100.7', [
        ['{tls_version}', 'TLSv1.2'],
        ['{cipher_bits}', '256'],
      ])
    ).out.action,
    'continue',
  );
  assert.equal(
    (
      await mail(policy, '198.51.100.7', [
        ['{tls_version}', 'TLSv1.3'],
        ['{cipher_bits}', '56'],
      ])
    ).out.action,
    'reject',
  );
  assert.equal((await mail(policy, '198.51.100.7', [['{tls_version}', 'weird']])).out.action, 'reject');
});

test('sender domains that must come encrypted, from any network', async () => {
  const policy = compile({ require: { sender_domains: ['bank.test'] } });
  assert.equal((await mail(policy, '203.0.113.9', undefined, '<a@mail.bank.test>')).out.action, 'reject');
  assert.equal((await mail(policy, '203.0.113.9', TLS13, '<a@bank.test>')).out.action, 'continue');
  assert.equal((await mail(policy, '203.0.113.9', undefined, '<a@notbank.test>')).out.action, 'continue');
});

async function deliver(
  policy: CompiledPolicy,
  ip: string,
  tls: Array<[string, string]> | undefined,
  headers: Array<[string, string]> = [],
) {
  const { c } = await mail(policy, ip, tls);
  await c.rcpt(['<user@example.test>']);
  await c.data();
  for (const [n, v] of headers) await c.header(n, v, false);
  await c.eoh();
  await c.bodyChunk(Buffer.from('hello\r\n'));
  return c.eom();
}

test('TLS header added at end of message; forged copies removed', async () => {
  const policy = compile();
  const secure = await deliver(policy, '198.51.100.7', TLS13);
  assert.deepEqual(secure.mods, [
    { type: 'addHeader', name: 'X-Relayguard-TLS', value: 'version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256' },
  ]);
  const plain = await deliver(policy, '203.0.113.9', undefined, [
    ['x-relayguard-tls', 'version=TLSv1.3 forged'],
    ['X-Relayguard-TLS', 'forged again'],
  ]);
  assert.deepEqual(plain.mods, [
    { type: 'changeHeader', name: 'X-Relayguard-TLS', index: 2, value: '' },
    { type: 'changeHeader', name: 'X-Relayguard-TLS', index: 1, value: '' },
    { type: 'addHeader', name: 'X-Relayguard-TLS', value: 'none' },
  ]);
});

test('needs: TLS macros at HELO and MAIL, header actions only with a header', async () => {
  const rule = compile().engine.activeRules()[0]!;
  assert.ok(rule.needs?.macros?.helo?.includes('{tls_version}'));
  assert.ok(rule.needs?.macros?.envfrom?.includes('{cipher_bits}'));
  assert.deepEqual(rule.needs?.actions, ['addHeader', 'changeHeader']);
  const quiet = compile({ header: false }).engine.activeRules()[0]!;
  assert.equal(quiet.needs?.actions, undefined);
  assert.equal(quiet.handlers.eom, undefined);
});

test('monitor mode: refusal recorded, header not added', async () => {
  const policy = compile({ mode: 'monitor', require: { networks: ['partner'] } });
  const { c, out } = await mail(policy, '198.51.100.7');
  assert.equal(out.action, 'continue');
  const entry = c.currentTrace.find((t) => t.rule === 'tls');
  assert.equal(entry?.action, 'reject');
  assert.equal(entry?.monitor, true);
  const done = await deliver(policy, '198.51.100.7', undefined);
  assert.deepEqual(done.mods, []);
});

test('an unknown network group is refused when the policy is compiled', () => {
  assert.throws(() => compile({ require: { networks: ['partners'] } }), /no network group "partners"/);
  assert.equal(policySchema.safeParse({ rules: { tls: { require: { networks: ['Not A Group'] } } } }).success, false);
  assert.equal(policySchema.safeParse({ rules: { tls: { min_version: 'TLS1.2' } } }).success, false);
});

test('tlsRank orders protocol names; describeTls', () => {
  const order = ['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'].map((v) => tlsRank(v)!);
  assert.deepEqual(
    [...order].sort((a, b) => a - b),
    order,
  );
  assert.equal(tlsRank('TLSv1'), tlsRank('TLSv1.0'));
  assert.equal(tlsRank('bogus'), null);
  assert.equal(describeTls(undefined), 'none');
  assert.equal(describeTls({ version: 'TLSv1.2', verify: 'OK' }), 'version=TLSv1.2 verify=OK');
});
