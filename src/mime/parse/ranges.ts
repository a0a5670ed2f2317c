// Reads the byte ranges of several parts from one pass over the message: the parse knows where
// each part lies, so a reader streams the message once and hands each range's bytes to its
// consumer as they pass, without keeping the message.
import type { Readable } from 'node:stream';

export interface RangeReader {
  start: number;
  end: number;
  /** Called with consecutive pieces of [start, end); return false to skip the rest of the range. */
  data(piece: Buffer): boolean | void;
  /** The range is over (all of it was handed over, or data() returned false, or the stream ended). */
  done(): void;
}

/**
 * Streams `source` once and feeds every reader its range. Readers must be sorted by start and
 * must not overlap. `stop()` is asked after every piece: true ends the pass early.
 */
export async function readRanges(source: Readable, readers: readonly RangeReader[], stop: () => boolean = () => false): Promise<void> {
  let k = 0;
  let pos = 0;
  let skipping = false;
  const finish = () => {
    readers[k]!.done();
    k++;
    skipping = false;
  };
  try {
    for await (const raw of source as AsyncIterable<Buffer | string>) {
      const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
      const chunkEnd = pos + chunk.length;
      while (k < readers.length) {
        const r = readers[k]!;
        if (r.end <= pos || (r.start === r.end && r.start <= chunkEnd)) {
          finish();
          continue;
        }
        if (r.start >= chunkEnd) break;
        const from = Math.max(r.start, pos) - pos;
        const to = Math.min(r.end, chunkEnd) - pos;
        if (!skipping && r.data(chunk.subarray(from, to)) === false) skipping = true;
        if (stop()) return;
        if (r.end <= chunkEnd) finish();
        else break;
      }
      pos = chunkEnd;
      if (k >= readers.length) break;
    }
    while (k < readers.length) finish();
  } finally {
    source.destroy();
  }
}
