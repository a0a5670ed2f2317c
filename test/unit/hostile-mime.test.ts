// The MIME paths on shapes an attacker can send within the size limit: huge or folded header
// blocks, header values of blanks, lines of dashes. Each must complete (the test timeout is the
// failure: a scan that is quadratic in the message takes minutes here, a linear one
// milliseconds), because the milter has one thread and a stalled scan stalls every connection.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { addDisclaimer } from '../../src/mime/disclaimer/index.js';
import { disclaimerJob } from '../support/disclaimer-job.js';
import { walkMime } from '../../src/mime/scan-parts.js';

const LIMITS = { maxDepth: 20, maxParts: 500, maxHeaderBytes: 256 * 1024 };
const never = new AbortController().signal;

/** The message in 64 KiB pieces, as the body store hands it over. */
function pieces(msg: Buffer): Readable {
  const out: Buffer[] = [];
  for (let i = 0; i < msg.length; i += 65536) out.push(msg.subarray(i, i + 65536));
  return Readable.from(out);
}

const HEADERS: Array<[string, string]> = [
  ['a header value of 250 000 blanks', `X-A: ${' '.repeat(250_000)}x\r\n`],
  ['a header line without a colon', `${'a'.repeat(250_000)}\r\n`],
  ['30 000 headers', 'X-A: b\r\n'.repeat(30_000)],
  ['40 000 Content-Type parameters', `Content-Type: text/plain${'; a=b'.repeat(40_000)}\r\n`],
  ['17 000 encoded words', `Subject: ${'=?utf-8?q?a?= '.repeat(17_000)}\r\n`],
];

const BODIES: Array<[string, string]> = [
  ['a 1.8 MB line starting with "--"', `--${'x'.repeat(1_800_000)}\r\n`],
  ['300 000 lines that look like delimiters', '--x\r\n'.repeat(300_000)],
  ['dashes in the middle of every line', `a--${'-'.repeat(60)}\r\n`.repeat(25_000)],
];

describe('hostile MIME', () => {
  for (const [name, head] of HEADERS) {
    it(`content walk and disclaimer complete: ${name}`, { timeout: 30_000 }, async () => {
      const msg = Buffer.from(`${head}From: a@b.test\r\n\r\nbody\r\n`);
      const walk = await walkMime(() => pieces(msg), LIMITS, { onHeaders() {}, onPart: () => null }, never);
      assert.notEqual(walk.status, 'stopped');
      const d = await addDisclaimer(
        disclaimerJob(msg, { texts: { text: 'Disclaimer', html: '<p>Disclaimer</p>' }, maxParts: 500 }, 65536),
      );
      if (d.kind === 'rewritten') d.body.dispose();
      assert.ok(['rewritten', 'skipped', 'unchanged'].includes(d.kind));
    });
  }

  for (const [name, body] of BODIES) {
    it(`content walk completes and sees the whole part: ${name}`, { timeout: 30_000 }, async () => {
      const msg = Buffer.from(
        `Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n${body}--b--\r\n`,
      );
      let bytes = 0;
      const walk = await walkMime(
        () => pieces(msg),
        LIMITS,
        { onPart: () => ({ write: (b: Buffer) => void (bytes += b.length), end() {} }) },
        never,
      );
      assert.equal(walk.status, 'complete');
      // The part's content is the body minus the line break that belongs to the closing delimiter.
      assert.equal(bytes, Buffer.byteLength(body) - 2);
    });
  }
});
