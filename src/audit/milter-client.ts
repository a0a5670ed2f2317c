// The MTA side of the milter protocol, small: negotiates, sends commands, collects replies.
// The one milter client of the project: `relayguard milter-check` (milter-check.ts) plays an MTA
// with it against any milter, the audit's milter probe negotiates with it, the unit tests drive
// relayguard with it without Postfix (including body replacements over 64 KiB that miltertest
// 2.11 cannot read), and the benchmark's load client sends its messages through milter-check.ts.
import { connect, type Socket } from 'node:net';
import {
  ALL_ACTIONS,
  ALL_PROTOCOL_V6,
  Cmd,
  MILTER_VERSION,
  OPTNEG_PAYLOAD_BYTES,
  Reply,
} from '../protocol/constants.js';
import { encodeFrame, FrameDecoder, type Frame } from '../protocol/frame.js';
import type { ListenAddress } from '../session/server.js';

/** Largest reply frame accepted: a replaced body comes in chunks of at most 64 KiB, 1 MiB with MDS_1M. */
const MAX_REPLY_FRAME = 64 * 1024 * 1024;

export interface ReplyFrame {
  code: string; // reply letter
  payload: Buffer;
}

/** The milter's answer to OPTNEG: its version, the actions it may take, the protocol bits it set. */
export interface Negotiated {
  version: number;
  actions: number;
  protocol: number;
  rest: Buffer;
}

const NUL = Buffer.from([0]);
const cstrs = (...s: string[]) => Buffer.concat(s.flatMap((x) => [Buffer.from(x, 'latin1'), NUL]));

export class MilterClient {
  private decoder = new FrameDecoder(MAX_REPLY_FRAME);
  private frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  private closed = false;
  private failure: string | undefined;

  private constructor(readonly socket: Socket) {
    // One small frame per command, each waiting for its reply: Nagle would only add delay.
    socket.setNoDelay(true);
    socket.on('data', (c) => {
      try {
        for (const f of this.decoder.push(c)) this.frames.push(f);
      } catch (err) {
        this.failure = `not a milter reply: ${(err as Error).message}`;
        socket.destroy();
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /**
   * A TCP port on `host` (tests), or an address as `serve --listen` takes it. `localAddress`: the
   * source address of a TCP connection (another 127.x address plays another peer).
   */
  static async open(
    where: number | ListenAddress,
    host = '127.0.0.1',
    timeoutMs = 10_000,
    localAddress?: string,
  ): Promise<MilterClient> {
    const address: ListenAddress = typeof where === 'number' ? { kind: 'inet', host, port: where } : where;
    const socket =
      address.kind === 'unix'
        ? connect({ path: address.path })
        : connect({ host: address.host, port: address.port, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection within ${timeoutMs / 1000}s`));
      }, timeoutMs);
      socket.once('connect', () => (clearTimeout(timer), resolve()));
      socket.once('error', (err) => (clearTimeout(timer), reject(err)));
    });
    return new MilterClient(socket);
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get isClosed(): boolean {
    return this.closed;
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

  send(cmd: number, payload?: Buffer): void {
    this.socket.write(encodeFrame(cmd, payload));
  }

  /** Next reply frame, skipping PROGRESS. */
  async next(timeoutMs = 5000): Promise<ReplyFrame> {
    let deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f) {
        if (f.command === Reply.PROGRESS) {
          // "Still working": the MTA restarts its timeout.
          deadline = Date.now() + timeoutMs;
          continue;
        }
        return { code: String.fromCharCode(f.command), payload: f.payload };
      }
      if (this.closed) throw new Error(this.failure ?? 'connection closed by the milter');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${Math.round(timeoutMs / 1000)}s`);
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

  async negotiate(actions = ALL_ACTIONS, protocol = ALL_PROTOCOL_V6, timeoutMs?: number): Promise<Negotiated> {
    const p = Buffer.alloc(OPTNEG_PAYLOAD_BYTES);
    p.writeUInt32BE(MILTER_VERSION, 0);
    p.writeUInt32BE(actions, 4);
    p.writeUInt32BE(protocol, 8);
    this.send(Cmd.OPTNEG, p);
    const r = await this.next(timeoutMs);
    if (r.code !== 'O' || r.payload.length < OPTNEG_PAYLOAD_BYTES)
      throw new Error(`expected an option negotiation reply (O), got ${JSON.stringify(r.code)}`);
    return {
      version: r.payload.readUInt32BE(0),
      actions: r.payload.readUInt32BE(4),
      protocol: r.payload.readUInt32BE(8),
      rest: r.payload.subarray(12),
    };
  }

  macro(stage: string, ...pairs: string[]): void {
    this.send(
      Cmd.MACRO,
      Buffer.concat([Buffer.from(stage, 'latin1'), pairs.length ? cstrs(...pairs) : Buffer.alloc(0)]),
    );
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
}
