// Rule 3 through the real Postfix: SIZE= over 2 MiB is refused at MAIL; a 2.1 MB message
// without SIZE= is refused at end of data, by relayguard (Postfix's own limit is higher).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  ensureStack,
  message,
  postconfValue,
  smtp,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
} from './harness.js';

const LIMIT = 2_097_152;
const OUTSIDE = { addr: '203.0.113.9' };
let rg: RelayguardProcess;

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard();
});

after(async () => {
  await rg?.stop();
});

/** About `bytes` of plain text in 76-character lines. */
function bigBody(bytes: number): string {
  const line = 'x'.repeat(76);
  return Array.from({ length: Math.ceil(bytes / 78) }, () => line).join('\n');
}

describe('rule 3: size limit', () => {
  test("Postfix's own limit is above 2 MiB, so the refusals below are relayguard's", async () => {
    assert.ok(Number(await postconfValue('message_size_limit')) > LIMIT * 2);
  });

  test('SIZE= over 2 MiB: 552 5.3.4 at MAIL', async () => {
    const r = await smtp({
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: 'x',
      size: LIMIT + 1,
      xclient: OUTSIDE,
    });
    assert.equal(r.mailReply?.code, 552, r.mailReply?.full ?? r.error);
    assert.equal(r.mailReply?.enhanced, '5.3.4');
    assert.match(r.mailReply.text, /\(ref [0-9a-z-]+\)/);
    assert.equal(r.rcptReplies.length, 0);
  });

  test('2.1 MB without SIZE=: 552 5.3.4 at end of data, nothing queued, refused while the body was coming in', async () => {
    const data = message({ from: 'sender@outside.test', to: 'user@example.test', body: bigBody(2_100_000) });
    assert.ok(data.length > 2_100_000);
    const r = await smtp({ from: 'sender@outside.test', to: ['user@example.test'], data, xclient: OUTSIDE });
    assert.equal(r.mailReply?.code, 250);
    assert.equal(r.dataReply?.code, 552, r.dataReply?.full ?? r.error);
    assert.equal(r.dataReply?.enhanced, '5.3.4');
    assert.equal(r.ok, false);
    assert.equal(r.queueId, undefined);
    // The decision was taken on a body chunk (relayguard stopped keeping the message there), not at end of message.
    await rg.waitForLog(/"phase":"body".*"rule":"size"|"rule":"size".*"phase":"body"/);
  });

  test('SIZE= under the limit with a message under the limit is delivered', async () => {
    const data = message({ from: 'sender@outside.test', to: 'user@example.test', body: bigBody(1_000_000) });
    const r = await smtp({
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data,
      size: Buffer.byteLength(data),
      xclient: OUTSIDE,
    });
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    assert.match(await waitForDelivery(r.queueId!), /relayguard e2e test/);
  });
});
