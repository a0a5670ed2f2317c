// Every refusal carries its reference, also at connect. Postfix answers the greeting of a client
// the milter refused at connect with its own "554 ... not accepting connections" and hides the
// milter's text there; it repeats the milter's reply, with the enhanced code and relayguard's
// reference, at MAIL (and every later transaction command). The reference finds the decision in
// relayguard's log. Checked for both refusals at connect: a denied network and a ban.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  ensureStack,
  message,
  restorePostconf,
  smtp,
  startRelayguard,
  type RelayguardProcess,
} from './harness.js';

let rg: RelayguardProcess;

before(async () => {
  await ensureStack();
  await restorePostconf();
  await clearQueues();
  rg = await startRelayguard();
});

after(async () => {
  await rg?.stop();
  await clearQueues();
});

async function refusedAtConnect(addr: string, rule: string, text: RegExp): Promise<void> {
  const r = await smtp({
    from: 'x@outside.test',
    to: ['user@example.test'],
    data: message({ from: 'x@outside.test', to: 'user@example.test', body: 'x' }),
    xclient: { addr },
  });
  assert.equal(r.xclientReply!.code, 554, r.xclientReply!.full); // Postfix's own greeting text
  assert.equal(r.mailReply!.code, 554, r.mailReply!.full);
  assert.equal(r.mailReply!.enhanced, '5.7.1');
  assert.match(r.mailReply!.text, text);
  const ref = /\(ref ([0-9a-f]+-\d+)\)/.exec(r.mailReply!.text)?.[1];
  assert.ok(ref, r.mailReply!.full);
  const line = await rg.waitForLog(new RegExp(`"ref":"${ref}"`));
  const decision = JSON.parse(line) as { action: string; phase: string; rule: string };
  assert.deepEqual([decision.action, decision.phase, decision.rule], ['reject', 'connect', rule]);
  assert.equal(r.ok, false);
}

describe('refusals at connect reach the client with their reference', () => {
  test('denied network', async () => {
    await refusedAtConnect('192.0.2.5', 'access', /^5\.7\.1 Access denied.*\(ref [0-9a-f]+-\d+\)$/);
  });

  test('a banned client', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await smtp({
        from: 'x@blocked.test',
        to: ['user@example.test'],
        data: message({ from: 'x@blocked.test', to: 'user@example.test', body: 'x' }),
        xclient: { addr: '203.0.113.77' },
      });
      assert.equal(r.mailReply!.code, 554, r.mailReply!.full);
    }
    await refusedAtConnect(
      '203.0.113.77',
      'offenders',
      /^5\.7\.1 Client host \[203\.0\.113\.77\] banned until .*\(ref [0-9a-f]+-\d+\)$/,
    );
  });
});
