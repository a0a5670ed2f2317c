// The content walk decodes the first PROBE_BYTES of a big body piece before asking its sink
// again (scan-parts.ts): what lies after that cut is still found, in a zip, in text and in a
// part that is only measured.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { b64, mixed, pythonZip, REFERENCE_CONTENT, runContent } from './content-fixtures.js';

/** Far past the probe: the interesting bytes sit behind the first cut. */
const FILLER = 'x'.repeat(20_000);

describe('content walk with a probe cut', () => {
  it('lists a large zip and finds the blocked member at its end', async () => {
    const zip = pythonZip([{ name: 'filler.txt', data: FILLER }, { name: 'run.exe', data: 'MZ' }]);
    const v = await runContent(REFERENCE_CONTENT, mixed([`Content-Type: application/zip; name="files.zip"\nContent-Transfer-Encoding: base64\n\n${b64(zip)}`]));
    assert.equal(v.action, 'reject');
    assert.match(v.reason ?? '', /run\.exe/);
  });

  it('finds a phrase behind the cut in a long text part', async () => {
    const v = await runContent(REFERENCE_CONTENT, mixed([], { text: `${FILLER}\nCONFIDENTIAL - INTERNAL ONLY\n` }), 'outbound');
    assert.equal(v.action, 'reject');
  });

  it('measures a large non-zip attachment to the byte', async () => {
    const config = { ...REFERENCE_CONTENT, attachments: { ...REFERENCE_CONTENT.attachments, max_size: 15_000 } };
    const pdf = Buffer.alloc(15_001, 7);
    const over = await runContent(config, mixed([`Content-Type: application/pdf; name="a.pdf"\nContent-Transfer-Encoding: base64\n\n${b64(pdf)}`]));
    assert.match(over.reason ?? '', /larger than 15000 bytes/);
    const exact = await runContent(config, mixed([`Content-Type: application/pdf; name="a.pdf"\nContent-Transfer-Encoding: base64\n\n${b64(pdf.subarray(1))}`]));
    assert.equal(exact.action, 'continue');
  });
});
