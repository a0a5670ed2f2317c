// Issue 16, finding 5: 500 hostile connections held open against relayguard (silent ones and
// ones sending a byte a second, each reconnecting as soon as it is closed) fill the connection
// table; a well-behaved Postfix still gets every message through, with relayguard's verdicts.
// The hostile clients come from other loopback addresses than Postfix (127.0.0.1), as a local
// attacker or a neighbour on the network would. The reference policy runs with its defaults:
// max_connections 500, max_connections_per_peer 250.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  ensureStack,
  message,
  smtp,
  stack,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
} from './harness.js';

const HOSTILE = 500;
const MESSAGES = 20;
/** Four attacker addresses, 125 connections each (under the per-peer limit of 250). */
const ATTACKERS = ['127.0.0.100', '127.0.0.101', '127.0.0.102', '127.0.0.103'];

let rg: RelayguardProcess;
let stopping = false;
const hostile = new Set<Socket>();
let reconnects = 0;
const trickle: NodeJS.Timeout[] = [];

/** A silent client, or one writing an OPTNEG frame (then garbage) a byte a second. Reopens when closed. */
function openHostile(from: string, slow: boolean): void {
  if (stopping) return;
  const s = connect({ port: stack.milterPort, host: '127.0.0.1', localAddress: from });
  hostile.add(s);
  s.on('error', () => undefined);
  s.on('data', () => undefined);
  s.on('close', () => {
    hostile.delete(s);
    if (stopping) return;
    reconnects++;
    setTimeout(() => openHostile(from, slow), 20);
  });
  if (slow) (s as Socket & { slow?: boolean }).slow = true;
}

async function activeConnections(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${stack.metricsPort}/metrics`)).text();
  const m = /^relayguard_connections_active (\d+)/m.exec(text);
  return m ? Number(m[1]) : -1;
}

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard({ metrics: true });
});

after(async () => {
  stopping = true;
  for (const t of trickle) clearInterval(t);
  for (const s of hostile) s.destroy();
  await rg?.stop();
});

describe('500 hostile connections', () => {
  test('fill the table, and Postfix still gets every message through', { timeout: 150_000 }, async () => {
    for (let i = 0; i < HOSTILE; i++) openHostile(ATTACKERS[i % ATTACKERS.length]!, i % 2 === 1);
    // A byte a second on every slow connection: a valid OPTNEG frame, then bytes of a frame that never ends.
    const optneg = Buffer.alloc(17);
    optneg.writeUInt32BE(13, 0);
    optneg[4] = 0x4f;
    optneg.writeUInt32BE(6, 5);
    optneg.writeUInt32BE(0x1ff, 9);
    const hold = Buffer.from([0x00, 0x10, 0x00, 0x00, 0x48]); // HELO of 1 MiB - never completed
    const script = Buffer.concat([optneg, hold, Buffer.alloc(4096, 0x61)]);
    let tick = 0;
    trickle.push(
      setInterval(() => {
        for (const s of hostile)
          if ((s as Socket & { slow?: boolean }).slow && !s.destroyed && s.writable)
            s.write(script.subarray(tick % script.length, (tick % script.length) + 1));
        tick++;
      }, 1000),
    );
    const deadline = Date.now() + 20_000;
    let active = 0;
    while (Date.now() < deadline && (active = await activeConnections()) < HOSTILE)
      await new Promise((r) => setTimeout(r, 200));
    assert.equal(active, HOSTILE, 'relayguard holds all 500 hostile connections (its table is full)');

    const outside = { addr: '203.0.113.9' };
    for (let i = 0; i < MESSAGES; i++) {
      const subject = `under siege ${i}`;
      const r = await smtp({
        from: 'sender@outside.test',
        to: ['user@example.test'],
        xclient: outside,
        data: message({ from: 'sender@outside.test', to: ['user@example.test'], subject, body: `message ${i}` }),
      });
      assert.equal(
        r.ok,
        true,
        `message ${i}: ${r.error ?? JSON.stringify(r.replies.map((x) => `${x.code} ${x.text}`))}`,
      );
      const delivered = await waitForDelivery(r.queueId!);
      assert.match(
        delivered,
        new RegExp(`^X-Relayguard: direction=inbound; conn=[0-9a-f]+; queue-id=${r.queueId}`, 'm'),
        'relayguard saw and passed it',
      );
      assert.match(delivered, new RegExp(`Subject: ${subject}`));
    }
    // relayguard's verdicts still apply under siege: an open-relay attempt is refused at RCPT.
    const relay = await smtp({
      from: 'sender@outside.test',
      to: ['victim@elsewhere.test'],
      xclient: outside,
      data: message({ from: 'sender@outside.test', to: ['victim@elsewhere.test'], subject: 'relay', body: 'x' }),
    });
    assert.equal(relay.ok, false);
    assert.match(String(relay.rcptReplies[0]?.code), /^5\d\d$/, JSON.stringify(relay.rcptReplies));

    assert.ok(reconnects >= MESSAGES, `each Postfix connection took a hostile slot (${reconnects} hostile reconnects)`);
    assert.ok((await activeConnections()) >= HOSTILE - 5, 'the attackers were still holding the table at the end');
    assert.equal(rg.exited, false);
    assert.doesNotMatch(rg.logs(), /all \d+ connections are busy/, 'no connection of Postfix was refused');
  });
});
