// The pipeline through the real Postfix: delivery with the trace header, a refusal whose
// reference finds the decision in relayguard's log, a hold, relayguard down -> 4xx (nothing
// lost), the serve defaults, and metrics that match what happened.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  OPEN_RELAY_RESTRICTIONS,
  clearQueues,
  postconf,
  ensureStack,
  holdQueue,
  message,
  queueEntries,
  relayguardMain,
  repoRoot,
  sinkFiles,
  smtp,
  stack,
  startRelayguard,
  waitForDelivery,
  waitForHold,
  type RelayguardProcess,
} from './harness.js';

let rg: RelayguardProcess;

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard({ metrics: true });
});

after(async () => {
  await rg?.stop();
});

const outside = { addr: '203.0.113.9' };

describe('relayguard behind Postfix', () => {
  test('an inbound message is delivered with the trace header naming its queue id', async () => {
    const r = await smtp({
      from: 'sender@outside.test',
      to: ['user@example.test'],
      xclient: outside,
      data: message({
        from: 'sender@outside.test',
        to: ['user@example.test'],
        subject: 'core delivery',
        body: 'hello',
      }),
    });
    assert.equal(r.ok, true, r.error ?? r.dataReply?.full);
    const delivered = await waitForDelivery(r.queueId!);
    const trace = /^X-Relayguard: (.*)$/m.exec(delivered);
    assert.ok(trace, delivered);
    assert.match(trace[1]!, new RegExp(`direction=inbound; conn=[0-9a-f]+; queue-id=${r.queueId}`));
  });

  test('a forged trace header that came with the message is removed: only ours is delivered', async () => {
    const forged = 'direction=outbound; conn=forged; queue-id=NONE';
    const data = message({
      from: 'sender@outside.test',
      to: ['user@example.test'],
      subject: 'forged trace',
      body: 'hello',
      headers: [
        ['X-Relayguard', forged],
        ['X-RELAYGUARD', forged],
      ],
    });
    const r = await smtp({ from: 'sender@outside.test', to: ['user@example.test'], xclient: outside, data });
    assert.equal(r.ok, true, r.error ?? r.dataReply?.full);
    const delivered = await waitForDelivery(r.queueId!);
    const traces = [...delivered.matchAll(/^X-Relayguard: (.*)$/gim)].map((m) => m[1]!);
    assert.equal(traces.length, 1, delivered);
    assert.match(traces[0]!, new RegExp(`^direction=inbound; conn=[0-9a-f]+; queue-id=${r.queueId}`));
  });

  test('a refusal at RCPT reaches the client with a reference that finds the decision in the log', async () => {
    // Postfix as an open relay: the refusal below can only be relayguard's.
    const restore = await postconf({ smtpd_relay_restrictions: OPEN_RELAY_RESTRICTIONS });
    const to = 'x@elsewhere.test';
    let r;
    try {
      r = await smtp({
        from: 'sender@outside.test',
        to: [to],
        xclient: outside,
        data: message({ from: 'sender@outside.test', to: [to], body: 'x' }),
      });
    } finally {
      await restore();
    }
    const reply = r.rcptReplies[0]!;
    assert.equal(Math.floor(reply.code / 100), 5, reply.full);
    const ref = /\(ref ([0-9a-f]+-[0-9a-z]+)\)/.exec(reply.text)?.[1];
    assert.ok(ref, reply.full);
    const line = await rg.waitForLog(new RegExp(`"ref":"${ref}"`), 5000);
    const decision = JSON.parse(line.split('\n').find((l) => l.includes(`"ref":"${ref}"`))!) as Record<string, unknown>;
    assert.equal(decision.action, 'reject');
    assert.equal(decision.rule, 'relay');
    assert.equal(decision.client, '203.0.113.9');
  });

  test('a held message sits in the hold queue and is not delivered', async () => {
    const before = sinkFiles().length;
    const body = 'Please charge card 4111 1111 1111 1111 for the order.';
    const r = await smtp({
      from: 'alice@example.test',
      to: ['bob@partner.test'],
      data: message({ from: 'alice@example.test', to: ['bob@partner.test'], subject: 'order', body }),
    });
    assert.equal(r.ok, true, r.error ?? r.dataReply?.full);
    const held = await waitForHold(r.queueId!);
    assert.equal(held.queue_name, 'hold');
    assert.ok((await holdQueue()).some((e) => e.queue_id === r.queueId));
    assert.equal(sinkFiles().length, before, 'nothing reached the sink');
    await clearQueues();
  });

  test('metrics count what happened', async () => {
    const res = await fetch(`http://127.0.0.1:${stack.metricsPort}/metrics`);
    const raw = await res.text();
    assert.match(raw, /^relayguard_memory_valve_collections_total \d+$/m);
    const text = raw
      .split('\n')
      .filter((l) => l.startsWith('relayguard_messages_total') || l.startsWith('relayguard_rule_verdicts_total'))
      .join('\n');
    assert.match(text, /relayguard_messages_total\{action="accept",direction="inbound",phase="eom"\} [1-9]/);
    assert.match(text, /relayguard_messages_total\{action="reject",direction="inbound",phase="envrcpt"\} [1-9]/);
    assert.match(text, /relayguard_messages_total\{action="quarantine",direction="outbound",phase="eom"\} [1-9]/);
    assert.match(
      text,
      /relayguard_rule_verdicts_total\{rule="relay",phase="envrcpt",action="reject",mode="enforce"\} [1-9]/,
    );
    const health = await fetch(`http://127.0.0.1:${stack.metricsPort}/health`);
    assert.equal(health.status, 200);
  });

  test('relayguard down: Postfix tempfails, nothing is queued or lost; back up: delivered', async () => {
    await rg.stop();
    const sinkBefore = sinkFiles().length;
    const data = message({
      from: 'sender@outside.test',
      to: ['user@example.test'],
      subject: 'while down',
      body: 'retry me',
    });
    const down = await smtp({ from: 'sender@outside.test', to: ['user@example.test'], xclient: outside, data });
    assert.equal(down.ok, false);
    const refused = down.mailReply ?? down.rcptReplies[0] ?? down.dataReply;
    assert.equal(Math.floor((refused?.code ?? 0) / 100), 4, JSON.stringify(refused));
    assert.equal((await queueEntries()).length, 0, 'nothing accepted');
    assert.equal(sinkFiles().length, sinkBefore, 'nothing delivered unfiltered');
    rg = await startRelayguard({ metrics: true });
    const up = await smtp({ from: 'sender@outside.test', to: ['user@example.test'], xclient: outside, data });
    assert.equal(up.ok, true, up.error ?? up.dataReply?.full);
    await waitForDelivery(up.queueId!);
  });
});

describe('serve with no arguments', () => {
  test('starts on the default policy and Postfix can use it', async () => {
    // The default policy listens on the reference milter port; use it when this is slot 0.
    if (stack.slot !== 0) return;
    await rg.stop();
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [relayguardMain, 'serve', '--metrics', 'off'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    try {
      const deadline = Date.now() + 10_000;
      while (!/listening on inet:127\.0\.0\.1:10025/.test(out) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(out, /policies\/default\.yaml/);
      const r = await smtp({
        from: 'alice@example.test',
        to: ['bob@example.test'],
        data: message({
          from: 'alice@example.test',
          to: ['bob@example.test'],
          body: 'plain mail from an internal client',
        }),
      });
      assert.equal(r.ok, true, r.error ?? r.dataReply?.full);
      const delivered = await waitForDelivery(r.queueId!);
      assert.match(delivered, /^X-Relayguard: direction=outbound/m);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rg = await startRelayguard({ metrics: true });
    }
  });
});
