// A rewritten body on disk, handed to the session as a BodySource. The file is unlinked right
// after it is created and lives on only through its open descriptor: nothing is left in the
// spool directory even if the process dies. The descriptor is closed when the body has been
// read once (the session streams it to the MTA), by dispose(), or, as a last resort for a body
// nobody read (monitor mode, a refusal by another rule), when the object is garbage-collected.
import { close, createReadStream, createWriteStream, open, unlink, type WriteStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { BodySource } from '../policy/types.js';

const openFile = promisify(open);
const unlinkFile = promisify(unlink);

interface Descriptor {
  fd: number | null;
}

function closeDescriptor(d: Descriptor): void {
  const fd = d.fd;
  d.fd = null;
  if (fd !== null) close(fd, () => undefined);
}

const abandoned = new FinalizationRegistry<Descriptor>(closeDescriptor);

export class TempBody implements BodySource {
  private readonly descriptor: Descriptor;
  size = 0;

  private constructor(
    fd: number,
    /** Where the file was created (already unlinked), for log lines. */
    readonly path: string,
  ) {
    this.descriptor = { fd };
    abandoned.register(this, this.descriptor, this);
  }

  /** An empty, already unlinked file in `dir`, readable and writable only by us. */
  static async create(dir: string): Promise<TempBody> {
    const path = join(dir, `relayguard-body-${randomBytes(8).toString('hex')}.tmp`);
    const fd = await openFile(path, 'wx+', 0o600);
    const body = new TempBody(fd, path);
    try {
      await unlinkFile(path);
    } catch (err) {
      body.dispose();
      throw err;
    }
    return body;
  }

  get disposed(): boolean {
    return this.descriptor.fd === null;
  }

  /** A stream that writes the body from its start; the caller ends it. */
  writer(): WriteStream {
    return createWriteStream(this.path, { fd: this.fd(), start: 0, autoClose: false });
  }

  /** A stream over the body from its start that keeps the file open (for checks). */
  peek(): Readable {
    return createReadStream(this.path, { fd: this.fd(), start: 0, autoClose: false });
  }

  /** The body for the session: readable once; the file is released when the stream ends or fails. */
  stream(): Readable {
    const s = createReadStream(this.path, { fd: this.fd(), start: 0, autoClose: false });
    const release = () => this.dispose();
    s.once('end', release);
    s.once('error', release);
    s.once('close', release);
    return s;
  }

  dispose(): void {
    abandoned.unregister(this);
    closeDescriptor(this.descriptor);
  }

  private fd(): number {
    if (this.descriptor.fd === null) throw new Error('the rewritten body was already read or released');
    return this.descriptor.fd;
  }
}
