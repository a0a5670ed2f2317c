// Rule 4 through the real Postfix: the denied network is refused at connect (554 greeting,
// MAIL refused), and outside clients may not use example.test as envelope sender or in From:.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  ensureStack,
  message,
  smtp,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
} from './harness.js';

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

describe('rule 4: access by network', () => {
  test('192.0.2.10: greeting 554, MAIL and the other transaction commands refused', async () => {
    const r = await smtp({
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: 'x',
      xclient: { addr: '192.0.2.10' },
      extraCommands: ['RCPT TO:<user@example.test>', 'DATA'],
    });
    // Under XCLIENT the new session's 554 greeting is the answer to XCLIENT.
    assert.equal(r.xclientReply?.code, 554, r.xclientReply?.full ?? r.error);
    assert.match(r.xclientReply.text, /not accepting connections/);
    for (const extra of r.extraReplies) assert.equal(Math.floor(extra.code / 100), 5, extra.full);
    assert.equal(r.mailReply?.code, 554, r.mailReply?.full ?? r.error);
    assert.equal(r.mailReply?.enhanced, '5.7.1');
    assert.match(r.mailReply.text, /Access denied.*\(ref [0-9a-z-]+\)/);
    assert.equal(r.rcptReplies.length, 0);
  });

  test('a neighbouring network is not denied', async () => {
    const r = await smtp({
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: message({ from: 'sender@outside.test', to: 'user@example.test', body: 'hi' }),
      xclient: { addr: '192.0.3.10' },
    });
    assert.equal(r.ok, true, r.dataReply?.full ?? r.mailReply?.full ?? r.error);
  });
});

describe('rule 4: anti-spoofing', () => {
  test('external client with MAIL FROM @example.test: 5xx at MAIL', async () => {
    const r = await smtp({ from: 'ceo@example.test', to: ['user@example.test'], data: 'x', xclient: OUTSIDE });
    assert.equal(r.mailReply?.code, 550, r.mailReply?.full ?? r.error);
    assert.equal(r.mailReply?.enhanced, '5.7.1');
  });

  test('external client with From: @example.test: 5xx at end of data, nothing queued', async () => {
    const data = message({ from: 'The CEO <ceo@example.test>', to: 'user@example.test', body: 'wire the money' });
    const r = await smtp({ from: 'bounce@outside.test', to: ['user@example.test'], data, xclient: OUTSIDE });
    assert.equal(r.mailReply?.code, 250);
    assert.equal(r.dataReply?.code, 550, r.dataReply?.full ?? r.error);
    assert.equal(r.dataReply?.enhanced, '5.7.1');
    assert.equal(r.queueId, undefined);
  });

  test('internal and authenticated clients may use example.test in both', async () => {
    const data = message({ from: 'CEO <ceo@example.test>', to: 'user@example.test', body: 'hello' });
    const internal = await smtp({ from: 'ceo@example.test', to: ['user@example.test'], data });
    assert.equal(internal.ok, true, internal.dataReply?.full ?? internal.mailReply?.full ?? internal.error);
    const authed = await smtp({
      from: 'ceo@example.test',
      to: ['user@example.test'],
      data,
      xclient: { addr: '203.0.113.9', login: 'alice' },
    });
    assert.equal(authed.ok, true, authed.dataReply?.full ?? authed.mailReply?.full ?? authed.error);
    assert.match(await waitForDelivery(authed.queueId!), /^From: CEO <ceo@example\.test>$/m);
  });
});
