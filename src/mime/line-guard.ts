// What every stream passes before it reaches mailsplit's Splitter:
// - whole lines only. The Splitter of mailsplit 5.4.6 can lose or split bytes when a chunk ends
//   between the CR and the LF of a line break or inside a line of a part body (upstream
//   zone-eu/mailsplit PR #31; its ChunkedPassthrough only makes such cuts rarer). Cutting the
//   input after line feeds only avoids that path entirely, so untouched parts stay
//   byte-identical however the MTA chunked the body.
// - no line longer than a limit. The Splitter joins the pieces of an unfinished line with
//   Buffer.concat on every chunk, which is quadratic: a 50 MB message in one line costs seconds
//   and hundreds of MB. This check is linear.
import { Transform, type TransformCallback } from 'node:stream';

export const LINE_TOO_LONG = 'ELINETOOLONG';

export class LineTooLongError extends Error {
  readonly code = LINE_TOO_LONG;
  constructor(readonly limit: number) {
    super(`a line longer than ${limit} bytes`);
  }
}

export class WholeLines extends Transform {
  /** The unfinished last line, in pieces (joined once, when its line feed arrives). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineLength = Number.POSITIVE_INFINITY) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const lastLf = chunk.lastIndexOf(0x0a);
    const tooLong = firstLongLine(chunk, this.pendingBytes, this.maxLineLength);
    if (tooLong) return done(tooLong);
    if (lastLf < 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      return done();
    }
    const head = chunk.subarray(0, lastLf + 1);
    const out = this.pendingBytes ? Buffer.concat([...this.pending, head], this.pendingBytes + head.length) : head;
    this.pending = lastLf + 1 < chunk.length ? [chunk.subarray(lastLf + 1)] : [];
    this.pendingBytes = chunk.length - lastLf - 1;
    done(null, out);
  }

  override _flush(done: TransformCallback): void {
    if (this.pendingBytes) this.push(Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
    done();
  }
}

/**
 * An error when a line of `chunk` is longer than `max` bytes (line feed not counted); the first
 * line continues the `pendingBytes` of an unfinished line before the chunk.
 */
export function firstLongLine(chunk: Buffer, pendingBytes: number, max: number): LineTooLongError | null {
  if (!Number.isFinite(max)) return null;
  let lineLength = pendingBytes;
  let start = 0;
  for (;;) {
    const lf = chunk.indexOf(0x0a, start);
    const end = lf < 0 ? chunk.length : lf;
    if (lineLength + end - start > max) return new LineTooLongError(max);
    if (lf < 0) return null;
    lineLength = 0;
    start = lf + 1;
  }
}
