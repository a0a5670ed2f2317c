// `relayguard milter-check`: plays the MTA (as Postfix does it) against any milter with one
// message and a given envelope, and reports what the milter does with it: every step's reply,
// the modifications at end of message, and the outcome the SMTP client would see. The benchmark's
// load client sends its messages with `checkMessage` too, several per connection.
import { Readable } from 'node:stream';
import { isIP } from 'node:net';
import { Cmd, MAX_BODY_CHUNK, Proto } from '../protocol/constants.js';
import { splitMessage, applyModifications } from '../session/offline-message.js';
import type { ListenAddress } from '../session/server.js';
import type { Modification } from '../policy/types.js';
import { MilterClient, type Negotiated, type ReplyFrame } from './milter-client.js';

/** Postfix's defaults: milter_connect_timeout, milter_command_timeout, milter_content_timeout. */
const MILTER_CONNECT_TIMEOUT_MS = 30_000;
const MILTER_COMMAND_TIMEOUT_MS = 30_000;
const MILTER_CONTENT_TIMEOUT_MS = 300_000;
/** What Postfix answers the SMTP client for a bare reject or tempfail from a milter. */
const MTA_REJECT_REPLY = '550 5.7.1 Command rejected';
const MTA_TEMPFAIL_REPLY = '451 4.7.1 Service unavailable - try again later';

/** One message and its envelope, as the MTA would hand them to a milter. */
export interface MessageInput {
  clientIp: string;
  /** The client's host name as the MTA knows it; default "[IP]" (no reverse name). */
  clientName?: string;
  helo?: string;
  from?: string;
  rcpts: string[];
  auth?: string;
  tls?: string;
  message: Buffer;
  /** The queue ID the MTA gives the message (macro i); default MILTERCHECK. */
  queueId?: string;
}

export interface MilterCheckInput extends MessageInput {
  milter: ListenAddress;
  timeouts?: MilterTimeouts;
}

export interface MilterTimeouts {
  connect: number;
  command: number;
  content: number;
}

export interface CheckOptions {
  timeouts?: Omit<MilterTimeouts, 'connect'>;
  /**
   * Build the message as the MTA would deliver it (`output`); default true. The benchmark says
   * false: it only counts what came back, and a replaced body is then not kept in memory.
   */
  output?: boolean;
  /**
   * A further message over a connection that carried one already: Postfix opens one milter
   * connection per SMTP session and sends CONNECT and HELO once, so this one starts at MAIL.
   */
  sameSession?: boolean;
}

export type MilterAction = 'accept' | 'reject' | 'tempfail' | 'discard' | 'quarantine';

export interface MilterStep {
  phase: string;
  /** What was sent ("<a@b.test>", "Subject", "3 chunks, 1234 bytes"). */
  sent: string;
  /** The reply letter's meaning, or "no reply" when the milter asked for none, or "not sent". */
  reply: string;
  smtp?: string;
}

export interface MilterCheckResult {
  action: MilterAction;
  phase: string;
  smtp: string | null;
  negotiated: { version: number; actions: number; protocol: number };
  recipients: Array<{ address: string; action: string; smtp: string | null }>;
  steps: MilterStep[];
  modifications: string[];
  /** The header changes as the milter sent them, value bytes untouched (also in `modifications`, described). */
  headerChanges: Array<{ name: string; value: string }>;
  /** Bytes of the replaced body (0: the body was not replaced). */
  replacedBodyBytes: number;
  quarantine?: string;
  /** The message as the MTA would deliver it (when accepted or quarantined). */
  output?: Buffer;
}

const nul = (s: string) => Buffer.from(`${s}\0`, 'latin1');
/** The NUL-terminated strings of a reply payload. */
const strings = (b: Buffer): string[] => b.toString('utf8').split('\0').slice(0, -1);

/** A reply's meaning for the message: continue, or a final outcome with the SMTP text. */
function verdictOf(r: ReplyFrame): {
  action: 'continue' | 'skip' | 'accept' | 'reject' | 'tempfail' | 'discard';
  smtp?: string;
} {
  switch (r.code) {
    case 'c':
      return { action: 'continue' };
    case 's':
      return { action: 'skip' };
    case 'a':
      return { action: 'accept' };
    case 'd':
      return { action: 'discard' };
    case 'r':
      return { action: 'reject', smtp: MTA_REJECT_REPLY };
    case 't':
      return { action: 'tempfail', smtp: MTA_TEMPFAIL_REPLY };
    case 'y': {
      const text = strings(r.payload)[0] ?? '';
      return { action: text.startsWith('4') ? 'tempfail' : 'reject', smtp: text.replace(/\r\n/g, ' | ') };
    }
    default:
      throw new Error(
        `unexpected reply ${JSON.stringify(r.code)} (0x${r.code.charCodeAt(0).toString(16)}) outside end of message`,
      );
  }
}

export async function runMilterCheck(input: MilterCheckInput): Promise<MilterCheckResult> {
  const t = input.timeouts ?? {
    connect: MILTER_CONNECT_TIMEOUT_MS,
    command: MILTER_COMMAND_TIMEOUT_MS,
    content: MILTER_CONTENT_TIMEOUT_MS,
  };
  const client = await MilterClient.open(input.milter, undefined, t.connect);
  try {
    const neg = await client.negotiate(undefined, undefined, t.command);
    return await checkMessage(client, neg, input, { timeouts: t });
  } finally {
    client.quit();
    client.socket.end();
  }
}

/**
 * One message over a connection that has negotiated (`neg`), as Postfix sends it: the milter's
 * "don't send" and "no reply" bits are honoured. Ended early at MAIL or later, the transaction is
 * aborted, so the same connection can carry the next message.
 */
export async function checkMessage(
  client: MilterClient,
  neg: Negotiated,
  input: MessageInput,
  opts: CheckOptions = {},
): Promise<MilterCheckResult> {
  const t = opts.timeouts ?? { command: MILTER_COMMAND_TIMEOUT_MS, content: MILTER_CONTENT_TIMEOUT_MS };
  const keepOutput = opts.output ?? true;
  const queueId = input.queueId ?? 'MILTERCHECK';
  const proto = neg.protocol;
  const steps: MilterStep[] = [];
  const recipients: MilterCheckResult['recipients'] = [];
  const result = (
    action: MilterAction,
    phase: string,
    smtp: string | null,
    extra: Partial<MilterCheckResult> = {},
  ): MilterCheckResult => ({
    action,
    phase,
    smtp,
    negotiated: { version: neg.version, actions: neg.actions, protocol: neg.protocol },
    recipients,
    steps,
    modifications: [],
    headerChanges: [],
    replacedBodyBytes: 0,
    ...extra,
  });

  /** Sends one command unless the milter asked not to get it; waits for its reply unless told none comes. */
  const step = async (
    phase: string,
    sent: string,
    noSend: number,
    noReply: number,
    send: () => void,
    timeoutMs = t.command,
  ) => {
    if (proto & noSend) {
      steps.push({ phase, sent, reply: 'not sent (the milter asked not to get it)' });
      return { action: 'continue' as const };
    }
    send();
    if (proto & noReply) {
      steps.push({ phase, sent, reply: 'no reply (the milter asked to send none)' });
      return { action: 'continue' as const };
    }
    const v = verdictOf(await client.next(timeoutMs));
    steps.push({ phase, sent, reply: v.action, ...(v.smtp ? { smtp: v.smtp } : {}) });
    return v;
  };

  const family = isIP(input.clientIp) === 6 ? '6' : '4';
  const hostname = input.clientName ?? `[${input.clientIp}]`;
  const port = Buffer.alloc(2);
  port.writeUInt16BE(25);
  let v: { action: string; smtp?: string };
  // CONNECT and HELO come once per connection; a further message of the session starts at MAIL.
  if (!opts.sameSession) {
    client.macro(
      'C',
      'j',
      'milter-check.invalid',
      '{daemon_name}',
      'relayguard-milter-check',
      'v',
      'relayguard milter-check',
      '{client_addr}',
      input.clientIp,
      '_',
      `${hostname} [${input.clientIp}]`,
    );
    v = await step('connect', `${hostname} ${input.clientIp}`, Proto.NOCONNECT, Proto.NR_CONN, () =>
      client.send(Cmd.CONNECT, Buffer.concat([nul(hostname), Buffer.from(family), port, nul(input.clientIp)])),
    );
    if (v.action !== 'continue') return ended(v, 'connect');

    const tls = input.tls ? ['{tls_version}', input.tls, '{cipher}', 'MILTER-CHECK', '{cipher_bits}', '256'] : [];
    client.macro('H', ...tls);
    const helo = input.helo ?? 'milter-check.invalid';
    v = await step('helo', helo, Proto.NOHELO, Proto.NR_HELO, () => client.helo(helo));
    if (v.action !== 'continue') return ended(v, 'helo');
  }

  const auth = input.auth ? ['{auth_authen}', input.auth, '{auth_type}', 'PLAIN'] : [];
  const from = `<${input.from ?? ''}>`;
  client.macro('M', 'i', queueId, '{mail_addr}', input.from ?? '', ...auth);
  v = await step('envfrom', from, Proto.NOMAIL, Proto.NR_MAIL, () => client.mail(from, `SIZE=${input.message.length}`));
  if (v.action !== 'continue') return ended(v, 'envfrom');

  let accepted = 0;
  let lastRefusal: { action: 'reject' | 'tempfail'; smtp?: string } | undefined;
  for (const rcpt of input.rcpts) {
    client.macro('R', '{rcpt_addr}', rcpt);
    const r = await step('envrcpt', `<${rcpt}>`, Proto.NORCPT, Proto.NR_RCPT, () => client.rcpt(`<${rcpt}>`));
    if (r.action === 'accept') return ended(r, 'envrcpt');
    if (r.action === 'discard') return ended(r, 'envrcpt');
    const refused = r.action === 'reject' || r.action === 'tempfail';
    recipients.push({ address: rcpt, action: refused ? r.action : 'accept', smtp: refused ? (r.smtp ?? null) : null });
    if (refused) lastRefusal = { action: r.action as 'reject' | 'tempfail', ...(r.smtp ? { smtp: r.smtp } : {}) };
    else accepted++;
  }
  if (accepted === 0) return ended(lastRefusal ?? { action: 'reject', smtp: MTA_REJECT_REPLY }, 'envrcpt');

  client.macro('T', 'i', queueId);
  v = await step('data', 'DATA', Proto.NODATA, Proto.NR_DATA, () => client.data());
  if (v.action !== 'continue') return ended(v, 'data');

  const { headers, body } = splitMessage(input.message);
  const leadingSpace = (proto & Proto.HDR_LEADSPC) !== 0;
  for (const h of headers) {
    // Postfix drops the one space after the colon unless the milter asked for it (HDR_LEADSPC).
    const value = leadingSpace ? h.value : h.value.replace(/^ /, '');
    v = await step('header', h.name, Proto.NOHDRS, Proto.NR_HDR, () => client.header(h.name, value));
    if (v.action !== 'continue') return ended(v, 'header');
  }
  client.macro('N', 'i', queueId);
  v = await step('eoh', 'end of headers', Proto.NOEOH, Proto.NR_EOH, () => client.eoh());
  if (v.action !== 'continue') return ended(v, 'eoh');

  const chunks = Math.ceil(body.length / MAX_BODY_CHUNK);
  for (let off = 0, n = 1; off < body.length; off += MAX_BODY_CHUNK, n++) {
    const chunk = body.subarray(off, off + MAX_BODY_CHUNK);
    v = await step(
      'body',
      `chunk ${n}/${chunks}, ${chunk.length} bytes`,
      Proto.NOBODY,
      Proto.NR_BODY,
      () => client.body(chunk),
      t.content,
    );
    if (v.action === 'skip') break;
    if (v.action !== 'continue') return ended(v, 'body');
    if (proto & Proto.NOBODY) break;
  }

  client.macro('E', 'i', queueId, '{msg_id}', '<milter-check@milter-check.invalid>');
  client.eom();
  const mods: Modification[] = [];
  const described: string[] = [];
  const newBody: Buffer[] = [];
  let replacedBodyBytes = 0;
  const headerChanges: Array<{ name: string; value: string }> = [];
  const rcptChanges: string[] = [];
  let quarantine: string | undefined;
  for (;;) {
    const r = await client.next(t.content);
    const s = strings(r.payload);
    const index = () => r.payload.readUInt32BE(0);
    const afterIndex = () => strings(r.payload.subarray(4));
    const value = (raw: string) => (leadingSpace ? raw.replace(/^ /, '') : raw);
    switch (r.code) {
      case 'h':
        mods.push({ type: 'addHeader', name: s[0]!, value: value(s[1] ?? '') });
        headerChanges.push({ name: s[0]!, value: s[1] ?? '' });
        described.push(`add header ${s[0]}: ${s[1]}`);
        continue;
      case 'i': {
        const [name, val] = afterIndex();
        mods.push({ type: 'insertHeader', index: index(), name: name!, value: value(val ?? '') });
        headerChanges.push({ name: name!, value: val ?? '' });
        described.push(`insert header at ${index()}: ${name}: ${val}`);
        continue;
      }
      case 'm': {
        const [name, val] = afterIndex();
        mods.push({ type: 'changeHeader', index: index(), name: name!, value: value(val ?? '') });
        headerChanges.push({ name: name!, value: val ?? '' });
        described.push(val ? `change header ${name}[${index()}]: ${val}` : `delete header ${name}[${index()}]`);
        continue;
      }
      case 'b':
        replacedBodyBytes += r.payload.length;
        if (keepOutput) newBody.push(r.payload);
        continue;
      case '+':
      case '2':
        rcptChanges.push(`add recipient ${s[0]}${s[1] ? ` ${s[1]}` : ''}`);
        continue;
      case '-':
        rcptChanges.push(`delete recipient ${s[0]}`);
        continue;
      case 'e':
        rcptChanges.push(`change sender to ${s[0]}${s[1] ? ` ${s[1]}` : ''}`);
        continue;
      case 'q':
        quarantine = s[0] ?? '';
        continue;
    }
    const final = verdictOf(r);
    steps.push({
      phase: 'eom',
      sent: 'end of message',
      reply: final.action,
      ...(final.smtp ? { smtp: final.smtp } : {}),
    });
    if (replacedBodyBytes > 0) {
      const bodyBytes = Buffer.concat(newBody);
      mods.push({ type: 'replaceBody', body: { size: bodyBytes.length, stream: () => Readable.from([bodyBytes]) } });
      described.push(`replace body (${replacedBodyBytes} bytes)`);
    }
    described.push(...rcptChanges);
    const changes = { modifications: described, headerChanges, replacedBodyBytes };
    if (final.action !== 'continue' && final.action !== 'accept')
      return result(final.action as MilterAction, 'eom', final.smtp ?? null, changes);
    const output = keepOutput ? { output: await applyModifications(headers, body, mods) } : {};
    return result(quarantine !== undefined ? 'quarantine' : 'accept', 'eom', null, {
      ...changes,
      ...output,
      ...(quarantine !== undefined ? { quarantine } : {}),
    });
  }

  function ended(v: { action: string; smtp?: string }, phase: string): MilterCheckResult {
    // The MTA ends a transaction it will not finish with ABORT; the connection stays usable.
    if (phase !== 'connect' && phase !== 'helo') client.abort();
    // "accept" before the end: the MTA delivers the message as it is, without the milter.
    if (v.action === 'accept') return result('accept', phase, null, { output: input.message });
    return result(v.action as MilterAction, phase, v.smtp ?? null);
  }
}
