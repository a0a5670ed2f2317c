// Keeps a message body in memory up to a threshold, then spills it to a temporary file, so a
// 50 MB message does not sit in memory. Readers get a fresh stream each time.
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

export class BodyStore {
  private chunks: Buffer[] = [];
  private memBytes = 0;
  private file: FileHandle | null = null;
  private dir: string | null = null;
  private path: string | null = null;
  private total = 0;
  private writing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly memoryLimit: number,
    /** Default: os.tmpdir(), looked up only when a body spills (it reads the environment). */
    private readonly spoolDir?: string,
  ) {}

  get size(): number {
    return this.total;
  }

  get spilled(): boolean {
    return this.path !== null;
  }

  async append(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    this.total += chunk.length;
    if (!this.path && this.memBytes + chunk.length <= this.memoryLimit) {
      // The decoder hands out views into shared read buffers; copy what we keep.
      this.chunks.push(Buffer.from(chunk));
      this.memBytes += chunk.length;
      return;
    }
    if (!this.path) await this.spill();
    const file = this.file!;
    this.writing = this.writing.then(() => file.write(chunk));
    await this.writing;
  }

  private async spill(): Promise<void> {
    this.dir = await mkdtemp(join(this.spoolDir ?? tmpdir(), 'relayguard-body-'));
    this.path = join(this.dir, 'body');
    this.file = await open(this.path, 'w+', 0o600);
    for (const c of this.chunks) await this.file.write(c);
    this.chunks = [];
    this.memBytes = 0;
  }

  /** The chunks appended so far while they are all in memory (a copy of the list), else null. */
  inMemory(): Buffer[] | null {
    return this.path ? null : [...this.chunks];
  }

  /** A stream over everything appended so far. */
  stream(): Readable {
    if (!this.path) return Readable.from(this.chunks.length ? [...this.chunks] : [], { objectMode: false });
    return createReadStream(this.path, { highWaterMark: 64 * 1024 });
  }

  /** Wait for pending writes (call before reading a spilled body). */
  async flush(): Promise<void> {
    await this.writing;
  }

  async dispose(): Promise<void> {
    this.chunks = [];
    this.memBytes = 0;
    this.total = 0;
    const file = this.file;
    const dir = this.dir;
    this.file = null;
    this.path = null;
    this.dir = null;
    if (file) await file.close().catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
