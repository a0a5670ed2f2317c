// A small milter client (the MTA side) for tests: negotiates, sends commands, collects replies.
// It lets tests drive relayguard without Postfix, including body replacements over 64 KiB that
// miltertest 2.11 cannot read.
import { connect, type Socket } from 'node:net';
import { Cmd, Reply } from '../../src/protocol/constants.js';
import { encodeFrame, FrameDecoder, type Frame } from '../../src/protocol/frame.js';

export interface ReplyFrame {
  code: string; // reply letter
  payload: Buffer;
}

const NUL = Buffer.from([0]);
const cstrs = (...s: string[]) => Buffer.concat(s.flatMap((x) => [Buffer.from(x, 'latin1'), NUL]));

export class TestMilterClient {
  private decoder = new FrameDecoder(64 * 1024 * 1024);
  private frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  private closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c) => {
      for (const f of this.decoder.push(c)) this.frames.push(f);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** `localAddress`: the source address (another 127.x address plays another peer). */
  static async open(port: number, host = '127.0.0.1', localAddress?: string): Promise<TestMilterClient> {
    const socket = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new TestMilterClient(socket);
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(cmd: number, payload?: Buffer): void {
    this.socket.write(encodeFrame(cmd, payload));
  }

  /** Next reply frame, skipping PROGRESS. */
  async next(timeoutMs = 5000): Promise<ReplyFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f) {
        if (f.command === Reply.PROGRESS) continue;
        return { code: String.fromCharCode(f.command), payload: f.payload };
      }
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout waiting for a reply');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => (clearTimeout(t), r()));
      });
    }
  }

  /** Replies until (and including) the first verdict letter in `final`. */
  async until(final = 'cartdy'): Promise<ReplyFrame[]> {
    const out: ReplyFrame[] = [];
    for (;;) {
      const r = await this.next();
      out.push(r);
      if (final.includes(r.code)) return out;
    }
  }

  async negotiate(actions = 0x1ff, protocol = 0x1fffff): Promise<{ version: number; actions: number; protocol: number; rest: Buffer }> {
    const p = Buffer.alloc(12);
    p.writeUInt32BE(6, 0);
    p.writeUInt32BE(actions, 4);
    p.writeUInt32BE(protocol, 8);
    this.send(Cmd.OPTNEG, p);
    const r = await this.next();
    if (r.code !== 'O') throw new Error(`expected O, got ${r.code}`);
    return { version: r.payload.readUInt32BE(0), actions: r.payload.readUInt32BE(4), protocol: r.payload.readUInt32BE(8), rest: r.payload.subarray(12) };
  }

  macro(stage: string, ...pairs: string[]): void {
    this.send(Cmd.MACRO, Buffer.concat([Buffer.from(stage, 'latin1'), pairs.length ? cstrs(...pairs) : Buffer.alloc(0)]));
  }

  connectCmd(host: string, ip: string, port = 40000): void {
    const p = Buffer.alloc(2);
    p.writeUInt16BE(port);
    this.send(Cmd.CONNECT, Buffer.concat([cstrs(host), Buffer.from(ip.includes(':') ? '6' : '4'), p, cstrs(ip)]));
  }

  helo(name: string) {
    this.send(Cmd.HELO, cstrs(name));
  }
  mail(...args: string[]) {
    this.send(Cmd.MAIL, cstrs(...args));
  }
  rcpt(...args: string[]) {
    this.send(Cmd.RCPT, cstrs(...args));
  }
  data() {
    this.send(Cmd.DATA);
  }
  header(name: string, value: string) {
    this.send(Cmd.HEADER, cstrs(name, value));
  }
  eoh() {
    this.send(Cmd.EOH);
  }
  body(chunk: Buffer | string) {
    this.send(Cmd.BODY, Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, 'latin1'));
  }
  eom() {
    this.send(Cmd.BODYEOB);
  }
  abort() {
    this.send(Cmd.ABORT);
  }
  quit() {
    this.send(Cmd.QUIT);
  }

  close(): void {
    this.socket.destroy();
  }

  /** Resolves true once the other side has closed the connection, false after `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, deadline - Date.now());
        this.waiters.push(() => (clearTimeout(t), r()));
      });
    }
    return this.closed;
  }
}
