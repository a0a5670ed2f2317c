// The project's SMTP client: one command at a time (no pipelining, so every reply belongs to the
// command before it), multi-line replies, EHLO keywords, STARTTLS, XCLIENT and DATA with dot
// stuffing. A 4xx/5xx is a reply like any other: the caller judges it. Only the connection
// failing or staying silent beyond the timeout rejects. The audit's probes use it, and so do the
// end-to-end tests (test/e2e/smtp-client.ts runs whole sessions with it).
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';

/** An SMTP reply line is at most 512 octets (RFC 5321); a server sending far more is broken. */
const MAX_REPLY_BYTES = 64 * 1024;

export interface SmtpReply {
  code: number;
  /** Enhanced status code of the first line (RFC 3463), when present. */
  enhanced?: string;
  /** Text of all lines without codes, joined with " / ". */
  text: string;
  lines: string[];
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** RFC 3461 xtext, which XCLIENT uses for its attribute values. */
export function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out +=
      byte < 33 || byte > 126 || byte === 0x2b || byte === 0x3d
        ? `+${byte.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}

/** A message as DATA sends it: CRLF line ends, dot-stuffing and the final "." line, on bytes (8-bit data stays intact). */
export function encodeData(data: string | Buffer): Buffer {
  const input = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const parts: Buffer[] = [];
  const crlf = Buffer.from('\r\n');
  let start = 0;
  while (start < input.length) {
    let end = input.indexOf(LF, start);
    if (end < 0) end = input.length;
    let lineEnd = end;
    if (lineEnd > start && input[lineEnd - 1] === CR) lineEnd--;
    if (input[start] === DOT) parts.push(Buffer.from('.'));
    parts.push(input.subarray(start, lineEnd), crlf);
    start = end + 1;
  }
  parts.push(Buffer.from('.\r\n'));
  return Buffer.concat(parts);
}

export function formatReply(r: Pick<SmtpReply, 'code' | 'enhanced' | 'text'>): string {
  return `${r.code}${r.enhanced ? ` ${r.enhanced}` : ''} ${r.text}`.trim();
}

export interface TlsResult {
  protocol: string | null;
  cipher: string | null;
  authorized: boolean;
  authorizationError?: string;
  subject?: string;
}

export interface SmtpTimeouts {
  /** Waiting for one ordinary reply. */
  replyMs: number;
  /** Waiting for the reply after the final dot (the gateway scans the message first). */
  dataMs: number;
}

export class SmtpConnection {
  private socket: Socket | TLSSocket;
  private buffer = '';
  private waiting: ((err?: Error) => void) | null = null;
  private closedError: Error | null = null;
  banner!: SmtpReply;
  /** EHLO keywords of the last EHLO (upper case) with their parameters. */
  extensions = new Map<string, string>();

  private constructor(
    socket: Socket,
    readonly timeouts: SmtpTimeouts,
    private readonly signal?: AbortSignal,
  ) {
    this.socket = socket;
    this.attach(socket);
  }

  /** Connects and reads the greeting. */
  /** `localAddress`: connect from this address of the host (the audit's --bind). */
  static async open(
    host: string,
    port: number,
    timeouts: SmtpTimeouts,
    signal?: AbortSignal,
    localAddress?: string,
  ): Promise<SmtpConnection> {
    const socket = connectTcp({ host, port, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`connect to ${host}:${port}: timeout`)), timeouts.replyMs);
      const onAbort = () => fail(new Error('aborted'));
      const fail = (err: Error) => {
        cleanup();
        socket.destroy();
        reject(err);
      };
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', fail);
      };
      socket.once('connect', () => {
        cleanup();
        resolve();
      });
      socket.once('error', (err) => fail(new Error(`connect to ${host}:${port}: ${err.message}`)));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    const c = new SmtpConnection(socket, timeouts, signal);
    try {
      c.banner = await c.read(timeouts.replyMs);
    } catch (err) {
      c.close();
      throw err;
    }
    return c;
  }

  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  get tls(): boolean {
    return 'encrypted' in this.socket;
  }

  private attach(s: Socket): void {
    s.setEncoding('latin1');
    s.on('data', this.onData);
    s.on('error', this.onClose);
    s.on('close', this.onClose);
  }

  private detach(s: Socket): void {
    s.off('data', this.onData);
    s.off('error', this.onClose);
    s.off('close', this.onClose);
  }

  private onData = (chunk: string): void => {
    this.buffer += chunk;
    if (this.buffer.length > MAX_REPLY_BYTES) this.onClose(new Error('reply too long'));
    this.waiting?.();
  };

  private onClose = (err?: Error | boolean): void => {
    this.closedError ??=
      err instanceof Error
        ? new Error(`connection lost: ${err.message}`)
        : new Error('connection closed by the server');
    this.waiting?.(this.closedError);
  };

  /** One complete reply from the buffer, or null. */
  private takeReply(): SmtpReply | null {
    const lines: string[] = [];
    let pos = 0;
    for (;;) {
      const end = this.buffer.indexOf('\n', pos);
      if (end < 0) return null;
      const line = this.buffer.slice(pos, end).replace(/\r$/, '');
      pos = end + 1;
      lines.push(line);
      if (!/^\d{3}-/.test(line)) break;
    }
    this.buffer = this.buffer.slice(pos);
    const code = Number(lines[0]!.slice(0, 3));
    const texts = lines.map((l) => l.slice(4));
    const enhanced = /^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/.exec(texts[0] ?? '')?.[1];
    const text = texts
      .map((t) => (enhanced && t.startsWith(enhanced) ? t.slice(enhanced.length).trim() : t.trim()))
      .join(' / ');
    return { code: Number.isFinite(code) ? code : 0, ...(enhanced ? { enhanced } : {}), text, lines };
  }

  private async read(timeoutMs: number): Promise<SmtpReply> {
    for (;;) {
      const r = this.takeReply();
      if (r) return r;
      if (this.closedError) throw this.closedError;
      if (this.signal?.aborted) throw new Error('aborted');
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`no reply within ${Math.round(timeoutMs / 1000)}s`)), timeoutMs);
        const onAbort = () => done(new Error('aborted'));
        const done = (err?: Error) => {
          clearTimeout(timer);
          this.signal?.removeEventListener('abort', onAbort);
          this.waiting = null;
          if (err) reject(err);
          else resolve();
        };
        this.waiting = done;
        this.signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  /** Sends one command line and reads its reply. */
  async command(line: string, timeoutMs = this.timeouts.replyMs): Promise<SmtpReply> {
    if (this.closedError) throw this.closedError;
    this.socket.write(`${line}\r\n`, 'latin1');
    return this.read(timeoutMs);
  }

  async ehlo(name: string): Promise<SmtpReply> {
    const r = await this.command(`EHLO ${name}`);
    this.extensions.clear();
    if (r.code === 250) {
      for (const l of r.lines.slice(1)) {
        const kw = l.slice(4).trim();
        const sp = kw.indexOf(' ');
        this.extensions.set((sp < 0 ? kw : kw.slice(0, sp)).toUpperCase(), sp < 0 ? '' : kw.slice(sp + 1));
      }
    }
    return r;
  }

  /** STARTTLS and the handshake (any certificate: the audit reports, it does not trust). */
  async startTls(servername?: string): Promise<{ reply: SmtpReply; tls?: TlsResult }> {
    const reply = await this.command('STARTTLS');
    if (reply.code !== 220) return { reply };
    const raw = this.socket;
    this.detach(raw);
    const secure = connectTls({
      socket: raw,
      rejectUnauthorized: false,
      ...(servername && !/^[\d.:]+$/.test(servername) ? { servername } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        secure.destroy();
        reject(new Error('TLS handshake: timeout'));
      }, this.timeouts.replyMs);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      secure.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(new Error(`TLS handshake: ${err.message}`));
      });
    });
    this.socket = secure;
    this.attach(secure);
    const cert = secure.getPeerCertificate();
    const tls: TlsResult = {
      protocol: secure.getProtocol(),
      cipher: secure.getCipher()?.name ?? null,
      authorized: secure.authorized,
      ...(secure.authorizationError ? { authorizationError: String(secure.authorizationError) } : {}),
      ...(cert?.subject?.CN ? { subject: String(cert.subject.CN) } : {}),
    };
    return { reply, tls };
  }

  /** DATA, the message (CRLF, dot-stuffed; a string goes as UTF-8), the final dot: both replies. */
  async data(message: Buffer | string): Promise<{ start: SmtpReply; end?: SmtpReply }> {
    const start = await this.command('DATA');
    if (start.code !== 354) return { start };
    this.socket.write(encodeData(message));
    return { start, end: await this.read(this.timeouts.dataMs) };
  }

  /** QUIT politely, then close whatever happens. */
  async quit(): Promise<void> {
    try {
      if (!this.closedError) await this.command('QUIT', Math.min(this.timeouts.replyMs, 2000));
    } catch {
      /* the session is over either way */
    } finally {
      this.close();
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The queue id from a 250 after DATA: Postfix "queued as ID", Sendmail "ID Message accepted". */
export function queueIdOf(r: SmtpReply): string | undefined {
  return /queued as ([0-9A-Za-z]+)/.exec(r.text)?.[1] ?? /^([0-9A-Za-z]+) Message accepted/.exec(r.text)?.[1];
}
