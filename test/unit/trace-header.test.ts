// The trace_header rule through the real engine and Conversation: our header is added, and copies
// that came with the message are deleted first (a sender must not be able to forge it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import winston from 'winston';
import { policySchema } from '../../src/rules/policy-schema.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { traceHeaderRule } from '../../src/rules/trace-header.js';
import type { RuleEnv } from '../../src/policy/rule-env.js';
import { Conversation } from '../../src/session/conversation.js';

const log = winston.createLogger({ silent: true });

function compile(trace: Record<string, unknown>): CompiledPolicy {
  const config = policySchema.parse({ local_domains: ['example.test'], networks: { internal: ['127.0.0.0/8'] }, rules: { trace_header: trace } });
  return new CompiledPolicy(config, 'test.yaml', log);
}

/** One inbound message with two forged X-Relayguard headers among others. */
async function deliver(policy: CompiledPolicy) {
  const c = new Conversation({ policy, log });
  await c.connect({ hostname: 'client.test', family: 'inet', port: 40000, address: '203.0.113.9' });
  await c.helo('client.test');
  await c.mail(['<sender@outside.test>']);
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
    out.mods.map((m) => (m.type === 'changeHeader' ? `delete ${m.name} #${m.index} "${m.value}"` : m.type === 'addHeader' ? `add ${m.name}: ${m.value}` : m.type)),
    ['delete X-Relayguard #2 ""', 'delete X-Relayguard #1 ""', 'add X-Relayguard: ' + (out.mods[2] as { value: string }).value],
  );
  assert.match((out.mods[2] as { value: string }).value, /^direction=inbound; conn=[0-9a-f]+(-\d+)?$/);
});

test('remove_incoming: false adds ours and leaves incoming copies alone; then no header events are asked for', async () => {
  const out = await deliver(compile({ mode: 'enforce', remove_incoming: false }));
  assert.deepEqual(
    out.mods.map((m) => m.type),
    ['addHeader'],
  );
  const needs = (config: Record<string, unknown>) => traceHeaderRule.create(traceHeaderRule.schema.parse(config), {} as RuleEnv).needs;
  const keeping = needs({ remove_incoming: false });
  assert.deepEqual(keeping?.events, []);
  assert.ok(!keeping?.actions?.includes('changeHeader'));
  const removing = needs({});
  assert.deepEqual(removing?.events, ['headers']);
  assert.ok(removing?.actions?.includes('changeHeader'));
});
