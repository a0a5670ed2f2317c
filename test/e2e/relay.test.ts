// Rule 1 through the real Postfix: an outside client's recipient in a foreign domain is refused
// at RCPT while the example.test recipient of the same message is delivered, also when the
// Postfix in front is an open relay; internal and authenticated clients relay.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  OPEN_RELAY_RESTRICTIONS,
  clearQueues,
  ensureStack,
  message,
  postconf,
  restorePostconf,
  smtp,
  startRelayguard,
  waitForDeliveryDetails,
  type RelayguardProcess,
  type SmtpResult,
} from './harness.js';

let rg: RelayguardProcess;

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard();
});

after(async () => {
  await restorePostconf();
  await rg?.stop();
});

function send(from: string, to: string[], xclient?: { addr: string; login?: string }): Promise<SmtpResult> {
  return smtp({ from, to, data: message({ from, to, body: 'relay test' }), ...(xclient ? { xclient } : {}) });
}

/** The foreign recipient is refused by relayguard (its reply carries a ref), the local one is delivered alone. */
async function assertRelayClosed(r: SmtpResult): Promise<void> {
  const [foreign, local] = r.rcptReplies;
  assert.equal(foreign?.code, 554, foreign?.full ?? r.error);
  assert.equal(foreign?.enhanced, '5.7.1');
  assert.match(foreign.text, /Relay access denied/);
  assert.equal(local?.code, 250, local?.full);
  assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
  const delivered = await waitForDeliveryDetails(r.queueId!);
  assert.deepEqual(delivered.rcpts, ['user@example.test']);
}

describe('rule 1: no open relay', () => {
  test('external client: elsewhere.test refused at RCPT, example.test in the same transaction delivered', async () => {
    const r = await send('sender@outside.test', ['someone@elsewhere.test', 'user@example.test'], {
      addr: '203.0.113.9',
    });
    await assertRelayClosed(r);
  });

  test('with Postfix as an open relay, relayguard alone refuses the relay', async () => {
    await postconf({ smtpd_relay_restrictions: OPEN_RELAY_RESTRICTIONS });
    try {
      const r = await send('sender@outside.test', ['someone@elsewhere.test', 'user@example.test'], {
        addr: '203.0.113.9',
      });
      await assertRelayClosed(r);
      // The refusal is relayguard's (Postfix's own has no reference).
      assert.match(r.rcptReplies[0]!.text, /\(ref [0-9a-z-]+\)/);
      // Routing tricks that name our domain are refused too.
      const trick = await send('sender@outside.test', ['someone%elsewhere.test@example.test'], { addr: '203.0.113.9' });
      assert.equal(trick.rcptReplies[0]?.code, 554, trick.rcptReplies[0]?.full);
      assert.equal(trick.ok, false);
    } finally {
      await restorePostconf();
    }
  });

  test('internal client (127.0.0.1) relays anywhere', async () => {
    const r = await send('alice@example.test', ['someone@elsewhere.test']);
    assert.equal(r.rcptReplies[0]?.code, 250, r.rcptReplies[0]?.full);
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    assert.deepEqual((await waitForDeliveryDetails(r.queueId!)).rcpts, ['someone@elsewhere.test']);
  });

  test('authenticated client (XCLIENT LOGIN=alice) from outside relays anywhere', async () => {
    const r = await send('alice@example.test', ['someone@elsewhere.test'], { addr: '203.0.113.9', login: 'alice' });
    assert.equal(r.rcptReplies[0]?.code, 250, r.rcptReplies[0]?.full);
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    assert.deepEqual((await waitForDeliveryDetails(r.queueId!)).rcpts, ['someone@elsewhere.test']);
  });
});
