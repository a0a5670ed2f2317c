// BodyFrames: REPLBODY frames cut from a body in pieces, without copying: every frame at most
// MAX_BODY_CHUNK, heads that say so, the payloads together the body; an empty body is one
// empty frame.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_BODY_CHUNK, Reply } from '../../src/protocol/constants.js';
import { encodeFrame } from '../../src/protocol/frame.js';
import { BodyFrames, FRAME_HEAD_BYTES } from '../../src/session/body-frames.js';

/** The plain way: the joined body cut into REPLBODY frames of MAX_BODY_CHUNK, one empty frame for none. */
function expectedFrames(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < body.length || off === 0; off += MAX_BODY_CHUNK)
    out.push(encodeFrame(Reply.REPLBODY, body.subarray(off, off + MAX_BODY_CHUNK)));
  return out;
}

function frames(pieces: Buffer[]): Buffer[] {
  const f = new BodyFrames();
  const out: Buffer[] = [];
  for (const p of pieces) {
    f.add(p);
    while (f.ready(false)) out.push(Buffer.concat(f.next()));
  }
  while (f.ready(true)) out.push(Buffer.concat(f.next()));
  return out;
}

describe('BodyFrames', () => {
  it('gives the frames of the joined body cut the plain way, whatever the pieces', () => {
    const body = Buffer.alloc(3 * MAX_BODY_CHUNK + 1234, 'y');
    for (const size of [1000, 65535, 65536, 100_000, body.length]) {
      const pieces: Buffer[] = [];
      for (let i = 0; i < body.length; i += size) pieces.push(body.subarray(i, i + size));
      assert.deepEqual(frames(pieces), expectedFrames(body), `pieces of ${size}`);
    }
  });

  it('sends an empty body as one empty frame', () => {
    const [only, ...rest] = frames([Buffer.alloc(0)]);
    assert.equal(rest.length, 0);
    assert.equal(only!.length, FRAME_HEAD_BYTES);
    assert.equal(only!.readUInt32BE(0), 1);
    assert.equal(only![4], Reply.REPLBODY);
  });
});
