// Rule 1 (no open relay) through the real engine and Conversation (test/support/rule-kit.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { policySchema } from '../../src/rules/policy-schema.js';
import type { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import type { Conversation } from '../../src/session/conversation.js';
import { kitMail, kitPolicy } from '../support/rule-kit.js';

const NETWORKS = {
  networks: { internal: ['127.0.0.0/8', '10.0.0.0/8', 'fd00::/8'], groups: { partner: ['198.51.100.0/24'] } },
};
const compile = (relay: Record<string, unknown> = {}): CompiledPolicy => kitPolicy({ relay }, NETWORKS);

async function session(policy: CompiledPolicy, ip: string, auth?: string): Promise<Conversation> {
  return (await kitMail(policy, '<sender@outside.test>', { ip, ...(auth ? { auth } : {}) })).c;
}

test('external client: foreign recipient refused with 554 5.7.1, local recipient of the same message accepted', async () => {
  const c = await session(compile(), '203.0.113.9');
  const foreign = await c.rcpt(['<someone@elsewhere.test>']);
  assert.equal(foreign.action, 'reject');
  assert.equal(foreign.reply?.code, 554);
  assert.equal(foreign.reply?.enhanced, '5.7.1');
  assert.match(foreign.reply?.text ?? '', /Relay access denied/);
  const local = await c.rcpt(['<user@example.test>']);
  assert.equal(local.action, 'continue');
  assert.deepEqual(
    c.msg?.recipients.map((r) => [r.address.raw, r.refused === true]),
    [
      ['someone@elsewhere.test', true],
      ['user@example.test', false],
    ],
  );
});

test('internal network and authenticated client may relay anywhere', async () => {
  const internal = await session(compile(), '10.1.2.3');
  assert.equal((await internal.rcpt(['<x@elsewhere.test>'])).action, 'continue');
  const authed = await session(compile(), '203.0.113.9', 'alice');
  assert.equal(authed.msg?.direction, 'outbound');
  assert.equal((await authed.rcpt(['<x@elsewhere.test>'])).action, 'continue');
});

test('partner network is external: may not relay', async () => {
  const c = await session(compile(), '198.51.100.7');
  assert.equal((await c.rcpt(['<x@elsewhere.test>'])).action, 'reject');
});

test('IPv6: internal range relays, outside v6 and v4-mapped outside addresses do not', async () => {
  assert.equal((await (await session(compile(), 'fd00::25')).rcpt(['<x@elsewhere.test>'])).action, 'continue');
  assert.equal((await (await session(compile(), '2001:db8::9')).rcpt(['<x@elsewhere.test>'])).action, 'reject');
  assert.equal((await (await session(compile(), '::ffff:203.0.113.9')).rcpt(['<x@elsewhere.test>'])).action, 'reject');
  assert.equal((await (await session(compile(), '::ffff:10.0.0.1')).rcpt(['<x@elsewhere.test>'])).action, 'continue');
});

test('routing tricks in the local part and look-alike domains are refused from outside', async () => {
  const c = await session(compile(), '203.0.113.9');
  for (const rcpt of [
    '<x%elsewhere.test@example.test>',
    '<elsewhere.test!x@example.test>',
    '<"x@elsewhere.test"@example.test>',
    '<x@example.test.evil>',
    '<x@notexample.test>',
    '<x@[192.0.2.1]>',
    '<nobody>',
  ]) {
    assert.equal((await c.rcpt([rcpt])).action, 'reject', rcpt);
  }
  for (const rcpt of ['<X@EXAMPLE.TEST>', '<x@example.test.>', '<@relay.test:x@example.test>', '<Postmaster>']) {
    assert.equal((await c.rcpt([rcpt])).action, 'continue', rcpt);
  }
});

test('subdomains only with include_subdomains; relay_domains and trusted_networks extend the rule', async () => {
  const strict = await session(compile(), '203.0.113.9');
  assert.equal((await strict.rcpt(['<x@sub.example.test>'])).action, 'reject');
  const subs = await session(compile({ include_subdomains: true }), '203.0.113.9');
  assert.equal((await subs.rcpt(['<x@sub.example.test>'])).action, 'continue');
  const relayed = await session(compile({ relay_domains: ['backup.test'] }), '203.0.113.9');
  assert.equal((await relayed.rcpt(['<x@backup.test>'])).action, 'continue');
  const trusted = await session(compile({ trusted_networks: ['2001:db8:5::/48'] }), '2001:db8:5::1');
  assert.equal((await trusted.rcpt(['<x@elsewhere.test>'])).action, 'continue');
});

test('monitor mode records the refusal and changes nothing', async () => {
  const c = await session(compile({ mode: 'monitor' }), '203.0.113.9');
  const out = await c.rcpt(['<x@elsewhere.test>']);
  assert.equal(out.action, 'continue');
  assert.equal(c.msg?.recipients[0]?.refused, undefined);
  const entry = c.currentTrace.find((t) => t.rule === 'relay');
  assert.equal(entry?.action, 'reject');
  assert.equal(entry?.monitor, true);
  assert.equal(entry?.recipient, 'x@elsewhere.test');
});

test('mode off loads no rule', () => {
  assert.equal(compile({ mode: 'off' }).engine.activeRules().length, 0);
});

test('schema rejects unknown keys', () => {
  assert.equal(policySchema.safeParse({ rules: { relay: { allow_all: true } } }).success, false);
});
