// Rule 9 through the real Postfix: a partner (198.51.100.7) without TLS is refused at MAIL with
// 530 5.7.0; with STARTTLS the mail is delivered and records the TLS in X-Relayguard-TLS.
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

const PARTNER = { addr: '198.51.100.7' };
let rg: RelayguardProcess;

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard();
});

after(async () => {
  await rg?.stop();
});

const mail = (headers: Record<string, string> = {}) =>
  message({ from: 'someone@partner.test', to: 'user@example.test', body: 'partner mail', headers });

describe('rule 9: TLS policy', () => {
  test('partner without TLS: 530 5.7.0 at MAIL', async () => {
    const r = await smtp({ from: 'someone@partner.test', to: ['user@example.test'], data: mail(), xclient: PARTNER });
    assert.equal(r.encrypted, false);
    assert.equal(r.mailReply?.code, 530, r.mailReply?.full ?? r.error);
    assert.equal(r.mailReply?.enhanced, '5.7.0');
    assert.match(r.mailReply.text, /STARTTLS/);
  });

  test('partner with STARTTLS: delivered with the TLS header; a forged one is removed', async () => {
    const r = await smtp({
      from: 'someone@partner.test',
      to: ['user@example.test'],
      data: mail({ 'X-Relayguard-TLS': 'version=TLSv1.3 forged' }),
      xclient: PARTNER,
      tls: true,
    });
    assert.equal(r.encrypted, true);
    assert.equal(r.ok, true, r.dataReply?.full ?? r.mailReply?.full ?? r.error);
    const delivered = await waitForDelivery(r.queueId!);
    const headers = delivered.split('\n\n')[0]!;
    const tlsHeaders = headers.split('\n').filter((l) => /^X-Relayguard-TLS:/i.test(l));
    assert.equal(tlsHeaders.length, 1, headers);
    assert.match(tlsHeaders[0]!, /^X-Relayguard-TLS: version=TLSv1\.[23] cipher=\S+ bits=\d+$/);
  });

  test('an outside client needs no TLS; its mail records "none"', async () => {
    const r = await smtp({
      from: 'someone@outside.test',
      to: ['user@example.test'],
      data: message({ from: 'someone@outside.test', to: 'user@example.test', body: 'hi' }),
      xclient: { addr: '203.0.113.9' },
    });
    assert.equal(r.ok, true, r.dataReply?.full ?? r.mailReply?.full ?? r.error);
    assert.match(await waitForDelivery(r.queueId!), /^X-Relayguard-TLS: none$/m);
  });
});
