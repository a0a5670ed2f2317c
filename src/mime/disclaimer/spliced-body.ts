// The new body of a message as the original body with a few byte ranges replaced: nothing is
// copied or spooled, the session streams the original (from memory or its spool file) and
// the added bytes go in at their offsets. Every byte the edits do not touch is the original's.
import { Readable } from 'node:stream';
import type { BodySource } from '../../policy/types.js';

/** Replace the body's bytes [from, to) with `bytes`; offsets relative to the body. */
export interface Splice {
  from: number;
  to: number;
  bytes: Buffer;
}

export class SplicedBody implements BodySource {
  readonly size: number;
  private released = false;

  constructor(
    private readonly original: () => Readable,
    originalSize: number,
    /** Sorted by `from`, not overlapping. */
    private readonly splices: readonly Splice[],
  ) {
    this.size = splices.reduce((n, s) => n + s.bytes.length - (s.to - s.from), originalSize);
  }

  stream(): Readable {
    if (this.released) throw new Error('the rewritten body was released');
    return Readable.from(spliced(this.original(), this.splices));
  }

  dispose(): void {
    this.released = true;
  }
}

async function* spliced(source: Readable, splices: readonly Splice[]): AsyncGenerator<Buffer> {
  let pos = 0;
  let k = 0;
  /** Index of the last splice whose bytes went out. */
  let inserted = -1;
  for await (const raw of source as AsyncIterable<Buffer | string>) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    const end = pos + chunk.length;
    let at = pos;
    while (at < end) {
      const s = splices[k];
      if (!s || s.from >= end) {
        yield chunk.subarray(at - pos);
        break;
      }
      if (at < s.from) {
        yield chunk.subarray(at - pos, s.from - pos);
        at = s.from;
      }
      if (inserted < k) {
        if (s.bytes.length) yield s.bytes;
        inserted = k;
      }
      if (s.to <= end) {
        at = Math.max(at, s.to);
        k++;
      } else at = end;
    }
    pos = end;
  }
  // Edits at the very end of the body.
  for (; k < splices.length; k++) if (inserted < k && splices[k]!.bytes.length) yield splices[k]!.bytes;
}
