// Hot reload through the real Postfix while it is sending: a broken policy file is refused with
// its line and column and the running policy stays; a changed good file applies to new
// connections while a connection opened before the reload finishes on the policy it started
// with; no message of the load is lost or refused, no session is dropped.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';
import {
  clearQueues,
  ensureStack,
  message,
  referencePolicy,
  smtp,
  stack,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
  type SmtpResult,
} from './harness.js';

const LOAD_MESSAGES = 24;
const LOAD_CONCURRENCY = 4;
const NEW_BLOCKED = 'newly-blocked.test';

let rg: RelayguardProcess;
let goodText: string;

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard({ configText: readFileSync(referencePolicy, 'utf8') });
  // The file as this slot's relayguard reads it (ports moved to the slot, state dir set).
  goodText = readFileSync(rg.configPath, 'utf8');
});

after(async () => {
  await rg?.stop();
});

function send(from: string, tag: string): Promise<SmtpResult> {
  const to = 'user@example.test';
  return smtp({
    from,
    to: [to],
    data: message({ from, to, subject: tag, body: `reload load ${tag}` }),
    xclient: { addr: '203.0.113.9' },
  });
}

/** Sends `n` messages, `concurrency` at a time, while `during` runs; resolves with every result. */
async function underLoad(n: number, concurrency: number, during: () => Promise<void>): Promise<SmtpResult[]> {
  const results: SmtpResult[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) results[i] = await send('sender@outside.test', `load-${i}`);
  };
  const workers = Array.from({ length: concurrency }, worker);
  await during();
  await Promise.all(workers);
  return results;
}

/** SIGHUP, then the log line that says how it went. */
async function reloadAndWait(pattern: RegExp): Promise<string> {
  const seen = rg
    .logs()
    .split('\n')
    .filter((l) => pattern.test(l)).length;
  rg.signal('SIGHUP');
  for (let i = 0; i < 200; i++) {
    const lines = rg
      .logs()
      .split('\n')
      .filter((l) => pattern.test(l));
    if (lines.length > seen) return lines[lines.length - 1]!;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no log line ${pattern} after SIGHUP:\n${rg.logs()}`);
}

/** A milter connection to relayguard that has passed connect and HELO, as an outside client. */
async function openMilterConnection(): Promise<TestMilterClient> {
  const c = await TestMilterClient.open(stack.milterPort);
  await c.negotiate();
  c.connectCmd('client.outside.test', '203.0.113.9');
  assert.equal((await c.next()).code, 'c');
  c.helo('client.outside.test');
  assert.equal((await c.next()).code, 'c');
  return c;
}

async function mailVerdict(c: TestMilterClient, from: string): Promise<string> {
  c.mail(`<${from}>`);
  return (await c.next()).code;
}

describe('hot reload under load', () => {
  test('a broken file: refused with line and column, the old policy keeps running, no message lost', async () => {
    const results = await underLoad(LOAD_MESSAGES, LOAD_CONCURRENCY, async () => {
      await new Promise((r) => setTimeout(r, 150));
      writeFileSync(rg.configPath, goodText.replace(/^rules:\n/m, 'rules:\n  relay: {mode: sometimes}\n'));
      await reloadAndWait(/reload: .* is invalid; keeping the running policy/);
    });
    assert.match(rg.logs(), /reload: .*relayguard[^:]*\.yaml:\d+:\d+: /, 'each error names the file, line and column');
    for (const r of results) assert.equal(r.ok, true, r.dataReply?.full ?? r.mailReply?.full ?? r.error);
    for (const r of results) assert.match(await waitForDelivery(r.queueId!), /reload load load-/);
    // Still the old policy: the reference policy's blocked domain is refused.
    assert.equal((await send('x@blocked.test', 'still-old')).mailReply?.code, 554);
  });

  test('a changed file: new connections get the new policy, a connection from before keeps the old one, no message lost', async () => {
    assert.equal(
      (await send(`x@${NEW_BLOCKED}`, 'before')).ok,
      true,
      `${NEW_BLOCKED} is not blocked before the reload`,
    );
    const changed = goodText.replace(
      /blocked_domains: \[\s*blocked\.test\s*\]/,
      `blocked_domains: [blocked.test, ${NEW_BLOCKED}]`,
    );
    assert.notEqual(changed, goodText, 'the reference policy still has the blocked_domains line this test edits');
    const early = await openMilterConnection();
    try {
      const results = await underLoad(LOAD_MESSAGES, LOAD_CONCURRENCY, async () => {
        await new Promise((r) => setTimeout(r, 150));
        writeFileSync(rg.configPath, changed);
        await reloadAndWait(/reload: policy .* active for new connections/);
      });
      for (const r of results) assert.equal(r.ok, true, r.dataReply?.full ?? r.mailReply?.full ?? r.error);
      for (const r of results) assert.match(await waitForDelivery(r.queueId!), /reload load load-/);

      const after = await send(`x@${NEW_BLOCKED}`, 'after');
      assert.equal(after.mailReply?.code, 554, after.mailReply?.full ?? after.error);
      assert.match(after.mailReply.text, new RegExp(NEW_BLOCKED.replace('.', '\\.')));
      assert.equal(
        await mailVerdict(early, `x@${NEW_BLOCKED}`),
        'c',
        'the connection opened before the reload runs on the old policy',
      );
      const late = await openMilterConnection();
      try {
        assert.notEqual(
          await mailVerdict(late, `x@${NEW_BLOCKED}`),
          'c',
          'a connection opened after the reload runs on the new policy',
        );
      } finally {
        late.close();
      }
    } finally {
      early.close();
      writeFileSync(rg.configPath, goodText);
    }
  });
});
