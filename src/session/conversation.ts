// One SMTP session as the policy sees it, independent of the wire: the live milter session and
// the offline `relayguard check` both drive this class, so both run the very same engine.
// It owns the connection and message contexts, the per-phase deadlines, the direction decision,
// the decision log line with its reference, and the mapping of results to outcomes.
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import type { Logger } from 'winston';
import { parseEnvelopeAddress, parseEsmtpParams } from '../primitives/address.js';
import type { Decision, Outcome, PhaseResult } from '../policy/decision.js';
import type { RunningPolicy } from '../policy/running-policy.js';
import { normalizeIp } from '../primitives/networks.js';
import { newRef, toSmtpReply } from '../policy/reply.js';
import type {
  ClientInfo,
  ConnectionContext,
  Header,
  MessageContext,
  Phase,
  PhaseInputs,
  Recipient,
  TraceEntry,
} from '../policy/types.js';
import { phaseSeconds } from '../ops/metrics.js';
import { BodyStore } from './body-store.js';
import { MacroStore } from './macros.js';

export interface ConversationOptions {
  policy: RunningPolicy;
  log: Logger;
  /** Called for every final decision of a message or a refusal (metrics, quarantine index). */
  onDecision?: (d: Decision) => void;
  connId?: string;
  /** The connection's logger (bound to its id and queue id); a child of `log` by default. */
  connLog?: Logger;
  /** Keep the body received for the rules at end of message (default true). */
  storeBody?: boolean;
}

/** A command the MTA sent out of order: the step is refused, the connection kept, one log line. */
export class SequenceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SequenceError';
  }
}

const CONTINUE: Outcome = { action: 'continue', mods: [] };

/** Random bytes fetched at once for connection ids (one fetch per 1024 connections, not one each). */
const ID_POOL_BYTES = 4096;
const ID_BYTES = 4;
let idPool = Buffer.alloc(0);
let idOffset = 0;

export function newConnectionId(): string {
  if (idOffset + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_POOL_BYTES);
    idOffset = 0;
  }
  idOffset += ID_BYTES;
  return idPool.toString('hex', idOffset - ID_BYTES, idOffset);
}

/** The deadline class of each phase (see server.deadlines in the policy). */
function deadlineOf(phase: Phase, d: { connect: number; envelope: number; content: number }): number {
  switch (phase) {
    case 'connect':
    case 'helo':
      return d.connect;
    case 'envfrom':
    case 'envrcpt':
    case 'data':
    case 'unknown':
      return d.envelope;
    default:
      return d.content;
  }
}

/** Trim the single leading space that SMTP puts after the colon (kept raw for reconstruction). */
export interface RawHeader extends Header {
  raw: string;
}

export class Conversation {
  readonly macros = new MacroStore();
  readonly conn: ConnectionContext;
  msg: MessageContext | undefined;
  private headersRaw: RawHeader[] = [];
  /** headerBlock() of headersRaw; dropped whenever headersRaw changes. */
  private headerBlockCache: Buffer | null = null;
  private body: BodyStore | null = null;
  /** A refusal decided in a phase that gets no reply (headers): applied at the next reply. */
  private pending: Outcome | null = null;
  /** A hold decided before end of message. */
  private pendingQuarantine: string | undefined;
  private trace: TraceEntry[] = [];
  private bodyDropped = false;
  /** Body bytes seen when the body is not kept (storeBody: false). */
  private bodyBytes = 0;
  private headerBytes = 0;
  /** Aborted when the session closes (QUIT, QUIT_NC, the connection gone). */
  private readonly ended = new AbortController();

  constructor(private readonly opts: ConversationOptions) {
    const id = opts.connId ?? newConnectionId();
    this.conn = {
      id,
      client: { ip: null, hostname: '', port: 0, family: 'unknown' },
      macros: this.macros,
      internalNetwork: false,
      networkGroups: [],
      state: new Map(),
      log: opts.connLog ?? opts.log.child({ conn: id }),
    };
  }

  get policy(): RunningPolicy {
    return this.opts.policy;
  }

  // ---------------------------------------------------------------- phases

  async connect(client: {
    hostname: string;
    family: ClientInfo['family'];
    port: number;
    address: string;
  }): Promise<Outcome> {
    this.resetMessage();
    this.conn.state.clear();
    const ip = client.family === 'inet' || client.family === 'inet6' ? normalizeIp(client.address) : null;
    this.conn.client = { ip, hostname: client.hostname, port: client.port, family: client.family };
    delete this.conn.helo;
    delete this.conn.tls;
    delete this.conn.authUser;
    this.conn.internalNetwork = this.policy.internal.contains(ip);
    this.conn.networkGroups = this.policy.groupsOf(ip);
    // Guarded: winston builds and pipes a line before its level filter drops it.
    if (this.conn.log.isLevelEnabled('debug'))
      this.conn.log.debug('connect', {
        client: ip ?? client.address,
        host: client.hostname,
        internal: this.conn.internalNetwork,
      });
    return this.runPhase('connect', {});
  }

  async helo(name: string): Promise<Outcome> {
    this.conn.helo = name;
    this.refreshTls();
    return this.runPhase('helo', {});
  }

  async mail(args: string[]): Promise<Outcome> {
    this.resetMessage();
    this.refreshTls();
    const auth = this.macros.get('auth_authen');
    if (auth) this.conn.authUser = auth;
    else delete this.conn.authUser;
    const outbound = this.conn.internalNetwork || !!this.conn.authUser;
    // When no rule reads the body, only its size is kept.
    const body =
      this.opts.storeBody === false
        ? null
        : new BodyStore(this.policy.config.server.body_memory_bytes, this.policy.config.server.spool_dir);
    this.body = body;
    this.bodyBytes = 0;
    // For the getter below (an accessor has its own `this`).
    const bodyBytes = () => this.bodyBytes;
    // The message's logger adds its queue id; made on first use, as most messages log only the
    // decision line (written through the connection's logger with the queue id as a field).
    const connLog = this.conn.log;
    let msgLog: Logger | undefined;
    let msgLogQid: string | undefined;
    const msg: MessageContext = {
      sender: parseEnvelopeAddress(args[0] ?? ''),
      senderArgs: args.slice(1),
      senderParams: parseEsmtpParams(args.slice(1)),
      recipients: [],
      headers: [],
      direction: outbound ? 'outbound' : 'inbound',
      state: new Map(),
      get log(): Logger {
        if (msg.queueId === undefined) return msgLog ?? connLog;
        if (msgLogQid !== msg.queueId) {
          msgLog = connLog.child({ qid: msg.queueId });
          msgLogQid = msg.queueId;
        }
        return msgLog!;
      },
      set log(l: Logger) {
        msgLog = l;
        msgLogQid = msg.queueId;
      },
      source: {
        get bodySize() {
          return body ? body.size : bodyBytes();
        },
        body: () => (body ? body.stream() : Readable.from([])),
        headerBlock: () => this.headerBlock(),
        inMemory: () => {
          const kept = body ? body.inMemory() : [];
          return kept ? { header: this.headerBlock(), body: kept } : null;
        },
        message: () => {
          // Header block and a body in memory: one plain stream over the pieces (every rule that
          // reads the message asks for it, so the stream-of-streams is kept for a spilled body).
          const kept = body ? body.inMemory() : [];
          if (kept) return Readable.from([this.headerBlock(), ...kept], { objectMode: false });
          return concatStreams([Readable.from([this.headerBlock()]), body!.stream()]);
        },
      },
    };
    this.msg = msg;
    this.updateQueueId();
    return this.runPhase('envfrom', { msg });
  }

  async rcpt(args: string[]): Promise<Outcome> {
    const msg = this.requireMsg('RCPT');
    const rcpt: Recipient = { address: parseEnvelopeAddress(args[0] ?? ''), args: args.slice(1) };
    msg.recipients.push(rcpt);
    this.updateQueueId();
    const out = await this.runPhase('envrcpt', { msg, rcpt });
    if (out.action === 'reject' || out.action === 'tempfail') rcpt.refused = true;
    return out;
  }

  async data(): Promise<Outcome> {
    const msg = this.requireMsg('DATA');
    this.updateQueueId();
    return this.runPhase('data', { msg });
  }

  /** `value` as the MTA sent it; `leadingSpace` tells whether SMFIP_HDR_LEADSPC was negotiated. */
  async header(name: string, value: string, leadingSpace: boolean): Promise<Outcome> {
    const msg = this.requireMsg('HEADER');
    this.updateQueueId();
    const raw = leadingSpace ? value : value.length ? ` ${value}` : value;
    const h: RawHeader = { name, value: raw.startsWith(' ') ? raw.slice(1) : raw, raw };
    if (this.pending) return this.pending;
    // Bound what a message can make us keep: a header flood is refused, not stored.
    this.headerBytes += name.length + raw.length + 3;
    const { max_headers, max_header_bytes } = this.policy.config.server;
    if (this.headersRaw.length >= max_headers || this.headerBytes > max_header_bytes) {
      const ref = newRef(this.conn.id);
      const reason = `Message header too large (more than ${max_headers} fields or ${max_header_bytes} bytes)`;
      this.pending = {
        action: 'reject',
        mods: [],
        ref,
        reason,
        rule: 'limits',
        reply: toSmtpReply('reject', 'policy', reason, ref, { code: 552, enhanced: '5.3.4' })!,
      };
      this.headersRaw = [];
      this.headerBlockCache = null;
      msg.headers.length = 0;
      return this.pending;
    }
    this.headersRaw.push(h);
    this.headerBlockCache = null;
    msg.headers.push({ name: h.name, value: h.value });
    const out = await this.runPhase('header', { msg, header: { name: h.name, value: h.value } });
    if (out.action === 'reject' || out.action === 'tempfail' || out.action === 'discard') this.pending = out;
    return out;
  }

  async eoh(): Promise<Outcome> {
    const msg = this.requireMsg('EOH');
    if (this.pending) return this.pending;
    return this.runPhase('eoh', { msg });
  }

  async bodyChunk(chunk: Buffer): Promise<Outcome> {
    const msg = this.requireMsg('BODY');
    if (this.pending) return this.pending;
    if (!this.bodyDropped) {
      if (this.body) await this.body.append(chunk);
      else this.bodyBytes += chunk.length;
    }
    const out = await this.runPhase('body', { msg, chunk });
    if (out.action === 'reject' || out.action === 'tempfail' || out.action === 'discard') {
      // The message is refused: stop keeping its bytes.
      this.pending = out;
      this.bodyDropped = true;
      await this.body?.dispose();
    }
    return out;
  }

  async eom(lastChunk?: Buffer): Promise<Outcome> {
    const msg = this.requireMsg('EOM');
    if (lastChunk && lastChunk.length) {
      const early = await this.bodyChunk(lastChunk);
      if (early.action !== 'continue' && early.action !== 'quarantine') return this.finish('eom', early);
    }
    if (this.pending) return this.finish('eom', this.pending);
    await this.body?.flush();
    this.updateQueueId();
    const out = await this.runPhase('eom', { msg });
    return this.finish('eom', out);
  }

  async unknown(command: string): Promise<Outcome> {
    return this.runPhase('unknown', { command });
  }

  /** ABORT: the message ends, the connection stays. */
  async abort(): Promise<void> {
    this.resetMessage();
  }

  async close(): Promise<void> {
    const body = this.body;
    this.resetMessage();
    // Work started for this session and still running (lookups begun at connect) stops now: a
    // client that pipelines QUIT_NC + CONNECT must not pile up lookups nobody will read.
    this.ended.abort(new Error('session closed'));
    // A spilled body is gone from the spool when the close is done (serve waits for it on exit).
    await body?.dispose();
  }

  // ---------------------------------------------------------------- internals

  private requireMsg(what: string): MessageContext {
    if (!this.msg) throw new SequenceError(`${what} outside a transaction`);
    return this.msg;
  }

  private resetMessage(): void {
    if (this.msg) this.policy.engine.messageEnded(this.conn, this.msg);
    if (this.body) void this.body.dispose();
    this.body = null;
    this.msg = undefined;
    this.headersRaw = [];
    this.headerBlockCache = null;
    this.pending = null;
    this.pendingQuarantine = undefined;
    this.trace = [];
    this.bodyDropped = false;
    this.bodyBytes = 0;
    this.headerBytes = 0;
    // Macros are not cleared here: the MAIL stage's macros arrive before MAIL itself, and
    // MacroStore.set() already drops later stages when a new MAIL stage starts.
  }

  private refreshTls(): void {
    const version = this.macros.get('tls_version');
    if (!version) return;
    const bits = Number(this.macros.get('cipher_bits'));
    const tls: NonNullable<ConnectionContext['tls']> = { version };
    const cipher = this.macros.get('cipher');
    if (cipher) tls.cipher = cipher;
    if (Number.isFinite(bits) && bits > 0) tls.bits = bits;
    const subject = this.macros.get('cert_subject');
    if (subject) tls.certSubject = subject;
    const issuer = this.macros.get('cert_issuer');
    if (issuer) tls.certIssuer = issuer;
    const verify = this.macros.get('verify');
    if (verify) tls.verify = verify;
    this.conn.tls = tls;
  }

  private updateQueueId(): void {
    const qid = this.macros.get('i');
    if (qid && this.msg && this.msg.queueId !== qid) {
      this.msg.queueId = qid; // msg.log follows (see mail())
    }
  }

  /** The header block as received, CRLF line ends, ending with the empty line. */
  headerBlock(): Buffer {
    // Built once per message: content, antivirus and disclaimer each read the message.
    if (!this.headerBlockCache) {
      const lines = this.headersRaw.map((h) => `${h.name}:${h.raw.replace(/\r?\n/g, '\r\n')}\r\n`);
      this.headerBlockCache = Buffer.from(lines.join('') + '\r\n', 'latin1');
    }
    return this.headerBlockCache;
  }

  /** `extra`: what the phase has beyond the connection and the deadline (PhaseInputs). */
  private async runPhase<P extends Phase>(phase: P, extra: Omit<PhaseInputs[P], 'conn' | 'signal'>): Promise<Outcome> {
    const engine = this.policy.engine;
    if (!engine.handles(phase)) return CONTINUE;
    const ms = deadlineOf(phase, this.policy.config.server.deadlines);
    // The phase's deadline, or the session's end. A plain timer cleared when the phase is done
    // (AbortSignal.timeout would live for its whole term, per phase, and pile up under a flood);
    // work a phase leaves running (the lookups begun at connect) still stops with the session.
    const phaseEnd = new AbortController();
    const onEnded = () => phaseEnd.abort(this.ended.signal.reason);
    this.ended.signal.addEventListener('abort', onEnded, { once: true });
    const deadline = setTimeout(
      () => phaseEnd.abort(new DOMException(`${phase} deadline of ${ms} ms`, 'TimeoutError')),
      ms,
    );
    deadline.unref();
    const timer = phaseSeconds.startTimer({ phase });
    let result: PhaseResult;
    try {
      // The spread of a generic Omit is not seen as the whole input; each caller's `extra` is checked.
      result = await engine.run(phase, { conn: this.conn, signal: phaseEnd.signal, ...extra } as PhaseInputs[P]);
    } finally {
      clearTimeout(deadline);
      if (phase !== 'connect') this.ended.signal.removeEventListener('abort', onEnded);
    }
    timer();
    this.trace.push(...result.trace);
    return this.toOutcome(phase, result);
  }

  private toOutcome(phase: Phase, r: PhaseResult): Outcome {
    if (r.action === 'continue') return r.mods.length ? { action: 'continue', mods: r.mods } : CONTINUE;
    if (r.action === 'quarantine') {
      // A hold is only possible at end of message; remember it until then.
      if (phase !== 'eom') {
        this.pendingQuarantine ??= r.reason ?? `held by ${r.rule}`;
        return r.mods.length ? { action: 'continue', mods: r.mods } : CONTINUE;
      }
      return {
        action: 'quarantine',
        quarantine: r.reason ?? `held by ${r.rule}`,
        mods: r.mods,
        ...(r.rule ? { rule: r.rule } : {}),
      };
    }
    const ref = newRef(this.conn.id);
    const reply = toSmtpReply(r.action, r.cause, r.reason, ref, r.smtp);
    const out: Outcome = {
      action: r.action,
      mods: [],
      ref,
      ...(r.reason ? { reason: r.reason } : {}),
      ...(r.rule ? { rule: r.rule } : {}),
    };
    if (reply) out.reply = reply;
    if (phase !== 'eom') this.report(phase, out);
    return out;
  }

  private finish(phase: Phase, out: Outcome): Outcome {
    let final = out;
    if (final.action === 'continue' && this.pendingQuarantine) {
      final = { ...final, action: 'quarantine', quarantine: this.pendingQuarantine };
    }
    if (final.action === 'quarantine' && !final.ref) final = { ...final, ref: newRef(this.conn.id) };
    this.report(phase, final);
    return final;
  }

  private report(phase: Phase, outcome: Outcome): void {
    const msg = this.msg;
    const log = this.conn.log;
    const fields: Record<string, unknown> = {
      ...(msg?.queueId ? { qid: msg.queueId } : {}),
      phase,
      action: outcome.action,
      client: this.conn.client.ip ?? this.conn.client.hostname,
      ...(this.conn.client.hostname && !this.conn.client.hostname.startsWith('[')
        ? { client_name: this.conn.client.hostname }
        : {}),
    };
    if (outcome.ref) fields.ref = outcome.ref;
    if (outcome.rule) fields.rule = outcome.rule;
    if (outcome.reason) fields.reason = outcome.reason;
    if (outcome.reply) fields.reply = `${outcome.reply.code} ${outcome.reply.enhanced}`;
    if (outcome.quarantine) fields.quarantine = outcome.quarantine;
    if (msg) {
      fields.direction = msg.direction;
      fields.from = msg.sender?.raw ?? '';
      fields.rcpt = msg.recipients.map((r) => r.address.raw);
    }
    fields.trace = this.trace.filter((t) => t.action !== 'continue' || t.monitor || t.details);
    log.info(`decision ${outcome.action}${outcome.ref ? ` ref=${outcome.ref}` : ''}`, fields);
    const d: Decision = { conn: this.conn, phase, outcome, trace: [...this.trace] };
    if (msg) d.msg = msg;
    this.opts.onDecision?.(d);
    void this.policy.engine.notify({
      conn: this.conn,
      ...(msg ? { msg } : {}),
      phase,
      action: outcome.action,
      ...(outcome.rule ? { rule: outcome.rule } : {}),
      ...(outcome.reason ? { reason: outcome.reason } : {}),
    });
  }

  /** The full trace of the current message (offline check). */
  get currentTrace(): TraceEntry[] {
    return [...this.trace];
  }
}

/** Streams `parts` one after another. If the reader stops early (destroys the output), every
 *  part is destroyed too, so a spilled body's file handle is released. */
function concatStreams(parts: Readable[]): Readable {
  const out = new PassThrough();
  const release = () => {
    for (const p of parts) p.destroy();
  };
  out.once('close', () => {
    if (!out.writableFinished) release();
  });
  (async () => {
    for (const p of parts) {
      for await (const chunk of p) {
        if (out.destroyed) return release();
        if (!out.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => (out.off('drain', done), out.off('close', done), resolve());
            out.once('drain', done);
            out.once('close', done);
          });
          if (out.destroyed) return release();
        }
      }
    }
    out.end();
  })().catch((err: Error) => {
    release();
    out.destroy(err);
  });
  return out;
}
