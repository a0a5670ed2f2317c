// Rule 3 (message size) through the real engine and Conversation, through the rule kit (test/support/rule-kit.ts).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { policySchema } from '../../src/rules/policy-schema.js';
import type { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { declaredSize, sizeRule } from '../../src/rules/size.js';
import type { Conversation } from '../../src/session/conversation.js';
import { kitMail, kitPolicy } from '../support/rule-kit.js';

const MiB = 1024 * 1024;
const LIMIT = 2 * MiB;
/** Milter body chunks are at most 65535 bytes. */
const CHUNK = 65535;

const compile = (size: Record<string, unknown> = { max_bytes: '2MiB' }): CompiledPolicy =>
  kitPolicy({ size }, { networks: { internal: ['127.0.0.0/8', '10.0.0.0/8'] } });

/** Closed at the end: a body kept past the end of a test would stay spilled in the temporary directory. */
const conversations: Conversation[] = [];
after(async () => {
  for (const c of conversations) await c.close();
});

async function session(policy: CompiledPolicy, ip: string, mailArgs: string[] = []) {
  const { c, mail } = await kitMail(policy, '<sender@outside.test>', { ip, args: mailArgs });
  conversations.push(c);
  return { c, mail };
}

/** Sends headers and `bodyBytes` of body in milter-sized chunks; returns the first refusal or the eom outcome. */
async function send(c: Conversation, bodyBytes: number) {
  await c.rcpt(['<user@example.test>']);
  await c.data();
  await c.header('From', 'sender@outside.test', false);
  await c.header('Subject', 'size test', false);
  await c.eoh();
  let sent = 0;
  let chunks = 0;
  while (sent < bodyBytes) {
    const n = Math.min(CHUNK, bodyBytes - sent);
    const out = await c.bodyChunk(Buffer.alloc(n, 0x61));
    sent += n;
    chunks++;
    if (out.action !== 'continue') return { out, sent, chunks, final: await c.eom() };
  }
  return { out: await c.eom(), sent, chunks, final: undefined };
}

test('SIZE= over the limit: 552 5.3.4 at MAIL', async () => {
  const { mail } = await session(compile(), '203.0.113.9', [`SIZE=${LIMIT + 1}`]);
  assert.equal(mail.action, 'reject');
  assert.equal(mail.reply?.code, 552);
  assert.equal(mail.reply?.enhanced, '5.3.4');
});

test('SIZE= at exactly the limit is accepted at MAIL', async () => {
  const { mail } = await session(compile(), '203.0.113.9', [`SIZE=${LIMIT}`, 'BODY=8BITMIME']);
  assert.equal(mail.action, 'continue');
});

test('without SIZE=, a 2.1 MB message is refused with 552 5.3.4 on the chunk that passes 2 MiB', async () => {
  const { c } = await session(compile(), '203.0.113.9');
  const r = await send(c, 2_100_000);
  assert.equal(r.out.action, 'reject');
  assert.equal(r.out.reply?.code, 552);
  assert.equal(r.out.reply?.enhanced, '5.3.4');
  // Refused on the very chunk that crossed the limit (headers count too), not at the end.
  const block = c.headerBlock().length;
  assert.ok(block + r.sent > LIMIT);
  assert.ok(block + r.sent - CHUNK <= LIMIT);
  assert.ok(r.sent < 2_100_000);
  // End of data repeats the refusal.
  assert.equal(r.final?.action, 'reject');
  assert.equal(r.final?.reply?.code, 552);
  assert.equal(r.final?.reply?.enhanced, '5.3.4');
});

test('after the refusal, further body chunks are neither judged nor kept', async () => {
  const { c } = await session(compile(), '203.0.113.9');
  await c.rcpt(['<user@example.test>']);
  await c.data();
  await c.eoh();
  let out = await c.bodyChunk(Buffer.alloc(CHUNK, 0x61));
  while (out.action === 'continue') out = await c.bodyChunk(Buffer.alloc(CHUNK, 0x61));
  const judged = c.currentTrace.filter((t) => t.rule === 'size' && t.phase === 'body').length;
  const kept = c.msg!.source.bodySize;
  const again = await c.bodyChunk(Buffer.alloc(CHUNK, 0x61));
  assert.equal(again.action, 'reject');
  assert.equal(c.currentTrace.filter((t) => t.rule === 'size' && t.phase === 'body').length, judged);
  assert.equal(c.msg!.source.bodySize, kept);
});

test('headers count: body just under the limit plus the header block is over it', async () => {
  const { c } = await session(compile(), '203.0.113.9');
  const r = await send(c, LIMIT - 10);
  assert.equal(r.out.action, 'reject');
  const entry = c.currentTrace.find((t) => t.rule === 'size' && t.action === 'reject');
  assert.ok(entry);
  assert.equal((entry.details as { limit: number }).limit, LIMIT);
  assert.ok((entry.details as { size: number }).size > LIMIT);
});

test('a message under the limit passes and its size is in the trace', async () => {
  const { c } = await session(compile(), '203.0.113.9');
  const r = await send(c, 100_000);
  assert.equal(r.out.action, 'continue');
  const entry = c.currentTrace.find((t) => t.rule === 'size' && t.phase === 'eom');
  const block = c.headerBlock().length;
  assert.equal((entry?.details as { size: number }).size, 100_000 + block);
});

test('per-direction limits: outbound may be bigger than inbound', async () => {
  const policy = compile({ max_bytes: { inbound: '1MiB', outbound: '4MiB' } });
  const inbound = await session(policy, '203.0.113.9', [`SIZE=${3 * MiB}`]);
  assert.equal(inbound.mail.action, 'reject');
  const outbound = await session(policy, '10.0.0.5', [`SIZE=${3 * MiB}`]);
  assert.equal(outbound.mail.action, 'continue');
  const counted = await send((await session(policy, '203.0.113.9')).c, 1_100_000);
  assert.equal(counted.out.action, 'reject');
});

test('monitor mode: the refusal is recorded, nothing is refused', async () => {
  const { c, mail } = await session(compile({ mode: 'monitor', max_bytes: '2MiB' }), '203.0.113.9', [
    `SIZE=${3 * MiB}`,
  ]);
  assert.equal(mail.action, 'continue');
  const atMail = c.currentTrace.find((t) => t.rule === 'size' && t.phase === 'envfrom');
  assert.equal(atMail?.action, 'reject');
  assert.equal(atMail?.monitor, true);
  const r = await send(c, 2_100_000);
  assert.equal(r.out.action, 'continue');
  assert.ok(c.currentTrace.some((t) => t.rule === 'size' && t.phase === 'body' && t.action === 'reject' && t.monitor));
});

test('SIZE= parsing: absent or malformed values are ignored', () => {
  assert.equal(declaredSize({}), null);
  assert.equal(declaredSize({ SIZE: '' }), null);
  assert.equal(declaredSize({ SIZE: '12x' }), null);
  assert.equal(declaredSize({ SIZE: '2097153' }), 2_097_153);
});

test('schema: units and defaults', () => {
  assert.equal(sizeRule.schema.parse({}).max_bytes, 10_240_000);
  assert.equal(sizeRule.schema.parse({ max_bytes: '2MiB' }).max_bytes, LIMIT);
  assert.deepEqual(sizeRule.schema.parse({ max_bytes: { inbound: '2M', outbound: 4096 } }).max_bytes, {
    inbound: LIMIT,
    outbound: 4096,
  });
  assert.equal(policySchema.safeParse({ rules: { size: { max_bytes: 'huge' } } }).success, false);
});
