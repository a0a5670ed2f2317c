// Streaming de-framer: turns arbitrary TCP reads into whole milter frames. Frames may be split
// across reads or packed several into one read. The length is checked before any allocation.
import { DEFAULT_MAX_FRAME_LENGTH, FRAME_HEADER_BYTES, MIN_FRAME_LENGTH } from './constants.js';

export interface Frame {
  command: number;
  payload: Buffer;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLength: number = DEFAULT_MAX_FRAME_LENGTH) {}

  /** Keep bytes for `next()`; nothing is decoded yet, so what waits costs its raw bytes only. */
  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** The next complete frame, or null when more bytes are needed. Throws FrameError on a bad
   *  length (checked as soon as the 4 length bytes are in, before the frame is). */
  next(): Frame | null {
    if (this.pendingBytes < FRAME_HEADER_BYTES) return null;
    const length = this.peekLength();
    if (length < MIN_FRAME_LENGTH) throw new FrameError(`bad frame length ${length}`);
    if (length > this.maxLength) throw new FrameError(`frame length ${length} exceeds limit ${this.maxLength}`);
    if (this.pendingBytes < FRAME_HEADER_BYTES + length) return null;
    const whole = this.take(FRAME_HEADER_BYTES + length);
    return { command: whole[FRAME_HEADER_BYTES]!, payload: whole.subarray(FRAME_HEADER_BYTES + 1) };
  }

  /** Feed bytes; returns every complete frame. Throws FrameError on a bad length: the caller
   *  must close the connection, the decoder's state is then undefined. */
  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
    const frames: Frame[] = [];
    while (this.pendingBytes >= FRAME_HEADER_BYTES) {
      const length = this.peekLength();
      if (length < MIN_FRAME_LENGTH) throw new FrameError(`bad frame length ${length}`);
      if (length > this.maxLength) throw new FrameError(`frame length ${length} exceeds limit ${this.maxLength}`);
      if (this.pendingBytes < FRAME_HEADER_BYTES + length) break;
      const whole = this.take(FRAME_HEADER_BYTES + length);
      frames.push({ command: whole[FRAME_HEADER_BYTES]!, payload: whole.subarray(FRAME_HEADER_BYTES + 1) });
    }
    return frames;
  }

  /** Bytes received but not yet part of a complete frame. */
  get buffered(): number {
    return this.pendingBytes;
  }

  private peekLength(): number {
    const first = this.pending[0]!;
    if (first.length >= FRAME_HEADER_BYTES) return first.readUInt32BE(0);
    const head = Buffer.concat(this.pending, Math.min(this.pendingBytes, FRAME_HEADER_BYTES));
    return head.readUInt32BE(0);
  }

  private take(n: number): Buffer {
    const first = this.pending[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.pending.shift();
      else this.pending[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let copied = 0;
      while (copied < n) {
        const head = this.pending[0]!;
        const want = n - copied;
        if (head.length <= want) {
          head.copy(out, copied);
          copied += head.length;
          this.pending.shift();
        } else {
          head.copy(out, copied, 0, want);
          this.pending[0] = head.subarray(want);
          copied += want;
        }
      }
    }
    this.pendingBytes -= n;
    return out;
  }
}

/** Encode one frame: length (command + payload), command byte, payload. */
export function encodeFrame(command: number, payload?: Buffer): Buffer {
  const body = payload ?? Buffer.alloc(0);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 1 + body.length);
  out.writeUInt32BE(body.length + 1, 0);
  out[FRAME_HEADER_BYTES] = command;
  body.copy(out, FRAME_HEADER_BYTES + 1);
  return out;
}
