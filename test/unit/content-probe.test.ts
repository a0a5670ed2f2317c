// The content walk decodes the first PROBE_BYTES of a big body piece before asking its sink
// again (scan-parts.ts): what lies after that cut is still found, in a zip, in text and in a
// part that is only measured.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { walkMime, type PartVisitor } from '../../src/mime/scan-parts.js';
import { b64, mixed, pythonZip, REFERENCE_CONTENT, runContent } from './content-fixtures.js';

/** Far past the probe: the interesting bytes sit behind the first cut. */
const FILLER = 'x'.repeat(20_000);

describe('content walk with a probe cut', () => {
  it('lists a large zip and finds the blocked member at its end', async () => {
    const zip = pythonZip([
      { name: 'filler.txt', data: FILLER },
      { name: 'run.exe', data: 'MZ' },
    ]);
    const v = await runContent(
      REFERENCE_CONTENT,
      mixed([`Content-Type: application/zip; name="files.zip"\nContent-Transfer-Encoding: base64\n\n${b64(zip)}`]),
    );
    assert.equal(v.action, 'reject');
    assert.match(v.reason ?? '', /run\.exe/);
  });

  it('finds a phrase behind the cut in a long text part', async () => {
    const v = await runContent(
      REFERENCE_CONTENT,
      mixed([], { text: `${FILLER}\nCONFIDENTIAL - INTERNAL ONLY\n` }),
      'outbound',
    );
    assert.equal(v.action, 'reject');
  });

  it('measures a large non-zip attachment to the byte', async () => {
    const config = { ...REFERENCE_CONTENT, attachments: { ...REFERENCE_CONTENT.attachments, max_size: 15_000 } };
    const pdf = Buffer.alloc(15_001, 7);
    const over = await runContent(
      config,
      mixed([`Content-Type: application/pdf; name="a.pdf"\nContent-Transfer-Encoding: base64\n\n${b64(pdf)}`]),
    );
    assert.match(over.reason ?? '', /larger than 15000 bytes/);
    const exact = await runContent(
      config,
      mixed([
        `Content-Type: application/pdf; name="a.pdf"\nContent-Transfer-Encoding: base64\n\n${b64(pdf.subarray(1))}`,
      ]),
    );
    assert.equal(exact.action, 'continue');
  });
});

describe('content walk of a part whose size does not matter', () => {
  const partOf = (body: string) =>
    `--b\r\nContent-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}\r\n--b--\r\n`;
  const message = (body: string) => Buffer.from(`Content-Type: multipart/mixed; boundary="b"\r\n\r\n${partOf(body)}`);

  /** A sink that takes the first piece, then wants neither bytes nor (if told) the size. */
  const walk = async (wantsSize: boolean, body: string) => {
    const seen = { written: 0, skipped: 0, ended: false };
    const visitor: PartVisitor = {
      onPart: () => ({
        wantsContent: false,
        wantsSize,
        write: (b: Buffer) => void (seen.written += b.length),
        skip: (n: number) => void (seen.skipped += n),
        end: () => void (seen.ended = true),
      }),
    };
    const result = await walkMime(
      () => Readable.from([message(body)]),
      { maxDepth: 5, maxParts: 10, maxHeaderBytes: 4096 },
      visitor,
      new AbortController().signal,
    );
    return { seen, result };
  };

  it('is neither decoded nor measured, and still ends', async () => {
    const body = b64(Buffer.alloc(30_000, 1));
    const { seen, result } = await walk(false, body);
    assert.equal(result.status, 'complete');
    assert.ok(seen.ended);
    // Only the probe's first piece was decoded; nothing after it was counted.
    assert.ok(seen.written <= 4096, `decoded ${seen.written} bytes`);
    assert.equal(seen.skipped, 0);
  });

  it('is measured to the byte when the size does matter', async () => {
    const { seen } = await walk(true, b64(Buffer.alloc(30_000, 1)));
    assert.equal(seen.written + seen.skipped, 30_000);
  });
});
