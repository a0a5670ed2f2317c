// Our own clamd client (INSTREAM, PING, VERSION). Written here rather than taken from npm because
// in a milter every path must end in a verdict before the MTA's timeout: the client reads while
// it writes (clamd answers early and closes when a stream is too big), never reports an error
// or an unknown reply as "clean", and gives up when its AbortSignal fires or clamd goes quiet.
//
// clamd protocol (z-commands): "zINSTREAM\0", then chunks of <4-byte big-endian length><bytes>,
// then a zero length; the reply is one NUL-terminated line: "stream: OK", "stream: NAME FOUND"
// or "... ERROR". In a session (clamd-sessions.ts) the same reply comes as "<id>: stream: OK".
import { isIP, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { CircuitBreaker, type BreakerState, type Permit } from './circuit-breaker.js';
import { ClamdSessionPool, oneShotLease, openSocket, type Lease, type SessionPoolOptions } from './clamd-sessions.js';

/** clamd refuses chunks above its StreamMaxLength; 64 KiB keeps us far below any sane setting. */
export const MAX_INSTREAM_CHUNK = 64 * 1024;
/** A reply longer than this is not clamd talking. */
const MAX_REPLY_BYTES = 64 * 1024;
const LENGTH_PREFIX_BYTES = 4;
const END_OF_STREAM = Buffer.alloc(LENGTH_PREFIX_BYTES);

export type ClamdAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** "tcp:HOST:PORT", "HOST:PORT", "[::1]:3310", "unix:/path" or "/path". */
export function parseClamdAddress(text: string): ClamdAddress {
  const s = text.trim();
  if (s.startsWith('unix:')) {
    const path = s.slice(5);
    if (!path) throw new Error(`clamd address "${text}": empty socket path`);
    return { kind: 'unix', path };
  }
  if (s.startsWith('/')) return { kind: 'unix', path: s };
  const rest = s.startsWith('tcp:') ? s.slice(4) : s;
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(rest) ?? /^([^:\s]+):(\d+)$/.exec(rest);
  if (!m) throw new Error(`clamd address "${text}": use tcp:HOST:PORT, HOST:PORT or unix:/path`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`clamd address "${text}": bad port`);
  const host = m[1]!;
  if (rest.startsWith('[') && isIP(host) !== 6) throw new Error(`clamd address "${text}": bad IPv6 address`);
  return { kind: 'tcp', host, port };
}

function formatClamdAddress(a: ClamdAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return isIP(a.host) === 6 ? `tcp:[${a.host}]:${a.port}` : `tcp:${a.host}:${a.port}`;
}

/** Why a scan did not produce a verdict. Every one of these means "not scanned", never "clean". */
export type ScanErrorReason =
  | 'connect' // could not connect (refused, no socket file, DNS)
  | 'io' // the connection broke or closed before a reply
  | 'timeout' // clamd stayed silent longer than the timeout, or the caller's deadline passed
  | 'aborted' // the caller gave up (message aborted, shutdown)
  | 'size-limit' // clamd's StreamMaxLength was reached
  | 'too-large' // above our own max_size: not sent at all
  | 'clamd-error' // any other "... ERROR" reply
  | 'empty-reply'
  | 'unknown-reply'
  | 'circuit-open'; // the breaker knows clamd is down: not even tried

export type ScanResult =
  | { status: 'clean' }
  | { status: 'infected'; signature: string }
  | { status: 'error'; reason: ScanErrorReason; message?: string; raw?: string };

const REPLY_OK = /^stream: OK$/;
const REPLY_FOUND = /^stream: (.+) FOUND$/;
const REPLY_SIZE_LIMIT = /INSTREAM size limit exceeded\.? ERROR$/;
const REPLY_ERROR = /ERROR$/;

/** Exactly one of the known replies, or an error: never a guess. */
export function parseScanReply(reply: string): ScanResult {
  const line = reply.replace(/\0+$/, '').trim();
  if (line === '') return { status: 'error', reason: 'empty-reply', raw: reply };
  if (REPLY_OK.test(line)) return { status: 'clean' };
  const found = REPLY_FOUND.exec(line);
  if (found) return { status: 'infected', signature: found[1]! };
  if (REPLY_SIZE_LIMIT.test(line))
    return { status: 'error', reason: 'size-limit', message: 'clamd StreamMaxLength reached', raw: line };
  if (REPLY_ERROR.test(line)) return { status: 'error', reason: 'clamd-error', message: line, raw: line };
  return { status: 'error', reason: 'unknown-reply', raw: line.slice(0, 200) };
}

export interface ClamdVersion {
  /** The whole reply, e.g. "ClamAV 1.4.6/27000/Sat Nov 28 09:24:02 2025". */
  raw: string;
  /** Engine version, e.g. "1.4.6". */
  engine?: string;
  /** Signature database version (daily.cvd), absent with only custom databases. */
  database?: number;
  /** When that database was built. */
  databaseDate?: Date;
}

export function parseVersion(reply: string): ClamdVersion {
  const raw = reply.replace(/\0+$/, '').trim();
  const out: ClamdVersion = { raw };
  const m = /^ClamAV ([^/\s]+)(?:\/(\d+)(?:\/(.+))?)?$/.exec(raw);
  if (!m) return out;
  out.engine = m[1]!;
  if (m[2]) out.database = Number(m[2]);
  if (m[3]) {
    // clamd prints ctime() in its local time; Date.parse reads that form as local time too.
    const t = Date.parse(m[3].trim());
    if (Number.isFinite(t)) out.databaseDate = new Date(t);
  }
  return out;
}

export interface ClamdHealth {
  ok: boolean;
  /** Round trip of PING, ms. */
  latencyMs?: number;
  version?: ClamdVersion;
  /** Age of the signature database, seconds, when clamd tells its date. */
  databaseAgeSeconds?: number;
  error?: string;
}

export interface ClamdClientOptions {
  address: string | ClamdAddress;
  /** How long clamd may stay silent: to connect, to accept data, to answer after the last byte. */
  timeoutMs: number;
  /** Messages above this many bytes are not sent at all: error 'too-large'. */
  maxSize?: number;
  /** Keep connections open between scans (IDSESSION); absent: one connection per scan. */
  sessions?: SessionPoolOptions;
}

/** A scan that is fed piece by piece while the message arrives. */
export interface ScanSession {
  /** Send bytes. Waits while clamd is not taking them (back-pressure). Never throws; after a
   *  failure or an early reply it does nothing, and end() reports what happened. */
  write(chunk: Buffer, signal?: AbortSignal): Promise<void>;
  /** Finish the stream and wait for the verdict. */
  end(signal?: AbortSignal): Promise<ScanResult>;
  /** Give up: close the connection now. end() then gives an 'aborted' error (unless already settled). */
  abort(reason?: ScanErrorReason): void;
  /** A result is already known (failure or early reply); further writes are pointless. */
  readonly settled: boolean;
  readonly bytes: number;
  /** Resolves with the result however the session ends (end(), abort, failure, silence). */
  readonly done: Promise<ScanResult>;
}

function errorResult(reason: ScanErrorReason, message?: string, raw?: string): ScanResult {
  return { status: 'error', reason, ...(message ? { message } : {}), ...(raw !== undefined ? { raw } : {}) };
}

function isTimeout(signal: AbortSignal): boolean {
  return (signal.reason as { name?: string } | undefined)?.name === 'TimeoutError';
}

export class ClamdClient {
  readonly address: ClamdAddress;
  readonly timeoutMs: number;
  readonly maxSize: number | undefined;
  /** The open sessions, when scans share connections. */
  readonly pool: ClamdSessionPool | null;

  constructor(opts: ClamdClientOptions) {
    this.address = typeof opts.address === 'string' ? parseClamdAddress(opts.address) : opts.address;
    this.timeoutMs = opts.timeoutMs;
    this.maxSize = opts.maxSize;
    this.pool = opts.sessions && opts.sessions.maxIdle > 0 ? new ClamdSessionPool(this.address, opts.sessions) : null;
  }

  get name(): string {
    return formatClamdAddress(this.address);
  }

  /** Start a scan on a pooled or a new connection; `signal` bounds the whole scan. */
  instream(signal?: AbortSignal): ScanSession {
    return new InstreamSession(
      this.pool ? this.pool.acquire() : oneShotLease(this.address),
      this.timeoutMs,
      this.maxSize,
      signal,
    );
  }

  /** Close the idle sessions (policy unloaded). */
  close(): void {
    this.pool?.close();
  }

  /** Scan a whole stream (e.g. a message read back from the spool). */
  async scanStream(input: Readable, signal?: AbortSignal): Promise<ScanResult> {
    const session = this.instream(signal);
    try {
      for await (const chunk of input) {
        await session.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string), signal);
        if (session.settled) break;
      }
    } catch (err) {
      session.abort('io');
      return errorResult('io', `reading the message: ${(err as Error).message}`);
    } finally {
      if (!input.destroyed) input.destroy();
    }
    return session.end(signal);
  }

  /** true when clamd answers PONG. */
  async ping(signal?: AbortSignal): Promise<boolean> {
    return (await this.command('zPING\0', signal)) === 'PONG';
  }

  async version(signal?: AbortSignal): Promise<ClamdVersion> {
    return parseVersion(await this.command('zVERSION\0', signal));
  }

  /** PING and VERSION, for metrics and the audit. Never throws. */
  async health(signal?: AbortSignal, now: () => number = Date.now): Promise<ClamdHealth> {
    const started = performance.now();
    try {
      const pong = await this.ping(signal);
      const latencyMs = Math.round((performance.now() - started) * 10) / 10;
      if (!pong) return { ok: false, latencyMs, error: 'no PONG' };
      const version = await this.version(signal);
      const out: ClamdHealth = { ok: true, latencyMs, version };
      if (version.databaseDate)
        out.databaseAgeSeconds = Math.max(0, Math.round((now() - version.databaseDate.getTime()) / 1000));
      return out;
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  /** One short command, one NUL-terminated reply. Rejects on any failure. */
  command(cmd: string, signal?: AbortSignal): Promise<string> {
    const deadline = AbortSignal.timeout(this.timeoutMs);
    const all = signal ? AbortSignal.any([signal, deadline]) : deadline;
    return new Promise<string>((resolve, reject) => {
      if (all.aborted) return reject(new Error(`clamd ${this.name}: ${isTimeout(all) ? 'timeout' : 'aborted'}`));
      const socket = openSocket(this.address);
      const parts: Buffer[] = [];
      let size = 0;
      const finish = (err: Error | null, text?: string) => {
        all.removeEventListener('abort', onAbort);
        socket.destroy();
        if (err) reject(err);
        else resolve(text!);
      };
      const onAbort = () => finish(new Error(`clamd ${this.name}: ${isTimeout(all) ? 'timeout' : 'aborted'}`));
      all.addEventListener('abort', onAbort, { once: true });
      socket.on('data', (d: Buffer) => {
        parts.push(d);
        size += d.length;
        const text = Buffer.concat(parts).toString('latin1');
        const nul = text.indexOf('\0');
        if (nul >= 0) finish(null, text.slice(0, nul).trim());
        else if (size > MAX_REPLY_BYTES) finish(new Error(`clamd ${this.name}: reply too long`));
      });
      socket.on('end', () => finish(null, Buffer.concat(parts).toString('latin1').replace(/\0+$/, '').trim()));
      socket.on('error', (err) =>
        finish(new Error(`clamd ${this.name}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)),
      );
      socket.write(cmd);
    });
  }
}

class InstreamSession implements ScanSession {
  private result: ScanResult | null = null;
  readonly done: Promise<ScanResult>;
  private resolveResult!: (r: ScanResult) => void;
  /** Called once when the result is known (wakes up a pending write). */
  private readonly waiters = new Set<() => void>();
  private replyParts: Buffer[] = [];
  private replyBytes = 0;
  private connected = false;
  private ended = false;
  /** We are waiting for clamd (socket full); otherwise silence is the caller's, not clamd's. */
  private blocked = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private sent = 0;
  private onSessionAbort: (() => void) | null = null;
  /** The connection, once we have one (a pooled one may first have to answer PING). */
  private lease: Lease | null = null;
  private readonly ready: Promise<void>;
  /** A complete verdict for our request id and nothing after it: only then may the connection be reused. */
  private reusable = false;

  constructor(
    lease: Lease | Promise<Lease>,
    private readonly timeoutMs: number,
    private readonly maxSize: number | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.done = new Promise((resolve) => (this.resolveResult = resolve));
    if (signal) {
      if (signal.aborted) this.settle(abortResult(signal));
      else {
        this.onSessionAbort = () => this.settle(abortResult(signal));
        signal.addEventListener('abort', this.onSessionAbort, { once: true });
      }
    }
    this.touch();
    if (lease instanceof Promise) {
      this.ready = lease.then(
        (l) => this.attach(l),
        (err: Error) => this.settle(errorResult('connect', err.message)),
      );
    } else {
      this.attach(lease);
      this.ready = Promise.resolve();
    }
  }

  get settled(): boolean {
    return this.result !== null;
  }

  get bytes(): number {
    return this.sent;
  }

  private attach(lease: Lease): void {
    if (this.result) {
      // Given up before the connection came: nothing was sent on it.
      lease.release(!lease.socket.connecting);
      return;
    }
    this.lease = lease;
    const socket = lease.socket;
    this.connected = !socket.connecting;
    if (socket.connecting) socket.once('connect', this.onConnect);
    socket.on('data', this.onData);
    socket.on('end', this.onClose);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.write('zINSTREAM\0');
  }

  private detach(socket: Socket): void {
    socket.off('connect', this.onConnect);
    socket.off('data', this.onData);
    socket.off('end', this.onClose);
    socket.off('close', this.onClose);
    socket.off('error', this.onError);
  }

  async write(chunk: Buffer, signal?: AbortSignal): Promise<void> {
    if (this.result || this.ended || chunk.length === 0) return;
    if (this.maxSize !== undefined && this.sent + chunk.length > this.maxSize) {
      this.settle(errorResult('too-large', `message above max_size (${this.maxSize} bytes)`));
      return;
    }
    if (!this.lease) await this.ready;
    this.touch();
    for (let off = 0; off < chunk.length && !this.result; off += MAX_INSTREAM_CHUNK) {
      const len = Math.min(chunk.length - off, MAX_INSTREAM_CHUNK);
      // Prefix and bytes leave in one writev (cork), the bytes as the caller's view: copying
      // them behind the prefix was a second copy of every scanned body (no one reuses the
      // buffers the body arrives in).
      const prefix = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES);
      prefix.writeUInt32BE(len, 0);
      const socket = this.lease!.socket;
      socket.cork();
      socket.write(prefix);
      const flowing = socket.write(chunk.subarray(off, off + len));
      socket.uncork();
      this.sent += len;
      if (!flowing) await this.drained(signal);
    }
  }

  async end(signal?: AbortSignal): Promise<ScanResult> {
    if (!this.result && !this.ended) {
      this.ended = true;
      if (!this.lease) await this.ready;
      if (!this.result) {
        this.touch();
        this.lease!.socket.write(END_OF_STREAM);
      }
    }
    if (this.result) return this.result;
    if (!signal) return this.done;
    if (signal.aborted) {
      this.settle(abortResult(signal));
      return this.result!;
    }
    const onAbort = () => this.settle(abortResult(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.done;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  abort(reason: ScanErrorReason = 'aborted'): void {
    this.settle(errorResult(reason));
  }

  /** Wait until the socket takes more data, or the session ends, or `signal` fires. */
  private drained(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) {
      this.settle(abortResult(signal, 'deadline passed while clamd was not reading'));
      return Promise.resolve();
    }
    const socket = this.lease!.socket;
    this.blocked = true;
    return new Promise<void>((resolve) => {
      const done = () => {
        this.blocked = false;
        socket.off('drain', onDrain);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(done);
        resolve();
      };
      const onDrain = () => {
        this.touch();
        done();
      };
      const onAbort = () => {
        this.settle(abortResult(signal!, 'deadline passed while clamd was not reading'));
        done();
      };
      socket.once('drain', onDrain);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(done);
    });
  }

  private readonly onConnect = (): void => {
    this.connected = true;
    this.touch();
  };

  private readonly onData = (d: Buffer): void => {
    this.touch();
    this.replyParts.push(d);
    this.replyBytes += d.length;
    if (d.indexOf(0) >= 0 || this.replyBytes > MAX_REPLY_BYTES) {
      const all = Buffer.concat(this.replyParts).toString('latin1');
      const nul = all.indexOf('\0');
      this.settle(
        this.parseReply(nul >= 0 ? all.slice(0, nul) : all.slice(0, 200), nul >= 0 && nul === all.length - 1),
      );
    }
  };

  /** In a session the reply must carry our request id; `alone`: nothing came after it. */
  private parseReply(text: string, alone: boolean): ScanResult {
    const id = this.lease?.id ?? 0;
    if (id === 0) return parseScanReply(text);
    const m = /^(\d+): /.exec(text);
    if (!m) {
      const r = parseScanReply(text);
      // An error clamd reports for the whole session (e.g. a queue limit) comes without an id.
      return r.status === 'error'
        ? r
        : errorResult('unknown-reply', 'reply without the request id', text.slice(0, 200));
    }
    if (Number(m[1]) !== id)
      return errorResult('unknown-reply', `reply for request ${m[1]}, expected ${id}`, text.slice(0, 200));
    const r = parseScanReply(text.slice(m[0].length));
    this.reusable = alone && this.ended && r.status !== 'error';
    return r;
  }

  /** A complete or partial reply wins over whatever broke afterwards (EPIPE after an early reply). */
  private pendingReply(): string | null {
    if (this.replyBytes === 0) return null;
    return Buffer.concat(this.replyParts).toString('latin1');
  }

  private readonly onClose = (): void => {
    if (this.result) return;
    const reply = this.pendingReply();
    if (reply !== null) return this.settle(this.parseReply(reply.replace(/\0+$/, ''), false));
    this.settle(
      this.ended
        ? errorResult('empty-reply', 'clamd closed the connection without a reply')
        : errorResult('io', 'clamd closed the connection'),
    );
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    if (this.result) return;
    const reply = this.pendingReply();
    if (reply !== null) return this.settle(this.parseReply(reply.replace(/\0+$/, ''), false));
    this.settle(errorResult(this.connected ? 'io' : 'connect', err.code ?? err.message));
  };

  /** Any sign of life pushes the silence deadline back. */
  private touch(): void {
    if (this.result) return;
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => this.onSilence(), this.timeoutMs);
    this.idleTimer.unref();
  }

  private onSilence(): void {
    // Silence while clamd owes us something (connect, reading, the verdict) is clamd's fault;
    // silence while nobody writes means the message was abandoned (ABORT, lost connection).
    const clamdsFault = !this.connected || this.blocked || this.ended;
    this.settle(
      clamdsFault
        ? errorResult('timeout', `clamd silent for ${this.timeoutMs} ms`)
        : errorResult('aborted', `no data for ${this.timeoutMs} ms: scan abandoned`),
    );
  }

  private settle(r: ScanResult): void {
    if (this.result) return;
    this.result = r;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.signal && this.onSessionAbort) this.signal.removeEventListener('abort', this.onSessionAbort);
    if (this.lease) {
      this.detach(this.lease.socket);
      this.lease.release(this.reusable && r.status !== 'error');
    }
    for (const w of [...this.waiters]) w();
    this.resolveResult(r);
  }
}

function abortResult(signal: AbortSignal, message?: string): ScanResult {
  return errorResult(isTimeout(signal) ? 'timeout' : 'aborted', message);
}

// ------------------------------------------------------------------ the guarded service

export interface ClamdServiceOptions {
  client: ClamdClient;
  breaker: CircuitBreaker;
  /** While the breaker is open, PING clamd at most this often to notice it is back. */
  probeIntervalMs: number;
  /** How long such a PING may take. */
  probeTimeoutMs: number;
  now?: () => number;
}

/** What the rule needs from a scanner (a fake implements it in the tests). */
export interface Scanner {
  /** Is a scan worth starting? false when the breaker is open and a probe found clamd still down. */
  available(signal: AbortSignal): Promise<boolean>;
  /** Start a scan; fails fast with 'circuit-open' while the breaker is open. */
  instream(signal?: AbortSignal): ScanSession;
  readonly name: string;
}

/** Errors that say nothing about clamd's health: they must not trip the breaker. */
const NEUTRAL_ERRORS: ReadonlySet<ScanErrorReason> = new Set(['aborted', 'too-large', 'size-limit', 'circuit-open']);

/** The clamd client behind a circuit breaker, shared by every message of a policy. */
export class ClamdService implements Scanner {
  readonly client: ClamdClient;
  readonly breaker: CircuitBreaker;
  private lastProbe = Number.NEGATIVE_INFINITY;
  private probing: Promise<boolean> | null = null;
  private readonly live = new Set<ScanSession>();
  private readonly now: () => number;

  constructor(private readonly opts: ClamdServiceOptions) {
    this.client = opts.client;
    this.breaker = opts.breaker;
    this.now = opts.now ?? Date.now;
  }

  get name(): string {
    return this.client.name;
  }

  get breakerState(): BreakerState {
    return this.breaker.state;
  }

  /** Scans started and not finished yet (the metrics' scan backlog). */
  get scansInProgress(): number {
    return this.live.size;
  }

  async available(signal: AbortSignal): Promise<boolean> {
    if (this.breaker.admitting) return true;
    if (this.breaker.state !== 'open') return false; // half-open with its trial in flight
    if (!this.probing && this.now() - this.lastProbe >= this.opts.probeIntervalMs) {
      this.lastProbe = this.now();
      // One probe at a time, shared by every message that arrives meanwhile, and bounded by its
      // own (short) timeout rather than one message's deadline.
      this.probing = this.client.ping(AbortSignal.timeout(this.opts.probeTimeoutMs)).then(
        (ok) => {
          if (ok) this.breaker.probeSucceeded();
          return ok;
        },
        () => false,
      );
      void this.probing.finally(() => (this.probing = null));
    }
    if (!this.probing) return false;
    await raceAbort(this.probing, signal);
    return this.breaker.admitting;
  }

  instream(signal?: AbortSignal): ScanSession {
    const permit = this.breaker.acquire();
    if (!permit) return failedSession(errorResult('circuit-open', `clamd ${this.name} is marked down`));
    const session = new TrackedSession(this.client.instream(signal), permit, this.live);
    this.live.add(session);
    return session;
  }

  health(signal?: AbortSignal): Promise<ClamdHealth> {
    return this.client.health(signal);
  }

  /** Close every open scan (policy unloaded). */
  close(): void {
    for (const s of [...this.live]) s.abort('aborted');
    this.live.clear();
    this.client.close();
  }
}

/** Reports the outcome of a scan to the breaker exactly once, however it ends. */
class TrackedSession implements ScanSession {
  readonly done: Promise<ScanResult>;

  constructor(
    private readonly inner: ScanSession,
    permit: Permit,
    live: Set<ScanSession>,
  ) {
    this.done = inner.done.then((r) => {
      live.delete(this);
      if (r.status !== 'error') permit.success();
      else if (NEUTRAL_ERRORS.has(r.reason)) permit.release();
      else permit.failure();
      return r;
    });
  }

  get settled(): boolean {
    return this.inner.settled;
  }

  get bytes(): number {
    return this.inner.bytes;
  }

  write(chunk: Buffer, signal?: AbortSignal): Promise<void> {
    return this.inner.write(chunk, signal);
  }

  async end(signal?: AbortSignal): Promise<ScanResult> {
    await this.inner.end(signal);
    // The breaker has been told before the caller acts on the result.
    return this.done;
  }

  abort(reason?: ScanErrorReason): void {
    this.inner.abort(reason);
  }
}

/** Resolves when `p` settles or `signal` fires, whichever comes first; never rejects. */
function raceAbort(p: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    p.then(done, done);
  });
}

/** A session that never connected: every write is a no-op, end() gives `result`. */
export function failedSession(result: ScanResult): ScanSession {
  return {
    settled: true,
    bytes: 0,
    done: Promise.resolve(result),
    write: async () => undefined,
    end: async () => result,
    abort: () => undefined,
  };
}
