// A small SMTP client for end-to-end tests: it speaks to the real Postfix the way an outside
// client, a partner or an authenticated user would (XCLIENT stands in for the client's address),
// records every reply, and never throws on a 4xx/5xx: the tests assert on those replies.
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';

/** Wait this long for one reply (a content scan at end of data may take a moment). */
export const DEFAULT_REPLY_TIMEOUT_MS = 60_000;
/** The whole conversation, from connect to QUIT. */
export const DEFAULT_SESSION_TIMEOUT_MS = 120_000;
/** After the transaction, QUIT's reply is a courtesy: don't wait long for it. */
const QUIT_REPLY_TIMEOUT_MS = 2_000;
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

export interface SmtpReply {
  /** The command this answers ('' for the greeting). */
  command: string;
  code: number;
  /** The enhanced status code of the first line, e.g. "5.7.1", when there is one. */
  enhanced?: string;
  /** The reply text of every line without the code, joined with "\n". */
  text: string;
  /** The reply as received, lines joined with "\n": "550 5.7.1 ...". */
  full: string;
  lines: string[];
}

export interface XclientAttributes {
  addr?: string;
  /** Client host name; defaults to [UNAVAILABLE] when addr is given (else Postfix keeps "localhost"). */
  name?: string;
  /** Fakes an authenticated client: the milter sees {auth_authen}. */
  login?: string;
  helo?: string;
  port?: number;
  proto?: 'SMTP' | 'ESMTP';
  /** Defaults to [UNAVAILABLE] when addr is given. */
  reverseName?: string;
}

export interface SmtpOptions {
  host?: string;
  /** Defaults to the stack's smtpd port (see harness.ts). */
  port?: number;
  /** Envelope sender: an address, "" for the null sender, or a full "<...>". */
  from: string;
  to: string[];
  /** The message; line ends are normalised to CRLF and leading dots are stuffed. */
  data: string | Buffer;
  xclient?: XclientAttributes;
  /** EHLO name (default client.e2e.test). */
  helo?: string;
  /** STARTTLS before XCLIENT (Postfix keeps TLS across XCLIENT); self-signed certificates are fine. */
  tls?: boolean;
  /** Adds SIZE=<n> to MAIL FROM. */
  size?: number;
  mailParams?: string[];
  /** Sent after EHLO (and XCLIENT), before MAIL, e.g. 'VRFY x', 'EXPN x'. */
  extraCommands?: string[];
  replyTimeoutMs?: number;
  timeoutMs?: number;
}

export interface SmtpResult {
  banner?: SmtpReply;
  /** The last EHLO reply. */
  ehlo?: SmtpReply;
  startTls?: SmtpReply;
  xclientReply?: SmtpReply;
  extraReplies: SmtpReply[];
  mailReply?: SmtpReply;
  rcptReplies: SmtpReply[];
  /** The 354 (or refusal) for DATA. */
  dataStartReply?: SmtpReply;
  /** The reply after the final dot. */
  dataReply?: SmtpReply;
  queueId?: string;
  /** Every reply in order. */
  replies: SmtpReply[];
  /** True when the message was queued (250 after the data). */
  ok: boolean;
  /** True when the session was encrypted at MAIL. */
  encrypted: boolean;
  /** Set when the server closed the connection or a reply did not come in time. */
  error?: string;
}

/** RFC 3461 xtext, which XCLIENT uses for its attribute values. */
export function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte < 33 || byte > 126 || byte === 0x2b || byte === 0x3d ? `+${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/** CRLF line ends, dot-stuffing and the terminating "." line, on bytes (8-bit data stays intact). */
export function encodeData(data: string | Buffer): Buffer {
  const input = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const parts: Buffer[] = [];
  const crlf = Buffer.from('\r\n');
  let start = 0;
  while (start < input.length) {
    let end = input.indexOf(LF, start);
    const last = end < 0;
    if (last) end = input.length;
    let lineEnd = end;
    if (lineEnd > start && input[lineEnd - 1] === CR) lineEnd--;
    if (input[start] === DOT) parts.push(Buffer.from('.'));
    parts.push(input.subarray(start, lineEnd), crlf);
    start = end + 1;
  }
  parts.push(Buffer.from('.\r\n'));
  return Buffer.concat(parts);
}

function xclientCommand(x: XclientAttributes): string {
  const attrs: Array<[string, string | number | undefined]> = [
    ['ADDR', x.addr],
    ['NAME', x.name ?? (x.addr !== undefined ? '[UNAVAILABLE]' : undefined)],
    ['REVERSE_NAME', x.reverseName ?? (x.addr !== undefined ? '[UNAVAILABLE]' : undefined)],
    ['PORT', x.port],
    ['PROTO', x.proto],
    ['HELO', x.helo],
    ['LOGIN', x.login],
  ];
  const set = attrs.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${xtext(String(v))}`);
  return `XCLIENT ${set.join(' ')}`;
}

function parseReply(command: string, lines: string[]): SmtpReply {
  const first = lines[0] ?? '';
  const code = Number(first.slice(0, 3));
  const texts = lines.map((l) => l.slice(4));
  const enhanced = /^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/.exec(texts[0] ?? '')?.[1];
  return { command, code, enhanced, text: texts.join('\n'), full: lines.join('\n'), lines };
}

/** Reads CRLF lines from the current socket and assembles multi-line replies. */
class ReplyReader {
  private buffer = '';
  private lines: string[] = [];
  private waiter: (() => void) | null = null;
  private closed: string | null = null;
  private socket: Socket | TLSSocket | null = null;

  private readonly onData = (chunk: Buffer): void => {
    this.buffer += chunk.toString('latin1');
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.lines.push(Buffer.from(line, 'latin1').toString('utf8'));
      this.buffer = this.buffer.slice(nl + 1);
    }
    this.wake();
  };
  private readonly onClose = (): void => {
    this.closed ??= 'connection closed by the server';
    this.wake();
  };
  private readonly onError = (err: Error): void => {
    this.closed ??= `connection error: ${err.message}`;
    this.wake();
  };

  attach(socket: Socket | TLSSocket): void {
    this.detach();
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }

  detach(): void {
    const s = this.socket;
    if (!s) return;
    s.off('data', this.onData);
    s.off('close', this.onClose);
    s.off('error', this.onError);
    this.socket = null;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** The next complete reply; throws a plain Error when the connection ends or time runs out. */
  async next(command: string, timeoutMs: number): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const endAt = this.lines.findIndex((l) => !/^\d{3}-/.test(l));
      if (endAt >= 0) return parseReply(command, this.lines.splice(0, endAt + 1));
      if (this.closed) throw new Error(`${this.closed} (waiting for the reply to "${command || 'connect'}")`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply to "${command || 'connect'}" within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

function is2xx(r: SmtpReply | undefined): boolean {
  return r !== undefined && r.code >= 200 && r.code < 300;
}

function envelopeAddress(addr: string): string {
  return addr.startsWith('<') ? addr : `<${addr}>`;
}

/**
 * One SMTP session: greeting, EHLO, [STARTTLS, EHLO], [XCLIENT, EHLO], extra commands, MAIL,
 * RCPT..., DATA, QUIT. Stops (RSET/QUIT) after a refused MAIL or when no RCPT was accepted.
 * Throws only when the server cannot be reached at all.
 */
export async function smtpSession(host: string, port: number, opts: SmtpOptions): Promise<SmtpResult> {
  const replyTimeout = opts.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS;
  const result: SmtpResult = { extraReplies: [], rcptReplies: [], replies: [], ok: false, encrypted: false };
  const plain = await new Promise<Socket>((resolve, reject) => {
    const s = connectTcp({ host, port }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
  let socket: Socket | TLSSocket = plain;
  const reader = new ReplyReader();
  reader.attach(plain);
  const sessionTimer = setTimeout(() => socket.destroy(new Error(`SMTP session over ${opts.timeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS} ms`)), opts.timeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS);

  const read = async (command: string, timeoutMs = replyTimeout): Promise<SmtpReply> => {
    const r = await reader.next(command, timeoutMs);
    result.replies.push(r);
    return r;
  };
  const send = async (command: string, timeoutMs?: number): Promise<SmtpReply> => {
    socket.write(`${command}\r\n`);
    return read(command, timeoutMs);
  };
  const quit = async (): Promise<void> => {
    try {
      await send('QUIT', QUIT_REPLY_TIMEOUT_MS);
    } catch {
      // the server may already have closed the connection
    }
  };
  const ehlo = async (name: string): Promise<void> => {
    result.ehlo = await send(`EHLO ${name}`);
  };

  try {
    result.banner = await read('');
    if (result.banner.code !== 220) {
      await quit();
      return result;
    }
    const heloName = opts.helo ?? 'client.e2e.test';
    await ehlo(heloName);
    if (opts.tls) {
      result.startTls = await send('STARTTLS');
      if (result.startTls.code !== 220) throw new Error(`STARTTLS refused: ${result.startTls.full}`);
      reader.detach();
      const secure = connectTls({ socket: plain, servername: 'mx.e2e.test', rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', resolve);
        secure.once('error', reject);
      });
      socket = secure;
      reader.attach(secure);
      result.encrypted = true;
      await ehlo(heloName);
    }
    if (opts.xclient) {
      result.xclientReply = await send(xclientCommand(opts.xclient));
      // After XCLIENT the server starts a new session: greet it again.
      await ehlo(opts.xclient.helo ?? heloName);
    }
    for (const c of opts.extraCommands ?? []) result.extraReplies.push(await send(c));

    const params = [...(opts.size !== undefined ? [`SIZE=${opts.size}`] : []), ...(opts.mailParams ?? [])];
    result.mailReply = await send(['MAIL FROM:' + envelopeAddress(opts.from), ...params].join(' '));
    if (!is2xx(result.mailReply)) {
      await quit();
      return result;
    }
    for (const rcpt of opts.to) result.rcptReplies.push(await send(`RCPT TO:${envelopeAddress(rcpt)}`));
    if (!result.rcptReplies.some(is2xx)) {
      await send('RSET').catch(() => undefined);
      await quit();
      return result;
    }
    result.dataStartReply = await send('DATA');
    if (result.dataStartReply.code !== 354) {
      await quit();
      return result;
    }
    socket.write(encodeData(opts.data));
    result.dataReply = await read('.');
    result.queueId = /queued as ([0-9A-Za-z]+)/.exec(result.dataReply.text)?.[1];
    result.ok = result.dataReply.code === 250;
    await quit();
    return result;
  } catch (err) {
    result.error = (err as Error).message;
    return result;
  } finally {
    clearTimeout(sessionTimer);
    reader.detach();
    socket.on('error', () => undefined);
    socket.end();
    socket.destroy();
  }
}
