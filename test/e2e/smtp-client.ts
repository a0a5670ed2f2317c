// Whole SMTP sessions for end-to-end tests, on src's SMTP client (src/audit/smtp-client.ts, the
// one the audit uses): it speaks to the real Postfix the way an outside client, a partner or an
// authenticated user would (XCLIENT stands in for the client's address), records every reply in
// the shape the tests read, and never throws on a 4xx/5xx: the tests assert on those replies.
import { SmtpConnection, xtext, type SmtpReply as WireReply } from '../../src/audit/smtp-client.js';

export { encodeData, xtext } from '../../src/audit/smtp-client.js';

/** Wait this long for one reply (a content scan at end of data may take a moment). */
export const DEFAULT_REPLY_TIMEOUT_MS = 60_000;
/** The whole conversation, from connect to QUIT. */
export const DEFAULT_SESSION_TIMEOUT_MS = 120_000;
/** After the transaction, QUIT's reply is a courtesy: don't wait long for it. */

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
  /** Connect from this address of the host (the Sendmail tests' outside clients). */
  localAddress?: string;
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

/** The tests' view of a reply: every line's text (enhanced code included), the lines as received, UTF-8. */
function testReply(command: string, r: WireReply): SmtpReply {
  const lines = r.lines.map((l) => Buffer.from(l, 'latin1').toString('utf8'));
  return {
    command,
    code: r.code,
    enhanced: r.enhanced,
    text: lines.map((l) => l.slice(4)).join('\n'),
    full: lines.join('\n'),
    lines,
  };
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
  const replyMs = opts.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS;
  const sessionMs = opts.timeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
  const session = AbortSignal.timeout(sessionMs);
  const result: SmtpResult = { extraReplies: [], rcptReplies: [], replies: [], ok: false, encrypted: false };
  let c: SmtpConnection;
  try {
    c = await SmtpConnection.open(host, port, { replyMs, dataMs: replyMs }, session, opts.localAddress);
  } catch (err) {
    // Not reachable: the caller's problem. Reached but no greeting: a result like any other.
    if ((err as Error).message.startsWith('connect to ')) throw err;
    result.error = (err as Error).message;
    return result;
  }
  const record = (command: string, r: WireReply): SmtpReply => {
    const t = testReply(command, r);
    result.replies.push(t);
    return t;
  };
  const send = async (command: string): Promise<SmtpReply> => record(command, await c.command(command));
  const ehlo = async (name: string): Promise<void> => {
    result.ehlo = record(`EHLO ${name}`, await c.ehlo(name));
  };

  try {
    result.banner = record('', c.banner);
    if (result.banner.code !== 220) return result;
    const heloName = opts.helo ?? 'client.e2e.test';
    await ehlo(heloName);
    if (opts.tls) {
      const tls = await c.startTls('mx.e2e.test');
      result.startTls = record('STARTTLS', tls.reply);
      if (result.startTls.code !== 220) throw new Error(`STARTTLS refused: ${result.startTls.full}`);
      result.encrypted = true;
      await ehlo(heloName);
    }
    if (opts.xclient) {
      result.xclientReply = await send(xclientCommand(opts.xclient));
      // After XCLIENT the server starts a new session: greet it again.
      await ehlo(opts.xclient.helo ?? heloName);
    }
    for (const command of opts.extraCommands ?? []) result.extraReplies.push(await send(command));

    const params = [...(opts.size !== undefined ? [`SIZE=${opts.size}`] : []), ...(opts.mailParams ?? [])];
    result.mailReply = await send(['MAIL FROM:' + envelopeAddress(opts.from), ...params].join(' '));
    if (!is2xx(result.mailReply)) return result;
    for (const rcpt of opts.to) result.rcptReplies.push(await send(`RCPT TO:${envelopeAddress(rcpt)}`));
    if (!result.rcptReplies.some(is2xx)) {
      await send('RSET').catch(() => undefined);
      return result;
    }
    const data = await c.data(opts.data);
    result.dataStartReply = record('DATA', data.start);
    if (!data.end) return result;
    result.dataReply = record('.', data.end);
    result.queueId = /queued as ([0-9A-Za-z]+)/.exec(result.dataReply.text)?.[1];
    result.ok = result.dataReply.code === 250;
    return result;
  } catch (err) {
    result.error = session.aborted ? `SMTP session over ${sessionMs} ms` : (err as Error).message;
    return result;
  } finally {
    // QUIT's reply is a courtesy (src's client waits at most 2 s for it), then the socket closes.
    await c.quit();
  }
}
