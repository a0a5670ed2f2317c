// The text log format through the real Postfix: a refusal reads like Postfix's own reject line
// (NOQUEUE before Postfix assigned a queue id), a delivered message carries the queue id that
// Postfix's maillog shows, and the reference in the client's reply is on the line.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  ensureStack,
  message,
  referencePolicy,
  restorePostconf,
  smtp,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
} from './harness.js';

let rg: RelayguardProcess;

before(async () => {
  await ensureStack();
  await restorePostconf();
  await clearQueues();
  const text = readFileSync(referencePolicy, 'utf8').replace(/^( {2}format:) auto$/m, '$1 text');
  assert.match(text, /format: text/);
  rg = await startRelayguard({ configText: text });
});

after(async () => {
  await rg?.stop();
  await clearQueues();
});

describe('logging.format: text', () => {
  test("a refusal at MAIL reads like Postfix's reject line, with rule and reference", async () => {
    const s = await smtp({
      from: 'ceo@example.test',
      to: ['user@example.test'],
      data: message({ from: 'ceo@example.test', to: 'user@example.test', body: 'x' }),
      xclient: { addr: '203.0.113.9' },
    });
    const ref = /\(ref ([0-9a-f]+-\d+)\)/.exec(s.mailReply!.full)![1]!;
    const line = await rg.waitForLog(new RegExp(`ref=${ref}\\b`));
    assert.match(
      line,
      new RegExp(
        `^\\S+ NOQUEUE: reject: MAIL from \\S+\\[203\\.0\\.113\\.9\\]: ${s.mailReply!.code} 5\\.7\\.1 .+; from=<ceo@example\\.test> direction=inbound rule=access ref=${ref} trace=access:reject conn=[0-9a-f]+$`,
      ),
    );
  });

  test('a delivered message is logged under the queue id Postfix uses', async () => {
    const s = await smtp({
      from: 'someone@outside.test',
      to: ['user@example.test'],
      data: message({ from: 'someone@outside.test', to: 'user@example.test', body: 'hello' }),
      xclient: { addr: '203.0.113.20' },
    });
    assert.equal(s.ok, true, s.dataReply?.full);
    await waitForDelivery(s.queueId!);
    const line = await rg.waitForLog(new RegExp(`^\\S+ ${s.queueId}: accept: END-OF-MESSAGE from `));
    assert.match(line, /; from=<someone@outside\.test> to=<user@example\.test> direction=inbound/);
  });
});
