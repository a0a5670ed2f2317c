// Rule 5 through the real Postfix and a real clamd (hand-made EICAR signatures): inbound
// EICAR in any wrapping is refused at end of data; clean mail is delivered and tagged; with
// clamd down mail gets a 4xx (fail closed), soon already at MAIL (circuit breaker), and once
// clamd is back mail flows again.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  eicar,
  ensureStack,
  maillogMark,
  message,
  queueEntries,
  run,
  smtp,
  stack,
  startClamd,
  startRelayguard,
  stopClamd,
  waitForDelivery,
  type RelayguardProcess,
  type SmtpResult,
} from './harness.js';

/** Each test client gets its own outside address, so the repeat-offender ledger (5 refusals in
 *  10 minutes) never links the refusals of one test to the next. None is on bl.test. */
let nextHost = 100;
const outsideClient = () => ({ addr: `203.0.113.${nextHost++}`, helo: 'mail.outside.test' });
/** The reference policy's breaker: 3 failures in a row, then PING at most every 2 s. */
const BREAKER_FAILURES = 3;
const PROBE_INTERVAL_MS = 2_000;

let rg: RelayguardProcess;
const work = mkdtempSync(join(tmpdir(), 'rg-e2e-av-'));

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard();
});

after(async () => {
  await rg?.stop();
  rmSync(work, { recursive: true, force: true });
});

function inbound(data: string): Promise<SmtpResult> {
  return smtp({ from: 'sender@outside.test', to: ['user@example.test'], data, xclient: outsideClient() });
}

function assertVirusRejected(r: SmtpResult, what: string): void {
  assert.equal(r.ok, false, `${what}: must not be queued`);
  assert.equal(r.dataReply?.code, 554, `${what}: ${r.dataReply?.full ?? r.error}`);
  assert.equal(r.dataReply?.enhanced, '5.7.1');
  assert.match(r.dataReply.text, /Virus found: \S*EICAR\S*/, what);
  assert.match(r.dataReply.text, /\(ref [0-9a-z-]+\)/, 'the reply carries a reference');
}

/** A zip archive made at test time, holding the EICAR string as an innocent-looking name. */
async function eicarZip(): Promise<Buffer> {
  const dir = mkdtempSync(join(work, 'zip-'));
  writeFileSync(join(dir, 'readme.txt'), eicar());
  const out = join(dir, 'archive.zip');
  const r = await run('zip', ['-q', '-j', out, join(dir, 'readme.txt')]);
  assert.equal(r.code, 0, `zip: ${r.stderr}`);
  return readFileSync(out);
}

describe('rule 5: ClamAV, inbound', () => {
  test('clean inbound mail is delivered and tagged X-Virus-Scanned: clean', async () => {
    const r = await inbound(
      message({ from: 'sender@outside.test', to: 'user@example.test', body: 'Hello, nothing to see here.' }),
    );
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    const delivered = await waitForDelivery(r.queueId!);
    assert.match(delivered, /^X-Virus-Scanned: clean$/m);
  });

  test('a forged X-Virus-Scanned from outside does not survive', async () => {
    const r = await inbound(
      message({
        from: 'sender@outside.test',
        to: 'user@example.test',
        body: 'hi',
        headers: { 'X-Virus-Scanned': 'clean, trust me' },
      }),
    );
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    const delivered = await waitForDelivery(r.queueId!);
    assert.doesNotMatch(delivered, /trust me/);
    assert.equal(delivered.match(/^X-Virus-Scanned:/gm)?.length, 1);
  });

  test('a 1.5 MB message is streamed whole: EICAR at its very end is found', async () => {
    const filler = ('lorem ipsum dolor sit amet '.repeat(3) + '\n').repeat(18_000); // ~1.5 MB of text
    const big = await inbound(
      message({ from: 'sender@outside.test', to: 'user@example.test', body: filler + eicar() + '\n' }),
    );
    assertVirusRejected(big, 'EICAR after 1.5 MB');
    const clean = await inbound(
      message({ from: 'sender@outside.test', to: 'user@example.test', body: filler + 'the end\n' }),
    );
    assert.equal(clean.ok, true, clean.dataReply?.full ?? clean.error);
    assert.match(await waitForDelivery(clean.queueId!), /^X-Virus-Scanned: clean$/m);
  });

  test('EICAR in the raw body: 554 5.7.1 at end of data', async () => {
    const r = await inbound(
      message({ from: 'sender@outside.test', to: 'user@example.test', body: `Test:\n${eicar()}\n` }),
    );
    assertVirusRejected(r, 'raw');
  });

  test('EICAR as a base64 attachment: 554 5.7.1', async () => {
    const r = await inbound(
      message({
        from: 'sender@outside.test',
        to: 'user@example.test',
        body: 'see attachment',
        attachments: [{ content: eicar(), filename: 'notes.txt', contentType: 'text/plain' }],
      }),
    );
    assertVirusRejected(r, 'base64 attachment');
  });

  test('EICAR inside a zip attachment: 554 5.7.1', async () => {
    const zip = await eicarZip();
    const r = await inbound(
      message({
        from: 'sender@outside.test',
        to: 'user@example.test',
        body: 'archive attached',
        attachments: [{ content: zip, filename: 'archive.zip', contentType: 'application/zip' }],
      }),
    );
    assertVirusRejected(r, 'zip');
  });

  test('EICAR in an attachment of a forwarded message (message/rfc822): 554 5.7.1', async () => {
    const inner = message({
      from: 'someone@elsewhere.test',
      to: 'sender@outside.test',
      subject: 'original',
      body: 'inner message',
      attachments: [{ content: eicar(), filename: 'inner.txt', contentType: 'text/plain' }],
    });
    const r = await inbound(
      message({
        from: 'sender@outside.test',
        to: 'user@example.test',
        subject: 'Fwd: original',
        body: 'forwarding',
        attachments: [{ content: inner, filename: 'original.eml', contentType: 'message/rfc822', encoding: '7bit' }],
      }),
    );
    assertVirusRejected(r, 'message/rfc822');
  });
});

describe('rule 5: clamd down (fail closed) and back', () => {
  test('4xx by end of data, then 4xx at MAIL once the breaker opens; delivered again after clamd returns', async () => {
    const before = (await queueEntries()).length;
    const mark = maillogMark();
    await stopClamd();
    try {
      for (let i = 1; i <= BREAKER_FAILURES; i++) {
        const r = await inbound(
          message({ from: 'sender@outside.test', to: 'user@example.test', body: `attempt ${i} while clamd is down` }),
        );
        assert.equal(r.ok, false, `attempt ${i} must not be queued`);
        const refusal =
          r.mailReply?.code !== 250 ? r.mailReply : r.dataStartReply?.code !== 354 ? r.dataStartReply : r.dataReply;
        assert.equal(Math.floor((refusal?.code ?? 0) / 100), 4, `attempt ${i}: ${refusal?.full ?? r.error}`);
        assert.match(refusal!.text, /Virus scanner unavailable/);
      }
      // The breaker is open now: refused at MAIL, before the client sends anything.
      const fast = await inbound(
        message({ from: 'sender@outside.test', to: 'user@example.test', body: 'after the breaker opened' }),
      );
      assert.equal(fast.mailReply?.code, 451, fast.mailReply?.full ?? fast.error);
      assert.equal(fast.mailReply?.enhanced, '4.3.0');
      assert.equal(fast.dataReply, undefined);
      // Nothing got into the queue and nothing was delivered unscanned.
      assert.equal((await queueEntries()).length, before);
      const logSince = readFileSync(stack.maillog).subarray(mark).toString('utf8');
      assert.doesNotMatch(logSince, /status=sent/, 'nothing was delivered while clamd was down');
      await rg.waitForLog(/circuit closed -> open/);
    } finally {
      // clamd-start has been seen to fail once, right after the stop, without a word from
      // clamd (stack issue, reported); one retry keeps this rule test about the rule.
      await startClamd().catch(async () => {
        await sleep(1000);
        await startClamd();
      });
    }
    // The breaker PINGs clamd at most every probe interval; after that the next message goes through.
    await sleep(PROBE_INTERVAL_MS + 200);
    const r = await inbound(message({ from: 'sender@outside.test', to: 'user@example.test', body: 'clamd is back' }));
    assert.equal(r.ok, true, r.mailReply?.full ?? r.dataReply?.full ?? r.error);
    const delivered = await waitForDelivery(r.queueId!);
    assert.match(delivered, /clamd is back/);
    assert.match(delivered, /^X-Virus-Scanned: clean$/m);
  });
});
