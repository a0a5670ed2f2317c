// The new body of a message as the original body with a few byte ranges replaced: nothing is
// copied or spooled, the session streams the original (from memory or its spool file) and
// the added bytes go in at their offsets. Every byte the edits do not touch is the original's.
import { Readable } from 'node:stream';
import type { BodySource } from '../../policy/types.js';
import { isSync, type Pieces } from '../parse/ranges.js';

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
    private readonly original: () => Pieces,
    originalSize: number,
    /** Sorted by `from`, not overlapping. */
    private readonly splices: readonly Splice[],
  ) {
    this.size = splices.reduce((n, s) => n + s.bytes.length - (s.to - s.from), originalSize);
  }

  /** The new body for the session. */
  stream(): Readable {
    return Readable.from(this.pieces());
  }

  /** The new body as pieces: in memory when the original is. */
  pieces(): Pieces {
    if (this.released) throw new Error('the rewritten body was released');
    const source = this.original();
    const splicer = new Splicer(this.splices);
    if (isSync(source)) return [...source].flatMap((c) => splicer.push(c)).concat(splicer.end());
    return (async function* () {
      for await (const raw of source) yield* splicer.push(typeof raw === 'string' ? Buffer.from(raw) : raw);
      yield* splicer.end();
    })();
  }

  dispose(): void {
    this.released = true;
  }
}

/** Applies the splices to the original's pieces as they pass. */
class Splicer {
  private pos = 0;
  private k = 0;
  /** Index of the last splice whose bytes went out. */
  private inserted = -1;

  constructor(private readonly splices: readonly Splice[]) {}

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const { splices } = this;
    const pos = this.pos;
    const end = pos + chunk.length;
    let at = pos;
    while (at < end) {
      const s = splices[this.k];
      if (!s || s.from >= end) {
        out.push(chunk.subarray(at - pos));
        break;
      }
      if (at < s.from) {
        out.push(chunk.subarray(at - pos, s.from - pos));
        at = s.from;
      }
      if (this.inserted < this.k) {
        if (s.bytes.length) out.push(s.bytes);
        this.inserted = this.k;
      }
      if (s.to <= end) {
        at = Math.max(at, s.to);
        this.k++;
      } else at = end;
    }
    this.pos = end;
    return out;
  }

  /** Edits at the very end of the body. */
  end(): Buffer[] {
    const out: Buffer[] = [];
    for (; this.k < this.splices.length; this.k++)
      if (this.inserted < this.k && this.splices[this.k]!.bytes.length) out.push(this.splices[this.k]!.bytes);
    return out;
  }
}
