// Reads the byte ranges of several parts from one pass over the message: the parse knows where
// each part lies, so a reader goes over the message once and hands each range's bytes to its
// consumer as they pass, without keeping the message. A message held in memory is read as its
// list of pieces, synchronously; a spilled one as a stream.
import type { Readable } from 'node:stream';

/** The message's bytes in order: pieces in memory, or a stream. */
export type Pieces = Iterable<Buffer> | AsyncIterable<Buffer | string>;

/** What MIME readers need of a message: a fresh stream per call, and its pieces when in memory. */
export interface MessageInput {
  message(): Readable;
  inMemory?(): { header: Buffer; body: readonly Buffer[] } | null;
}

/** The whole message (header block, blank line, body): in-memory pieces when there are, else a stream. */
export function messagePieces(src: MessageInput): Pieces {
  const kept = src.inMemory?.();
  return kept ? [kept.header, ...kept.body] : src.message();
}

export function isSync(p: Pieces): p is Iterable<Buffer> {
  return typeof (p as Iterable<Buffer>)[Symbol.iterator] === 'function' && !(Symbol.asyncIterator in (p as object));
}

export interface RangeReader {
  start: number;
  end: number;
  /** Called with consecutive pieces of [start, end); return false to skip the rest of the range. */
  data(piece: Buffer): boolean | void;
  /** The range is over (all of it was handed over, or data() returned false, or the input ended). */
  done(): void;
}

/**
 * Goes over `pieces` once and feeds every reader its range. Readers must be sorted by start and
 * must not overlap. `stop()` is asked after every piece: true ends the pass early.
 */
export async function readRanges(
  pieces: Pieces,
  readers: readonly RangeReader[],
  stop: () => boolean = () => false,
): Promise<void> {
  const feed = new RangeFeed(readers, stop);
  if (isSync(pieces)) {
    for (const chunk of pieces) if (!feed.push(chunk)) return;
  } else {
    // A stream (a spilled message) is left as soon as the ranges are done. Node then builds an
    // AbortError with its stack, which is why a message held in memory is not read as a stream.
    for await (const raw of pieces) if (!feed.push(typeof raw === 'string' ? Buffer.from(raw) : raw)) return;
  }
  feed.end();
}

/** Hands the readers their ranges from pieces pushed in order. */
export class RangeFeed {
  private k = 0;
  private pos = 0;
  private skipping = false;

  constructor(
    private readonly readers: readonly RangeReader[],
    private readonly stop: () => boolean = () => false,
  ) {}

  /** False once the pass is over (every range done, or stop()). */
  push(chunk: Buffer): boolean {
    const { readers } = this;
    const chunkEnd = this.pos + chunk.length;
    while (this.k < readers.length) {
      const r = readers[this.k]!;
      if (r.end <= this.pos || (r.start === r.end && r.start <= chunkEnd)) {
        this.finish();
        continue;
      }
      if (r.start >= chunkEnd) break;
      const from = Math.max(r.start, this.pos) - this.pos;
      const to = Math.min(r.end, chunkEnd) - this.pos;
      if (!this.skipping && r.data(chunk.subarray(from, to)) === false) this.skipping = true;
      if (this.stop()) return false;
      if (r.end <= chunkEnd) this.finish();
      else break;
    }
    this.pos = chunkEnd;
    return this.k < readers.length;
  }

  end(): void {
    while (this.k < this.readers.length) this.finish();
  }

  private finish(): void {
    this.readers[this.k]!.done();
    this.k++;
    this.skipping = false;
  }
}
