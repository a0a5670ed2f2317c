// Rule 8 (blocklists) through the real Postfix and rbldnsd: a client listed in bl.test is looked
// up at connect and refused at MAIL FROM (naming the list), unless it authenticated or is
// internal; sender domains in dbl.test or in blocked_domains are refused at MAIL; an answer that
// is not a listing code is a list error, and the mail goes on.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  ensureStack,
  message,
  referencePolicy,
  smtp,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
  type SmtpResult,
  type XclientAttributes,
} from './harness.js';

let rg: RelayguardProcess;

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard();
});

after(async () => {
  await rg?.stop();
});

function send(from: string, xclient: XclientAttributes): Promise<SmtpResult> {
  const to = 'user@example.test';
  return smtp({ from, to: [to], data: message({ from, to, body: 'blocklist test' }), xclient });
}

function assertRefusedAtMail(r: SmtpResult, text: RegExp): void {
  assert.equal(r.mailReply?.code, 554, r.mailReply?.full ?? r.error);
  assert.equal(r.mailReply?.enhanced, '5.7.1');
  assert.match(r.mailReply.text, text);
  assert.match(r.mailReply.text, /\(ref [0-9a-z-]+\)/);
  assert.equal(r.rcptReplies.length, 0);
}

async function assertDelivered(r: SmtpResult): Promise<void> {
  assert.equal(r.mailReply?.code, 250, r.mailReply?.full ?? r.error);
  assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
  assert.match(await waitForDelivery(r.queueId!), /blocklist test/);
}

describe('rule 8: DNS blocklists', () => {
  test('client listed in bl.test (203.0.113.66): 554 5.7.1 at MAIL, naming bl.test with its TXT reason', async () => {
    const r = await send('sender@outside.test', { addr: '203.0.113.66' });
    assertRefusedAtMail(
      r,
      /Client host \[203\.0\.113\.66\] blocked using bl\.test; 203\.0\.113\.66 is listed in bl\.test/,
    );
    // The greeting and EHLO were not refused: the list only speaks at MAIL.
    assert.equal(r.xclientReply?.code, 220, r.xclientReply?.full);
  });

  test('the same listed client, authenticated (XCLIENT LOGIN): accepted and delivered', async () => {
    await assertDelivered(await send('alice@example.test', { addr: '203.0.113.66', login: 'alice' }));
  });

  test('an internal client listed in bl.test (127.0.0.2): accepted', async () => {
    await assertDelivered(await send('bob@example.test', { addr: '127.0.0.2' }));
  });

  test('an unlisted outside client: accepted', async () => {
    await assertDelivered(await send('sender@outside.test', { addr: '203.0.113.9' }));
  });

  test('sender domain listed in dbl.test (spam.example): 554 5.7.1 at MAIL', async () => {
    const r = await send('offers@spam.example', { addr: '203.0.113.9' });
    assertRefusedAtMail(
      r,
      /Sender address <offers@spam\.example> rejected: domain spam\.example blocked using dbl\.test/,
    );
  });

  test('sender in the static blocked domain blocked.test and its subdomain: 554 5.7.1 at MAIL', async () => {
    assertRefusedAtMail(
      await send('x@blocked.test', { addr: '203.0.113.10' }),
      /domain blocked\.test is blocked by local policy/,
    );
    assertRefusedAtMail(
      await send('x@sub.blocked.test', { addr: '203.0.113.10' }),
      /domain sub\.blocked\.test is blocked by local policy/,
    );
  });

  test('an authenticated client with a blocked sender domain: accepted', async () => {
    await assertDelivered(await send('x@blocked.test', { addr: '203.0.113.11', login: 'alice' }));
  });
});

describe('rule 8: an error code from the list is not a listing', () => {
  test('an outside client the list answers 127.255.255.254 for (203.0.113.67): logged as a list error, mail delivered', async () => {
    await assertDelivered(await send('sender@outside.test', { addr: '203.0.113.67' }));
    const line = await rg.waitForLog(/dnsbl bl\.test: list error answer 127\.255\.255\.254/);
    assert.match(line, /203\.0\.113\.67/);
  });
});

describe('rule 8: list errors are not listings', () => {
  let variant: RelayguardProcess;

  before(async () => {
    await rg.stop();
    // The reference policy with bl.test's listing code changed to 127.0.0.3: the answer 127.0.0.2
    // for 203.0.113.66 is then "not a configured code", which must be a list error.
    const text = readFileSync(referencePolicy, 'utf8').replace(
      /(- zone: bl\.test\n\s+codes: )\[127\.0\.0\.2\]/,
      '$1[127.0.0.3]',
    );
    assert.match(text, /codes: \[127\.0\.0\.3\]/, 'the reference policy still has the bl.test block this test edits');
    variant = await startRelayguard({ configText: text });
  });

  after(async () => {
    await variant?.stop();
  });

  test('an answer outside the listing codes: logged as a list error, mail accepted', async () => {
    await assertDelivered(await send('sender@outside.test', { addr: '203.0.113.66' }));
    const line = await variant.waitForLog(
      /dnsbl bl\.test: answer 127\.0\.0\.2 is not a configured listing code for 203\.0\.113\.66/,
    );
    assert.match(line, /not treated as a listing/);
  });
});
