// The MTA side of the milter protocol, as Postfix drives it: negotiate once per connection,
// then per message CONNECT .. EOM with Postfix's default macros, honouring the milter's
// "don't send" and "no reply" bits, collecting the end-of-message modifications. Used by the
// load client (500 connections), the 50 MB memory test and the profiling driver.
import { connect, type Socket } from 'node:net';
import { Cmd, MAX_BODY_CHUNK, Proto, Reply } from '../../src/protocol/constants.js';
import { encodeFrame, FrameDecoder, type Frame } from '../../src/protocol/frame.js';
import type { SocketAddress } from './proc.js';

const NUL = Buffer.from([0]);
const cstrs = (...s: string[]) => Buffer.concat(s.flatMap((x) => [Buffer.from(x, 'latin1'), NUL]));
/** What Postfix 3.7 offers: protocol version 6, every action, every protocol bit. */
const POSTFIX_ACTIONS = 0x1ff;
const POSTFIX_PROTOCOL = 0x1fffff;
/** Replies can carry whole replaced bodies (up to 64 KiB per frame). */
const MAX_REPLY_FRAME = 1024 * 1024;

export interface Envelope {
  clientIp: string;
  clientName: string;
  helo: string;
  from: string;
  rcpts: string[];
  /** Simulated {auth_authen}. */
  authUser?: string;
}

export interface MessageResult {
  /** The final answer: 'accept' (continue/accept), 'reject', 'tempfail', 'discard', 'replycode:<text>'. */
  verdict: string;
  /** The stage that decided when it was not end of message. */
  stage: string;
  ms: number;
  addedHeaders: string[];
  replacedBodyBytes: number;
  quarantined: boolean;
}

export class MtaClient {
  private readonly decoder = new FrameDecoder(MAX_REPLY_FRAME);
  private frames: Frame[] = [];
  private wake: (() => void) | null = null;
  private closed = false;
  private error: Error | null = null;
  protocol = 0;
  actions = 0;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => {
      try {
        for (const f of this.decoder.push(c)) this.frames.push(f);
      } catch (err) {
        this.error = err as Error;
        socket.destroy();
      }
      this.notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    socket.on('error', (err) => {
      this.error ??= err;
    });
  }

  static open(addr: SocketAddress, timeoutMs = 10_000): Promise<MtaClient> {
    return new Promise((resolve, reject) => {
      const s = addr.kind === 'unix' ? connect(addr.path) : connect(addr.port, addr.host);
      const timer = setTimeout(() => (s.destroy(), reject(new Error(`connect timeout after ${timeoutMs} ms`))), timeoutMs);
      s.once('connect', () => (clearTimeout(timer), resolve(new MtaClient(s))));
      s.once('error', (err) => (clearTimeout(timer), reject(err)));
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private send(cmd: number, payload?: Buffer): void {
    this.socket.write(encodeFrame(cmd, payload));
  }

  /** The next reply frame (PROGRESS frames extend the deadline and are skipped). */
  private async next(timeoutMs: number): Promise<Frame> {
    let deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f) {
        if (f.command === Reply.PROGRESS) {
          deadline = Date.now() + timeoutMs;
          continue;
        }
        return f;
      }
      if (this.closed || this.error) throw new Error(`milter closed the connection${this.error ? `: ${this.error.message}` : ''}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => (clearTimeout(t), r());
      });
    }
  }

  async negotiate(timeoutMs = 10_000): Promise<void> {
    const p = Buffer.alloc(12);
    p.writeUInt32BE(6, 0);
    p.writeUInt32BE(POSTFIX_ACTIONS, 4);
    p.writeUInt32BE(POSTFIX_PROTOCOL, 8);
    this.send(Cmd.OPTNEG, p);
    const r = await this.next(timeoutMs);
    if (r.command !== Reply.OPTNEG) throw new Error(`expected OPTNEG, got ${String.fromCharCode(r.command)}`);
    this.actions = r.payload.readUInt32BE(4);
    this.protocol = r.payload.readUInt32BE(8);
  }

  private has(bit: number): boolean {
    return (this.protocol & bit) !== 0;
  }

  /** Sends a command unless the milter asked not to get it; waits for its reply unless "no reply". */
  private async step(skipBit: number, noReplyBit: number, cmd: number, payload: Buffer | undefined, timeoutMs: number): Promise<Frame | null> {
    if (skipBit && this.has(skipBit)) return null;
    this.send(cmd, payload);
    if (noReplyBit && this.has(noReplyBit)) return null;
    return this.next(timeoutMs);
  }

  /**
   * One message as Postfix sends it. `message` is the whole message (headers, empty line, body)
   * with CRLF line ends. Resolves with the final verdict; never throws for a refusal.
   */
  async sendMessage(env: Envelope, message: Buffer, opts: { timeoutMs?: number; queueId?: string } = {}): Promise<MessageResult> {
    const timeout = opts.timeoutMs ?? 60_000;
    const qid = opts.queueId ?? 'BENCH0001';
    const t0 = performance.now();
    const done = (verdict: string, stage: string, extra: Partial<MessageResult> = {}): MessageResult => ({
      verdict,
      stage,
      ms: performance.now() - t0,
      addedHeaders: [],
      replacedBodyBytes: 0,
      quarantined: false,
      ...extra,
    });
    const verdictOf = (f: Frame | null): string | null => {
      if (!f) return null;
      switch (f.command) {
        case Reply.CONTINUE:
          return null;
        case Reply.ACCEPT:
          return 'accept';
        case Reply.REJECT:
          return 'reject';
        case Reply.TEMPFAIL:
          return 'tempfail';
        case Reply.DISCARD:
          return 'discard';
        case Reply.REPLYCODE:
          return `replycode:${f.payload.toString('latin1').replace(/\0$/, '')}`;
        default:
          return `unexpected:${String.fromCharCode(f.command)}`;
      }
    };

    const port = Buffer.alloc(2);
    port.writeUInt16BE(40000);
    this.send(Cmd.MACRO, Buffer.concat([Buffer.from('C'), cstrs('j', 'mx.bench.test', '{daemon_name}', 'mx.bench.test', '{daemon_addr}', '127.0.0.1', 'v', 'Postfix 3.7.11', '_', `${env.clientName} [${env.clientIp}]`)]));
    let v = verdictOf(await this.step(Proto.NOCONNECT, Proto.NR_CONN, Cmd.CONNECT, Buffer.concat([cstrs(env.clientName), Buffer.from('4'), port, cstrs(env.clientIp)]), timeout));
    if (v) return done(v, 'connect');
    this.send(Cmd.MACRO, Buffer.from('H'));
    v = verdictOf(await this.step(Proto.NOHELO, Proto.NR_HELO, Cmd.HELO, cstrs(env.helo), timeout));
    if (v) return done(v, 'helo');
    const mailMacros = ['{mail_addr}', env.from, '{mail_host}', '[127.0.0.1]:2526', '{mail_mailer}', 'smtp'];
    if (env.authUser) mailMacros.push('{auth_type}', 'PLAIN', '{auth_authen}', env.authUser);
    this.send(Cmd.MACRO, Buffer.concat([Buffer.from('M'), cstrs(...mailMacros)]));
    v = verdictOf(await this.step(Proto.NOMAIL, Proto.NR_MAIL, Cmd.MAIL, cstrs(`<${env.from}>`), timeout));
    if (v) return this.abortWith(done(v, 'mail'));
    let accepted = 0;
    for (const rcpt of env.rcpts) {
      this.send(Cmd.MACRO, Buffer.concat([Buffer.from('R'), cstrs('{rcpt_addr}', rcpt, '{rcpt_host}', '[127.0.0.1]:2526', '{rcpt_mailer}', 'smtp')]));
      const r = verdictOf(await this.step(Proto.NORCPT, Proto.NR_RCPT, Cmd.RCPT, cstrs(`<${rcpt}>`), timeout));
      if (!r) accepted++;
    }
    if (accepted === 0) return this.abortWith(done('reject', 'rcpt'));
    this.send(Cmd.MACRO, Buffer.concat([Buffer.from('T'), cstrs('i', qid)]));
    v = verdictOf(await this.step(Proto.NODATA, Proto.NR_DATA, Cmd.DATA, undefined, timeout));
    if (v) return this.abortWith(done(v, 'data'));

    const split = message.indexOf('\r\n\r\n');
    const headerBlock = split < 0 ? message.toString('latin1') : message.subarray(0, split).toString('latin1');
    const body = split < 0 ? Buffer.alloc(0) : message.subarray(split + 4);
    const leadspc = this.has(Proto.HDR_LEADSPC);
    for (const field of headerBlock.split(/\r\n(?![ \t])/)) {
      const colon = field.indexOf(':');
      if (colon <= 0) continue;
      const name = field.slice(0, colon);
      let value = field.slice(colon + 1);
      if (!leadspc) value = value.replace(/^ /, '');
      this.send(Cmd.MACRO, Buffer.concat([Buffer.from('L'), cstrs('i', qid)]));
      v = verdictOf(await this.step(Proto.NOHDRS, Proto.NR_HDR, Cmd.HEADER, cstrs(name, value.replace(/\r\n/g, '\n')), timeout));
      if (v) return this.abortWith(done(v, 'header'));
    }
    this.send(Cmd.MACRO, Buffer.concat([Buffer.from('N'), cstrs('i', qid)]));
    v = verdictOf(await this.step(Proto.NOEOH, Proto.NR_EOH, Cmd.EOH, undefined, timeout));
    if (v) return this.abortWith(done(v, 'eoh'));
    for (let off = 0; off < body.length; off += MAX_BODY_CHUNK) {
      const f = await this.step(Proto.NOBODY, Proto.NR_BODY, Cmd.BODY, body.subarray(off, off + MAX_BODY_CHUNK), timeout);
      if (f && f.command === Reply.SKIP) break;
      v = verdictOf(f);
      if (v) return this.abortWith(done(v, 'body'));
    }
    this.send(Cmd.MACRO, Buffer.concat([Buffer.from('E'), cstrs('i', qid)]));
    this.send(Cmd.BODYEOB);
    const addedHeaders: string[] = [];
    let replacedBodyBytes = 0;
    let quarantined = false;
    for (;;) {
      const f = await this.next(timeout);
      switch (f.command) {
        case Reply.ADDHEADER:
        case Reply.INSHEADER:
        case Reply.CHGHEADER:
          addedHeaders.push(f.payload.toString('latin1').split('\0').filter(Boolean).join(': '));
          continue;
        case Reply.REPLBODY:
          replacedBodyBytes += f.payload.length;
          continue;
        case Reply.QUARANTINE:
          quarantined = true;
          continue;
        case Reply.ADDRCPT:
        case Reply.DELRCPT:
        case Reply.ADDRCPT_PAR:
        case Reply.CHGFROM:
          continue;
      }
      const final = verdictOf(f) ?? 'accept';
      return done(final, 'eom', { addedHeaders, replacedBodyBytes, quarantined });
    }
  }

  private abortWith(r: MessageResult): MessageResult {
    this.send(Cmd.ABORT);
    return r;
  }

  /** QUIT and close, as Postfix does at the end of an SMTP session. */
  close(): void {
    if (!this.closed && !this.socket.destroyed) {
      this.send(Cmd.QUIT);
      this.socket.end();
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The message as Postfix hands it to a milter: CRLF line ends. */
export function crlf(text: string | Buffer): Buffer {
  const s = typeof text === 'string' ? text : text.toString('latin1');
  return Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');
}
