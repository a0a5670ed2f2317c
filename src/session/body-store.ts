// Keeps a message body in memory up to a threshold, then spills it to a temporary file, so a
// 50 MB message does not sit in memory. Readers get a fresh stream each time.
import { createReadStream, lstat as lstatCallback, readdir as readdirCallback, rm as rmCallback } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { loadOnFirstUse } from '../primitives/first-use.js';

// node:fs/promises (with the readline and file-watching modules it loads: about 1.1 MiB, bench/
// RESULTS.md "Issue 22, fifth pass") is loaded at the first spill, not by every daemon: most
// bodies never reach the disk. The rest goes through node:fs, which every process has.
const fsPromises = loadOnFirstUse<typeof import('node:fs/promises')>(import.meta.url, 'node:fs/promises');
const readdir = promisify(readdirCallback);
const lstat = promisify(lstatCallback);
const rm = promisify(rmCallback);

/** A spill directory is `relayguard-body-<pid of the relayguard that made it>-<random>`. */
const SPILL_PREFIX = 'relayguard-body-';
const SPILL_NAME = new RegExp(`^${SPILL_PREFIX}(\\d+)-[A-Za-z0-9]{6}$`);
/**
 * The name builds before 19fce35 gave them, without the pid: whose directory it is cannot be
 * told, so only its age says it is stale.
 */
const PIDLESS_SPILL_NAME = new RegExp(`^${SPILL_PREFIX}[A-Za-z0-9]{6}$`);
/**
 * A pid-less spill directory untouched for this long is left over: a body lives as long as its
 * message is in the milter, and Postfix gives a milter minutes (milter_content_timeout), not a day.
 */
export const PIDLESS_SPILL_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * Removes the spill directories in `spoolDir` (default: the system's temporary directory) that a
 * relayguard left when it died without cleaning up (SIGKILL, out of memory, power loss): those
 * whose process is gone, and those named without a pid that are older than
 * PIDLESS_SPILL_MAX_AGE_MS. Only directories this user owns, never through a symbolic link; a
 * directory of a live process (another instance sharing the spool) stays. Returns the names removed.
 */
export async function removeStaleSpills(spoolDir?: string, now = Date.now()): Promise<string[]> {
  const dir = spoolDir ?? tmpdir();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  const uid = process.getuid?.();
  for (const name of names) {
    const pidless = PIDLESS_SPILL_NAME.test(name);
    if (!pidless) {
      const pid = Number(SPILL_NAME.exec(name)?.[1] ?? NaN);
      if (!Number.isSafeInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    }
    const path = join(dir, name);
    const st = await lstat(path).catch(() => null);
    if (!st?.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
    if (pidless && now - st.mtimeMs < PIDLESS_SPILL_MAX_AGE_MS) continue;
    await rm(path, { recursive: true, force: true }).catch(() => undefined);
    removed.push(name);
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The decoder hands out views into the socket's read buffers and its own frame buffers. A view
 * kept as is holds its whole buffer alive, so it is kept only when it is at least half of that
 * buffer (a BODY frame is most of its read): what the store holds is then at most twice what
 * `server.body_memory_bytes` counts. A small view of a large read (a one-byte BODY frame packed
 * behind a large header) is copied instead, so it cannot pin 64 KiB per byte counted.
 */
export function kept(chunk: Buffer): Buffer {
  return chunk.byteLength * 2 >= chunk.buffer.byteLength ? chunk : Buffer.from(chunk);
}

export class BodyStore {
  private chunks: Buffer[] = [];
  private memBytes = 0;
  private file: FileHandle | null = null;
  private dir: string | null = null;
  private path: string | null = null;
  /** Decided at the first chunk over the threshold; the file itself is made on the write chain. */
  private onDisk = false;
  private total = 0;
  private writing: Promise<unknown> = Promise.resolve();
  /** The one disposal: a second dispose() waits for the first to have removed the file. */
  private disposal: Promise<void> | null = null;

  constructor(
    private readonly memoryLimit: number,
    /** Default: os.tmpdir(), looked up only when a body spills (it reads the environment). */
    private readonly spoolDir?: string,
  ) {}

  /** The message is over (refused, aborted, connection closed): keep nothing more. */
  private get disposed(): boolean {
    return this.disposal !== null;
  }

  get size(): number {
    return this.total;
  }

  get spilled(): boolean {
    return this.onDisk;
  }

  async append(chunk: Buffer): Promise<void> {
    if (chunk.length === 0 || this.disposed) return;
    this.total += chunk.length;
    if (!this.onDisk && this.memBytes + chunk.length <= this.memoryLimit) {
      this.chunks.push(kept(chunk));
      this.memBytes += chunk.length;
      return;
    }
    // Spill and writes go through one chain, so dispose() can wait for whatever is under way.
    this.writing = this.writing.then(async () => {
      if (this.disposed) return;
      if (!this.file) await this.spill();
      await this.file?.write(chunk);
    });
    this.onDisk = true;
    await this.writing;
  }

  private async spill(): Promise<void> {
    const dir = await fsPromises().mkdtemp(join(this.spoolDir ?? tmpdir(), `${SPILL_PREFIX}${process.pid}-`));
    this.dir = dir;
    // A dispose() that came while the directory was made waits on this chain and removes it.
    if (this.disposed) return;
    const path = join(dir, 'body');
    this.file = await fsPromises().open(path, 'w+', 0o600);
    this.path = path;
    for (const c of this.chunks) await this.file.write(c);
    this.chunks = [];
    this.memBytes = 0;
  }

  /** The chunks appended so far while they are all in memory (a copy of the list), else null. */
  inMemory(): Buffer[] | null {
    return this.onDisk ? null : [...this.chunks];
  }

  /** A stream over everything appended so far (for a spilled body, call flush() first). */
  stream(): Readable {
    if (!this.onDisk) return Readable.from(this.chunks.length ? [...this.chunks] : [], { objectMode: false });
    if (!this.path) return Readable.from([], { objectMode: false });
    return createReadStream(this.path, { highWaterMark: 64 * 1024 });
  }

  /** Wait for pending writes (call before reading a spilled body). */
  async flush(): Promise<void> {
    await this.writing;
  }

  dispose(): Promise<void> {
    this.disposal ??= this.release();
    return this.disposal;
  }

  private async release(): Promise<void> {
    this.onDisk = false;
    this.chunks = [];
    this.memBytes = 0;
    this.total = 0;
    // A spill or write under way finishes first (its errors are the disposed message's).
    await this.writing.catch(() => undefined);
    const file = this.file;
    const dir = this.dir;
    this.file = null;
    this.path = null;
    this.dir = null;
    if (file) await file.close().catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
