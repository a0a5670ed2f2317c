// The rewritten body of a message, as the disclaimer writes it: in memory while it is small (the
// common case: a 5 KB letter should not cost a file open, write, read and unlink), spilled to an
// unlinked temporary file (temp-body.ts) as soon as it grows past the memory limit, so that a
// big message still keeps memory flat. Either way it is read once by the session, or released.
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import type { WriteStream } from 'node:fs';
import type { BodySource } from '../policy/types.js';
import { TempBody } from './temp-body.js';

const RELEASED = 'the rewritten body was already read or released';

export class RewrittenBody implements BodySource {
  size = 0;
  private chunks: Buffer[] | null = [];
  private memoryBytes = 0;
  private file: TempBody | null = null;
  private fileOut: WriteStream | null = null;

  constructor(
    private readonly spoolDir: string,
    /** Most bytes kept in memory (server.body_memory_bytes); above it the body goes to a file. */
    private readonly memoryLimit: number,
  ) {}

  /** Where the body lives, for tests and log lines. */
  get onDisk(): boolean {
    return this.file !== null;
  }

  get disposed(): boolean {
    return this.file ? this.file.disposed : this.chunks === null;
  }

  /** A stream that takes the body from its start; the caller ends it. Counts `size`. */
  writer(): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        this.append(chunk).then(() => done(), done);
      },
      final: (done) => {
        const out = this.fileOut;
        if (!out) return done();
        out.end();
        once(out, 'finish').then(() => done(), done);
      },
    });
  }

  /**
   * Appends one chunk without a stream (the disclaimer's fast rewrite): synchronous while the
   * body stays in memory, a promise when it goes to (or already is in) the file.
   */
  add(chunk: Buffer): Promise<void> | void {
    if (!this.fileOut && this.chunks && this.memoryBytes + chunk.length <= this.memoryLimit) {
      this.size += chunk.length;
      this.chunks.push(chunk);
      this.memoryBytes += chunk.length;
      return;
    }
    return this.append(chunk);
  }

  /** The end of the body after add(): what the writer's end does. */
  async close(): Promise<void> {
    const out = this.fileOut;
    if (!out) return;
    out.end();
    await once(out, 'finish');
  }

  /** The body for the session: readable once; released when read. */
  stream(): Readable {
    if (this.file) return this.file.stream();
    const chunks = this.chunks;
    if (!chunks) throw new Error(RELEASED);
    this.chunks = null;
    return Readable.from(chunks, { objectMode: false });
  }

  dispose(): void {
    this.chunks = null;
    this.file?.dispose();
  }

  private async append(chunk: Buffer): Promise<void> {
    this.size += chunk.length;
    if (this.fileOut) {
      if (!this.fileOut.write(chunk)) await once(this.fileOut, 'drain');
      return;
    }
    if (!this.chunks) throw new Error(RELEASED);
    this.chunks.push(chunk);
    this.memoryBytes += chunk.length;
    if (this.memoryBytes <= this.memoryLimit) return;
    // Past the limit: everything so far, and all that follows, goes to the file.
    this.file = await TempBody.create(this.spoolDir);
    const out = this.file.writer();
    this.fileOut = out;
    const pending = this.chunks;
    this.chunks = [];
    this.memoryBytes = 0;
    let ok = true;
    for (const c of pending) ok = out.write(c);
    if (!ok) await once(out, 'drain');
  }
}
