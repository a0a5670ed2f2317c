// Rule 4 (network access and anti-spoofing) through the real engine and Conversation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { headerAddresses } from '../../src/rules/access.js';
import { kitClient, kitMail, kitPolicy } from '../support/rule-kit.js';

const NETWORKS = {
  networks: { internal: ['127.0.0.0/8', '10.0.0.0/8', 'fd00::/8'], groups: { partner: ['198.51.100.0/24'] } },
};
const compile = (
  access: Record<string, unknown> = { deny_networks: ['192.0.2.0/24', '2001:db8:bad::/48'] },
): CompiledPolicy => kitPolicy({ access }, NETWORKS);

async function connect(policy: CompiledPolicy, ip: string) {
  const { c, connect: out } = await kitClient(policy, { ip, helo: null });
  return { c, out };
}

async function mail(policy: CompiledPolicy, ip: string, from: string, auth?: string) {
  const { c, mail: out } = await kitMail(policy, from, { ip, ...(auth ? { auth } : {}) });
  return { c, out };
}

/** Sends a message with the given From: values; returns the end-of-headers outcome. */
async function withFrom(policy: CompiledPolicy, ip: string, ...froms: string[]) {
  const { c } = await mail(policy, ip, '<bounce@outside.test>');
  await c.rcpt(['<user@example.test>']);
  await c.data();
  for (const f of froms) await c.header('From', f, false);
  await c.header('Subject', 'hi', false);
  return { c, out: await c.eoh() };
}

test('denied network refused at connect with 554 5.7.1 (IPv4 and IPv6)', async () => {
  for (const ip of ['192.0.2.10', '::ffff:192.0.2.200', '2001:db8:bad::25']) {
    const { out } = await connect(compile(), ip);
    assert.equal(out.action, 'reject', ip);
    assert.equal(out.reply?.code, 554);
    assert.equal(out.reply?.enhanced, '5.7.1');
  }
  for (const ip of ['192.0.3.1', '203.0.113.9', '2001:db8:bae::1', '127.0.0.1']) {
    assert.equal((await connect(compile(), ip)).out.action, 'continue', ip);
  }
});

test('allow list: only listed and internal networks may connect; deny wins', async () => {
  const policy = compile({
    allow_networks: ['198.51.100.0/24', '2001:db8:1::/64'],
    deny_networks: ['198.51.100.66/32'],
  });
  assert.equal((await connect(policy, '198.51.100.7')).out.action, 'continue');
  assert.equal((await connect(policy, '2001:db8:1::7')).out.action, 'continue');
  assert.equal((await connect(policy, '10.9.9.9')).out.action, 'continue');
  assert.equal((await connect(policy, 'fd00::1')).out.action, 'continue');
  assert.equal((await connect(policy, '203.0.113.9')).out.action, 'reject');
  assert.equal((await connect(policy, '2001:db8:2::7')).out.action, 'reject');
  assert.equal((await connect(policy, '198.51.100.66')).out.action, 'reject');
});

test('external client with a local-domain envelope sender: 5xx at MAIL; internal and authenticated may', async () => {
  const policy = compile();
  const ext = await mail(policy, '203.0.113.9', '<ceo@example.test>');
  assert.equal(ext.out.action, 'reject');
  assert.equal(ext.out.reply?.code, 550);
  assert.equal(ext.out.reply?.enhanced, '5.7.1');
  assert.equal((await mail(policy, '203.0.113.9', '<ceo@Sub.Example.Test>')).out.action, 'reject');
  assert.equal((await mail(policy, '2001:db8::9', '<ceo@example.test>')).out.action, 'reject');
  assert.equal((await mail(policy, '198.51.100.7', '<ceo@example.test>')).out.action, 'reject');
  assert.equal((await mail(policy, '10.0.0.5', '<ceo@example.test>')).out.action, 'continue');
  assert.equal((await mail(policy, 'fd00::5', '<ceo@example.test>')).out.action, 'continue');
  assert.equal((await mail(policy, '203.0.113.9', '<ceo@example.test>', 'alice')).out.action, 'continue');
  assert.equal((await mail(policy, '203.0.113.9', '<>')).out.action, 'continue');
  assert.equal((await mail(policy, '203.0.113.9', '<x@example.test.evil>')).out.action, 'continue');
});

test('external client with a local-domain From: refused at end of headers', async () => {
  const policy = compile();
  for (const from of [
    'CEO <ceo@example.test>',
    'ceo@example.test',
    '"Boss" <ceo@EXAMPLE.test>',
    'ceo @ example.test (obsolete)',
    'x@outside.test, y@example.test',
  ]) {
    const { out } = await withFrom(policy, '203.0.113.9', from);
    assert.equal(out.action, 'reject', from);
    assert.equal(out.reply?.code, 550, from);
  }
  // A second From: header counts as much as the first.
  assert.equal((await withFrom(policy, '203.0.113.9', 'a@outside.test', 'b@example.test')).out.action, 'reject');
  for (const from of [
    'Friend <friend@outside.test>',
    '"Alice (alice@example.test) via List" <list@lists.test>',
    'x@example.test.evil',
  ]) {
    assert.equal((await withFrom(policy, '203.0.113.9', from)).out.action, 'continue', from);
  }
  assert.equal((await withFrom(policy, '127.0.0.1', 'ceo@example.test')).out.action, 'continue');
});

test('allow_spoofing_from exempts a network; switches turn each check off', async () => {
  const exempt = compile({ allow_spoofing_from: ['198.51.100.0/24'] });
  assert.equal((await mail(exempt, '198.51.100.7', '<app@example.test>')).out.action, 'continue');
  assert.equal((await withFrom(exempt, '198.51.100.7', 'app@example.test')).out.action, 'continue');
  assert.equal((await mail(exempt, '203.0.113.9', '<app@example.test>')).out.action, 'reject');
  const noHeader = compile({ anti_spoofing: { header_from: false } });
  assert.equal((await withFrom(noHeader, '203.0.113.9', 'ceo@example.test')).out.action, 'continue');
  assert.equal((await mail(noHeader, '203.0.113.9', '<ceo@example.test>')).out.action, 'reject');
  const exact = compile({ anti_spoofing: { include_subdomains: false } });
  assert.equal((await mail(exact, '203.0.113.9', '<x@sub.example.test>')).out.action, 'continue');
});

test('monitor mode: refusals recorded, nothing refused', async () => {
  const policy = compile({ mode: 'monitor', deny_networks: ['192.0.2.0/24'] });
  const { c, out } = await connect(policy, '192.0.2.10');
  assert.equal(out.action, 'continue');
  assert.deepEqual(
    c.currentTrace.map((t) => [t.rule, t.phase, t.action, t.monitor]),
    [['access', 'connect', 'reject', true]],
  );
  const spoof = await mail(policy, '203.0.113.9', '<ceo@example.test>');
  assert.equal(spoof.out.action, 'continue');
  assert.equal(spoof.c.currentTrace.find((t) => t.phase === 'envfrom')?.monitor, true);
});

test('headerAddresses finds mailboxes, not display names or comments', () => {
  assert.deepEqual(headerAddresses('"a@x.test" <b@y.test>'), ['b@y.test']);
  assert.deepEqual(headerAddresses('b@y.test (c@z.test)'), ['b@y.test']);
  assert.deepEqual(headerAddresses('a@x.test, Bob <b@y.test>'), ['b@y.test', 'a@x.test']);
  assert.deepEqual(headerAddresses('team: a@x.test, b@y.test;'), ['a@x.test', 'b@y.test']);
  assert.deepEqual(headerAddresses('"quoted \\" still" <q@x.test>'), ['q@x.test']);
  assert.deepEqual(headerAddresses('undisclosed-recipients:;'), []);
});

test('headerAddresses closes up blanks around "@" (obsolete syntax) in linear time', { timeout: 20_000 }, () => {
  assert.deepEqual(headerAddresses('alice @ example.test, bob@ x.test'), ['alice@example.test', 'bob@x.test']);
  // 400 000 blanks: the old /\s*@\s*/g retried every position of the run (minutes).
  assert.deepEqual(headerAddresses(`${' '.repeat(400_000)}mallory@x.test${' '.repeat(400_000)}`), ['mallory@x.test']);
});
