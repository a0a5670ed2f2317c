// How the benchmark plays the MTA: src's milter client and milter-check's conversation
// (src/audit/milter-client.ts, src/audit/milter-check.ts), the same code `relayguard
// milter-check` and the unit tests use; here several messages go over one connection, as Postfix
// sends them, and each result is reduced to what the benchmark reports.
import { checkMessage, type MessageInput } from '../../src/audit/milter-check.js';
import { MilterClient, type Negotiated } from '../../src/audit/milter-client.js';
import type { SocketAddress } from './proc.js';

export interface BenchConnection {
  client: MilterClient;
  negotiated: Negotiated;
  /** Messages sent so far: the first one brings CONNECT and HELO. */
  messages: number;
}

/** Connects and negotiates, offering what Postfix 3.7 offers (protocol 6, every action and bit). */
export async function openMilter(addr: SocketAddress, timeoutMs = 10_000): Promise<BenchConnection> {
  const client = await MilterClient.open(addr, undefined, timeoutMs);
  try {
    return { client, negotiated: await client.negotiate(undefined, undefined, timeoutMs), messages: 0 };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** QUIT and close, as Postfix does at the end of an SMTP session. */
export function closeMilter(c: BenchConnection): void {
  c.client.quit();
  c.client.socket.end();
}

export interface MessageResult {
  /** The milter's outcome: accept (quarantined or not), reject, tempfail, discard. */
  verdict: string;
  /** The step that decided (milter-check's phase names: envfrom, envrcpt, eom...). */
  stage: string;
  ms: number;
  /** Header changes as "Name: value". */
  addedHeaders: string[];
  replacedBodyBytes: number;
  quarantined: boolean;
}

/** One message (CRLF line ends); `timeoutMs` per reply. Never throws for a refusal. */
export async function sendMessage(
  c: BenchConnection,
  envelope: Omit<MessageInput, 'message' | 'queueId'>,
  message: Buffer,
  opts: { timeoutMs?: number; queueId?: string } = {},
): Promise<MessageResult> {
  const timeout = opts.timeoutMs ?? 60_000;
  const t0 = performance.now();
  const r = await checkMessage(
    c.client,
    c.negotiated,
    { ...envelope, message, queueId: opts.queueId ?? 'BENCH0001' },
    {
      timeouts: { command: timeout, content: timeout },
      output: false,
      sameSession: c.messages++ > 0,
    },
  );
  return {
    verdict: r.action === 'quarantine' ? 'accept' : r.action,
    stage: r.phase,
    ms: performance.now() - t0,
    addedHeaders: r.headerChanges.map((h) => `${h.name}: ${h.value}`),
    replacedBodyBytes: r.replacedBodyBytes,
    quarantined: r.action === 'quarantine',
  };
}

/** The message as Postfix hands it to a milter: CRLF line ends. */
export function crlf(text: string | Buffer): Buffer {
  const s = typeof text === 'string' ? text : text.toString('latin1');
  return Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');
}
