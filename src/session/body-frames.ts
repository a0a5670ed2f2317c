// The new body as REPLBODY frames without copying it: each frame is its 5-byte head followed
// by views of the body's own buffers, and the pieces go to the socket in one corked write
// (writev). Joining the body into frames copied it up to four times (join, frame, batch,
// reply), which at 100 KB showed as a tenth of relayguard's CPU per message.
import { FRAME_HEADER_BYTES, MAX_BODY_CHUNK } from '../protocol/constants.js';
import { replBodyHead } from '../protocol/encode.js';

/** Bytes of a frame before its payload: the length and the command byte. */
export const FRAME_HEAD_BYTES = FRAME_HEADER_BYTES + 1;

/** Collects a body in pieces and cuts REPLBODY frames (head + payload views) of at most MAX_BODY_CHUNK. */
export class BodyFrames {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private cut = 0;

  add(chunk: Buffer): void {
    if (!chunk.length) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** A whole frame can be cut (or, at the end, what is left, or one empty frame for an empty body). */
  ready(final: boolean): boolean {
    return this.pendingBytes >= MAX_BODY_CHUNK || (final && (this.pendingBytes > 0 || this.cut === 0));
  }

  /** The next frame's pieces; call while ready(). */
  next(): Buffer[] {
    const n = Math.min(MAX_BODY_CHUNK, this.pendingBytes);
    const frame = [replBodyHead(n)];
    let want = n;
    while (want > 0) {
      const head = this.pending[0]!;
      if (head.length <= want) {
        frame.push(head);
        this.pending.shift();
        want -= head.length;
      } else {
        frame.push(head.subarray(0, want));
        this.pending[0] = head.subarray(want);
        want = 0;
      }
    }
    this.pendingBytes -= n;
    this.cut++;
    return frame;
  }
}
