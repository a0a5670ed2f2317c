// A DKIM signature and an ARC set made while the clock moves on still verify. mailauth read the
// clock once for the header it signs and again for the header it returns; when the rounded
// second changed in between, the signature did not verify (found as a rare failure of
// dkim-sign.test.ts). Here the clock jumps a second at every read, so the race always happens.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { authenticate, dkimVerify } from 'mailauth';
import { arcSet, dkimSignatures, type SealKey } from '../../src/deps/mail-auth.js';
import { dkimTxtRecord } from '../../src/deps/signing-key.js';

const MESSAGE = Buffer.from('From: s@sales.example.test\r\nTo: b@example.test\r\nSubject: x\r\n\r\nHi.\r\n');

function rsaKey(domain: string, selector: string): { key: SealKey; txt: { name: string; value: string } } {
  const privateKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
  return {
    key: { domain, selector, privateKey, algorithm: 'rsa-sha256' },
    txt: dkimTxtRecord(privateKey, domain, selector),
  };
}

/** Runs `work` with a clock that is a second later at every read of Date.now(). */
async function withJumpingClock<T>(work: () => Promise<T>): Promise<T> {
  const realNow = Date.now;
  let t = realNow();
  Date.now = () => (t += 1000);
  try {
    return await work();
  } finally {
    Date.now = realNow;
  }
}

/** A resolver with one TXT record; every other name does not exist. */
function resolverFor(txt: { name: string; value: string }) {
  return async (name: string, type: string) => {
    if (type === 'TXT' && name === txt.name) return [txt.value.match(/.{1,255}/g)!];
    throw Object.assign(new Error(`${name} ${type}: not found`), { code: 'ENOTFOUND' });
  };
}

const asText = (fields: Array<{ name: string; value: string }>) =>
  fields.map((f) => `${f.name}: ${f.value.replace(/\n/g, '\r\n')}\r\n`).join('');

describe('signatures made while the clock moves on', () => {
  it('a DKIM signature verifies', async () => {
    const { key, txt } = rsaKey('sales.example.test', 's1');
    const fields = await withJumpingClock(() => dkimSignatures(Readable.from([MESSAGE]), [key]));
    const signed = Buffer.concat([Buffer.from(asText(fields)), MESSAGE]);
    const r = await dkimVerify(signed, { resolver: resolverFor(txt) });
    const results = (r.results as Array<{ status: { result: string; comment?: string } }>).map((x) => x.status);
    assert.deepEqual(
      results.map((s) => s.result),
      ['pass'],
      JSON.stringify(results),
    );
  });

  it('an ARC set verifies at the next hop', async () => {
    const { key, txt } = rsaKey('gw.example.test', 'arc');
    const fields = await withJumpingClock(() =>
      arcSet(Readable.from([MESSAGE]), key, 'gw.example.test; spf=none smtp.mailfrom=sales.example.test', 'none'),
    );
    const sealed = Buffer.concat([Buffer.from(asText(fields)), MESSAGE]);
    const next = await authenticate(sealed, {
      ip: '192.0.2.1',
      helo: 'x',
      sender: 's@sales.example.test',
      mta: 'next.test',
      resolver: resolverFor(txt),
      disableBimi: true,
    });
    const arc = next.arc as { status: { result: string; comment?: string } };
    assert.equal(arc.status.result, 'pass', JSON.stringify(arc.status));
  });
});
