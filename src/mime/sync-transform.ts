// Runs a byte Transform stream (mailsplit's decoders and encoders: libqp, libbase64, PassThrough)
// without the stream machinery: its own _transform and _flush, one call per chunk, in order, with
// what it pushes collected. The same code on the same chunks gives the same bytes; what it saves
// is a few event-loop turns and stream objects per part. Only for transforms that push before
// they call back (all of the above do); one that pushes later would lose its output, so
// anything pushed after the run counts as an error.
import type { Transform } from 'node:stream';

const LATE_PUSH = 'a transform pushed after it was run synchronously';

interface TransformInternals {
  _transform(chunk: Buffer, encoding: BufferEncoding | 'buffer', done: (err?: Error | null, data?: unknown) => void): void;
  _flush?(done: (err?: Error | null, data?: unknown) => void): void;
  push(chunk: unknown, encoding?: BufferEncoding): boolean;
}

/** Everything `transform` outputs for `chunks` followed by the end of input, as one buffer. */
export function runTransform(transform: Transform, chunks: readonly Buffer[]): Buffer {
  const t = transform as unknown as TransformInternals;
  const out: Buffer[] = [];
  let failure: Error | null = null;
  let running = true;
  const take = (data: unknown, encoding?: BufferEncoding) => {
    if (!running) throw new Error(LATE_PUSH);
    if (data === null || data === undefined) return;
    out.push(Buffer.isBuffer(data) ? data : Buffer.from(String(data), encoding ?? 'utf8'));
  };
  t.push = (chunk, encoding) => (take(chunk, encoding), true);
  const done = (err?: Error | null, data?: unknown) => {
    if (err) failure ??= err;
    else if (running) take(data);
  };
  for (const chunk of chunks) {
    t._transform(chunk, 'buffer', done);
    if (failure) throw failure;
  }
  t._flush?.(done);
  running = false;
  if (failure) throw failure;
  return Buffer.concat(out);
}
