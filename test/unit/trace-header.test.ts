// The trace_header rule through the real engine and Conversation: our header is added, and copies
// that came with the message are deleted first (a sender must not be able to forge it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { traceHeaderRule } from '../../src/rules/trace-header.js';
import { kitEnv, kitMail, kitPolicy } from '../support/rule-kit.js';

const compile = (trace: Record<string, unknown>): CompiledPolicy =>
  kitPolicy({ trace_header: trace }, { networks: { internal: ['127.0.0.0/8'] } });

/** One inbound message with two forged X-Relayguard headers among others. */
async function deliver(policy: CompiledPolicy) {
  const { c } = await kitMail(policy, '<sender@outside.test>', { ip: '203.0.113.9' });
  await c.rcpt(['<user@example.test>']);
  await c.data();
  await c.header('X-Relayguard', 'direction=outbound; conn=forged-1', true);
  await c.header('Subject', 'hello', true);
  await c.header('x-relayguard', 'direction=outbound; conn=forged-2', true);
  await c.eoh();
  return c.eom(Buffer.from('body\r\n'));
}

test('copies of the header that came with the message are deleted, last first, before ours is added', async () => {
  const out = await deliver(compile({ mode: 'enforce' }));
  assert.equal(out.action, 'continue');
  assert.deepEqual(
    out.mods.map((m) =>
      m.type === 'changeHeader'
        ? `delete ${m.name} #${m.index} "${m.value}"`
        : m.type === 'addHeader'
          ? `add ${m.name}: ${m.value}`
          : m.type,
    ),
    [
      'delete X-Relayguard #2 ""',
      'delete X-Relayguard #1 ""',
      'add X-Relayguard: ' + (out.mods[2] as { value: string }).value,
    ],
  );
  assert.match((out.mods[2] as { value: string }).value, /^direction=inbound; conn=[0-9a-f]+(-\d+)?$/);
});

test('remove_incoming: false adds ours and leaves incoming copies alone; then no header events are asked for', async () => {
  const out = await deliver(compile({ mode: 'enforce', remove_incoming: false }));
  assert.deepEqual(
    out.mods.map((m) => m.type),
    ['addHeader'],
  );
  const needs = (config: Record<string, unknown>) =>
    traceHeaderRule.create(traceHeaderRule.schema.parse(config), kitEnv()).needs;
  const keeping = needs({ remove_incoming: false });
  assert.deepEqual(keeping?.events, []);
  assert.ok(!keeping?.actions?.includes('changeHeader'));
  const removing = needs({});
  assert.deepEqual(removing?.events, ['headers']);
  assert.ok(removing?.actions?.includes('changeHeader'));
});
