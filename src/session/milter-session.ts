// One milter connection: de-frames, decodes, dispatches each command through a table to the
// Conversation, and writes the replies of each step in one write. Commands are handled strictly
// in order (a verdict for event N is written before anything for event N+1). A malformed frame
// closes this connection only.
// Postfix opens a connection per SMTP session, so what a session costs to set up counts as much
// as what a message costs: the command table is shared by all sessions, the negotiation is
// computed once per policy and offer, and one child logger serves the whole connection.
import type { Socket } from 'node:net';
import type { Logger } from 'winston';
import type { LogContext } from '../ops/logging.js';
import { protocolErrorsTotal } from '../ops/metrics.js';
import type { ServerSettings } from '../config/settings.js';
import type { Decision, Outcome } from '../policy/decision.js';
import type { RunningPolicy } from '../policy/running-policy.js';
import type { Modification } from '../policy/types.js';
import { Action, MAX_BODY_CHUNK, Proto } from '../protocol/constants.js';
import { decodeCommand, type CommandType, type MilterCommand } from '../protocol/decode.js';
import * as enc from '../protocol/encode.js';
import { FrameDecoder, FrameError } from '../protocol/frame.js';
import { formatReply } from '../protocol/smtp-reply.js';
import { headerSafe } from '../primitives/safe-text.js';
import { BodyFrames } from './body-frames.js';
import { Conversation, newConnectionId, SequenceError } from './conversation.js';
import { negotiateCached, NegotiationError, policyEventNeeds, type Negotiated, type Transport } from './negotiate.js';

/** What one connection may cost and how long it may keep a slot silent (server.* in the policy). */
export interface SessionLimits {
  /** Macro names and values held at once; beyond it the connection is closed. */
  maxMacroBytes: number;
  /** Bytes read but not handled yet; reading pauses beyond it (one whole frame always fits). */
  maxPendingBytes: number;
  /** From accept to OPTNEG. */
  handshakeTimeoutMs: number;
  /** Between two commands. */
  idleTimeoutMs: number;
  /** Inside a transaction (after MAIL, RCPT or DATA) until the content starts. */
  dataIdleTimeoutMs: number;
}

export interface SessionOptions {
  policy: RunningPolicy;
  log: Logger;
  maxFrameBytes: number;
  progressIntervalMs: number;
  /** Default: the policy's server settings. */
  limits?: SessionLimits;
  onDecision?: (d: Decision) => void;
  /** The socket closed; `cleanedUp` settles once the message in progress is released (its spilled body removed). */
  onClose?: (cleanedUp: Promise<void>) => void;
  /** The kind of socket: no-reply bits are negotiated over a unix socket only. Default inet. */
  transport?: Transport;
}

type Cmd<T extends CommandType> = Extract<MilterCommand, { type: T }>;
type Handler = (s: MilterSession, cmd: MilterCommand) => Promise<Buffer[] | null> | Buffer[] | null;
const handler = <T extends CommandType>(
  fn: (s: MilterSession, cmd: Cmd<T>) => Promise<Buffer[] | null> | Buffer[] | null,
) => fn as Handler;

/** What each command does; one table for every session (no closures per connection). */
const HANDLERS: Readonly<Record<CommandType, Handler>> = {
  optneg: handler<'optneg'>((s, c) => s.onOptneg(c)),
  macro: handler<'macro'>((s, c) => s.onMacro(c)),
  connect: handler<'connect'>((s, c) => s.replyTo('connect', s.conv.connect(c), Proto.NR_CONN)),
  helo: handler<'helo'>((s, c) => s.replyTo('helo', s.conv.helo(c.name), Proto.NR_HELO)),
  mail: handler<'mail'>((s, c) => s.replyTo('mail', s.conv.mail(c.args), Proto.NR_MAIL)),
  rcpt: handler<'rcpt'>((s, c) => s.replyTo('rcpt', s.conv.rcpt(c.args), Proto.NR_RCPT)),
  data: handler<'data'>((s) => s.replyTo('data', s.conv.data(), Proto.NR_DATA)),
  header: handler<'header'>((s, c) =>
    s.replyTo('header', s.conv.header(c.name, c.value, s.has(Proto.HDR_LEADSPC)), Proto.NR_HDR),
  ),
  eoh: handler<'eoh'>((s) => s.replyTo('eoh', s.conv.eoh(), Proto.NR_EOH)),
  body: handler<'body'>((s, c) => s.replyTo('body', s.conv.bodyChunk(c.chunk), Proto.NR_BODY)),
  eom: handler<'eom'>((s, c) => s.onEom(c)),
  abort: handler<'abort'>(async (s) => (await s.conv.abort(), null)),
  quit: handler<'quit'>((s) => (s.end(), null)),
  quitnc: handler<'quitnc'>((s) => s.onQuitNc()),
  unknown: handler<'unknown'>((s, c) => s.replyTo('unknown', s.conv.unknown(c.line), Proto.NR_UNKN)),
};

/** Frames up to this size are joined into one buffer before writing (a small copy costs less than a writev of many pieces); larger ones are corked (writev). */
const JOIN_BELOW_BYTES = 16 * 1024;

/** Events whose refusal is carried to the next reply (at the latest end of message), not lost. */
const DEFERRED_REFUSALS: ReadonlySet<string> = new Set(['header', 'eoh', 'body']);

function sessionLimits(server: ServerSettings): SessionLimits {
  return {
    maxMacroBytes: server.max_macro_bytes,
    maxPendingBytes: server.max_pending_bytes,
    handshakeTimeoutMs: server.handshake_timeout,
    idleTimeoutMs: server.idle_timeout,
    dataIdleTimeoutMs: server.data_idle_timeout,
  };
}

export class MilterSession {
  readonly id = newConnectionId();
  private readonly decoder: FrameDecoder;
  private readonly limits: SessionLimits;
  /** Reading pauses when more than this waits undecoded (never less than one whole frame). */
  private readonly pendingLimit: number;
  /** The handshake timer until OPTNEG, then the idle timer; not running while a command is handled. */
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private closed = false;
  /** When the last command was handled (or the connection accepted): the server evicts the stalest. */
  lastActive = Date.now();
  private negotiated: Readonly<Negotiated> | null = null;
  /** @internal (the command table) */
  conv: Conversation;
  private readonly log: Logger;
  /** The fields of every line of this connection; the child logger reads them at write time. */
  private readonly ctx: LogContext;

  constructor(
    private readonly socket: Socket,
    private readonly opts: SessionOptions,
  ) {
    this.decoder = new FrameDecoder(opts.maxFrameBytes);
    this.limits = opts.limits ?? sessionLimits(opts.policy.config.server);
    this.pendingLimit = Math.max(this.limits.maxPendingBytes, opts.maxFrameBytes + 4);
    this.ctx = { conn: this.id };
    this.log = opts.log.child(this.ctx);
    this.conv = this.newConversation();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug(`socket error: ${err.message}`));
    socket.on('close', () => this.onSocketClose());
    this.arm(this.limits.handshakeTimeoutMs, 'no option negotiation');
  }

  /** True once the MTA has negotiated options. */
  get negotiatedYet(): boolean {
    return this.negotiated !== null;
  }

  /** True while a command is being handled (the MTA waits for us: never evicted then). */
  get working(): boolean {
    return this.busy;
  }

  /** Close at once, freeing the slot. `level`: evictions under a flood log at debug (the server counts them). */
  evict(reason: string, level: 'info' | 'debug' = 'info'): void {
    if (this.closed) return;
    this.log.log(level, `closing connection: ${reason}`);
    this.end(true);
  }

  private newConversation(): Conversation {
    return new Conversation({
      policy: this.opts.policy,
      log: this.opts.log,
      connLog: this.log,
      connId: this.id,
      storeBody: policyEventNeeds(this.opts.policy.engine).storeBody,
      ...(this.opts.onDecision ? { onDecision: this.opts.onDecision } : {}),
    });
  }

  // ---------------------------------------------------------------- input

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    // Bytes wait undecoded (a decoded command costs more than its bytes); past the budget the
    // socket stops reading, and TCP's window makes the sender wait.
    this.decoder.add(chunk);
    if (this.decoder.buffered > this.pendingLimit) this.socket.pause();
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    let handled = false;
    try {
      while (!this.closed) {
        let cmd: MilterCommand;
        try {
          const frame = this.decoder.next();
          if (!frame) break;
          cmd = decodeCommand(frame);
        } catch (err) {
          this.protocolError(err as Error);
          return;
        }
        if (this.socket.isPaused() && this.decoder.buffered <= this.pendingLimit / 2) this.socket.resume();
        // Only a whole command counts as activity: bytes trickled into a frame do not.
        this.disarm();
        handled = true;
        await this.dispatch(cmd);
        this.lastActive = Date.now();
        // The content may come next (DATA, or RCPT/MAIL when DATA or RCPT were negotiated away).
        if (cmd.type === 'mail' || cmd.type === 'rcpt' || cmd.type === 'data') this.inDataWait = true;
        else if (cmd.type !== 'macro') this.inDataWait = false;
      }
    } finally {
      this.busy = false;
    }
    if (this.closed || !handled) return;
    if (this.socket.isPaused() && this.decoder.buffered <= this.pendingLimit) this.socket.resume();
    if (!this.negotiated) this.arm(this.limits.handshakeTimeoutMs, 'no option negotiation');
    else if (this.inDataWait) this.arm(this.limits.dataIdleTimeoutMs, 'no message content after DATA');
    else this.arm(this.limits.idleTimeoutMs, 'no command');
  }

  /** In a transaction, before its content: Postfix sends the content once the client has sent it all (see server.data_idle_timeout). */
  private inDataWait = false;

  private arm(ms: number, what: string): void {
    this.disarm();
    if (ms <= 0) return;
    this.timer = setTimeout(() => this.evict(`${what} within ${ms / 1000}s`), ms);
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async dispatch(cmd: MilterCommand): Promise<void> {
    let out: Buffer[] | null;
    try {
      if (!this.negotiated && cmd.type !== 'optneg') throw new FrameError(`${cmd.type} before option negotiation`);
      out = await HANDLERS[cmd.type](this, cmd);
    } catch (err) {
      if (err instanceof FrameError || err instanceof NegotiationError) {
        this.protocolError(err);
        return;
      }
      // An out-of-order command (one line: the MTA or a client misbehaves) or a bug (with its
      // stack): refuse this step temporarily, keep the connection.
      if (err instanceof SequenceError) this.log.warn(`${cmd.type}: ${err.message}; refused`);
      else this.log.error(`${cmd.type}: ${(err as Error).message}`, { stack: (err as Error).stack });
      out = this.expectsReply(cmd.type) ? [enc.tempfail()] : null;
    }
    if (out && out.length) this.write(out);
  }

  // ---------------------------------------------------------------- handlers

  /** @internal */
  onOptneg(c: Cmd<'optneg'>): Buffer[] {
    const { negotiated, frame } = negotiateCached(this.opts.policy.engine, c, this.opts.transport ?? 'inet');
    this.negotiated = negotiated;
    if (negotiated.missingActions) {
      this.log.warn(
        `MTA does not offer actions 0x${negotiated.missingActions.toString(16)} that enabled rules need; those features are degraded`,
      );
    }
    if (this.log.isLevelEnabled('debug'))
      this.log.debug('negotiated', {
        version: negotiated.version,
        actions: negotiated.actions,
        protocol: negotiated.protocol,
      });
    return [frame];
  }

  /** @internal */
  onMacro(c: Cmd<'macro'>): null {
    if (!this.conv.macros.set(c.stage, c.macros)) {
      if (this.log.isLevelEnabled('debug'))
        this.log.debug(`macros of unknown stage ${JSON.stringify(c.stage)} dropped`);
      return null;
    }
    if (this.conv.macros.bytes > this.limits.maxMacroBytes) {
      throw new FrameError(
        `macros hold ${this.conv.macros.bytes} bytes, more than max_macro_bytes ${this.limits.maxMacroBytes}`,
      );
    }
    // Postfix knows the queue id from the 2nd RCPT or DATA on, Sendmail already at MAIL; a new
    // MAIL stage without one means the previous message's id no longer applies.
    if (c.stage === 'M' || c.stage === 'R' || c.stage === 'T' || c.stage === 'N' || c.stage === 'E') {
      const qid = this.conv.macros.get('i');
      if (qid) this.ctx.qid = qid;
      else if (c.stage === 'M') delete this.ctx.qid;
    }
    return null;
  }

  /** @internal QUIT_NC: the connection stays for the next SMTP session. */
  async onQuitNc(): Promise<null> {
    await this.conv.close();
    this.conv = this.newConversation();
    return null;
  }

  /** @internal */
  async onEom(c: Cmd<'eom'>): Promise<Buffer[]> {
    // Keep Postfix's content timeout from expiring while rules work (scanning, rewriting).
    const timer = setInterval(() => this.write([enc.progress()]), this.opts.progressIntervalMs);
    let outcome: Outcome;
    try {
      outcome = await this.conv.eom(c.chunk);
    } finally {
      clearInterval(timer);
    }
    if (outcome.action === 'continue' || outcome.action === 'quarantine') {
      // The edits (and a small new body) not written yet go out with the final reply, in one write.
      const tail = await this.sendModifications(outcome.mods);
      if (outcome.action === 'quarantine') {
        if (this.allowed(Action.QUARANTINE, 'quarantine'))
          tail.push(enc.quarantine(`${outcome.quarantine ?? 'held'} (ref ${outcome.ref})`));
        else return [...tail, this.refusalFrame({ ...outcome, action: 'tempfail' })];
      }
      tail.push(enc.continue_());
      return tail;
    }
    return [this.refusalFrame(outcome)];
  }

  /** @internal Run a phase and turn its outcome into the reply frames (none when a no-reply bit is set). */
  async replyTo(what: string, work: Promise<Outcome>, noReplyBit: number): Promise<Buffer[] | null> {
    const outcome = await work;
    if (this.has(noReplyBit)) {
      if (outcome.action !== 'continue' && outcome.action !== 'quarantine' && !DEFERRED_REFUSALS.has(what)) {
        this.log.warn(`${what}: verdict ${outcome.action} cannot be sent (no-reply negotiated)`);
      }
      return null;
    }
    if (outcome.action === 'continue' || outcome.action === 'quarantine') return [enc.continue_()];
    if (outcome.action === 'discard' && (what === 'connect' || what === 'helo')) {
      this.log.warn(`${what}: discard is not possible before MAIL; continuing`);
      return [enc.continue_()];
    }
    return [this.refusalFrame(outcome)];
  }

  private refusalFrame(outcome: Outcome): Buffer {
    if (outcome.action === 'discard') return enc.discard();
    if (outcome.reply) {
      try {
        return enc.replyCode(formatReply(outcome.reply));
      } catch (err) {
        this.log.error(`bad reply ${JSON.stringify(outcome.reply)}: ${(err as Error).message}`);
      }
    }
    return outcome.action === 'reject' ? enc.reject() : enc.tempfail();
  }

  /**
   * Header edits first, then all REPLBODY chunks back to back (Postfix refuses them mixed).
   * Returns the frames not written yet, for the caller to send with its final reply: a write
   * is a system call and a wake-up of the MTA, so what fits in MAX_BODY_CHUNK goes out at once.
   */
  private async sendModifications(mods: Modification[]): Promise<Buffer[]> {
    const leadspc = this.has(Proto.HDR_LEADSPC);
    // headerSafe: a value built from what a client sent (a macro, an address) cannot start a
    // new header field; folding (a line break before a space or tab) stays.
    const value = (v: string) => (leadspc ? ' ' : '') + headerSafe(v).replace(/\r\n/g, '\n');
    const frames: Buffer[] = [];
    let body: Extract<Modification, { type: 'replaceBody' }> | undefined;
    for (const m of mods) {
      switch (m.type) {
        case 'addHeader':
          if (this.allowed(Action.ADDHDRS, m.type)) frames.push(enc.addHeader(m.name, value(m.value)));
          break;
        case 'insertHeader':
          if (this.allowed(Action.ADDHDRS, m.type)) frames.push(enc.insertHeader(m.index, m.name, value(m.value)));
          break;
        case 'changeHeader':
          if (this.allowed(Action.CHGHDRS, m.type))
            frames.push(enc.changeHeader(m.index, m.name, m.value === '' ? '' : value(m.value)));
          break;
        case 'replaceBody':
          if (body) this.log.warn('two rules replaced the body; the last one wins');
          if (this.allowed(Action.CHGBODY, m.type)) body = m;
          break;
      }
    }
    return body ? this.streamBody(body.body.stream(), frames) : frames;
  }

  /** REPLBODY frames of the new body after `queued` (frames not written yet); returns what is still queued. */
  private async streamBody(stream: NodeJS.ReadableStream, queued: Buffer[]): Promise<Buffer[]> {
    const frames = new BodyFrames();
    let queuedBytes = queued.reduce((n, f) => n + f.length, 0);
    const cut = async (final: boolean) => {
      while (frames.ready(final)) {
        for (const piece of frames.next()) {
          queued.push(piece);
          queuedBytes += piece.length;
        }
        if (queuedBytes < MAX_BODY_CHUNK) continue;
        const all = queued;
        queued = [];
        queuedBytes = 0;
        await this.writeAsync(all);
      }
    };
    for await (const chunk of stream) {
      frames.add(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      await cut(false);
    }
    await cut(true);
    return queued;
  }

  // ---------------------------------------------------------------- helpers

  /** @internal */
  has(bit: number): boolean {
    return ((this.negotiated?.protocol ?? 0) & bit) !== 0;
  }

  private allowed(action: number, what: string): boolean {
    if (((this.negotiated?.actions ?? 0) & action) !== 0) return true;
    this.log.error(`cannot ${what}: the MTA did not grant action 0x${action.toString(16)}`);
    return false;
  }

  private expectsReply(type: CommandType): boolean {
    const noReply: Partial<Record<CommandType, number>> = {
      connect: Proto.NR_CONN,
      helo: Proto.NR_HELO,
      mail: Proto.NR_MAIL,
      rcpt: Proto.NR_RCPT,
      data: Proto.NR_DATA,
      header: Proto.NR_HDR,
      eoh: Proto.NR_EOH,
      body: Proto.NR_BODY,
      unknown: Proto.NR_UNKN,
    };
    if (type === 'macro' || type === 'abort' || type === 'quit' || type === 'quitnc') return false;
    if (type === 'optneg' || type === 'eom') return true;
    const bit = noReply[type];
    return bit === undefined || !this.has(bit);
  }

  private write(frames: Buffer[]): void {
    if (this.closed || this.socket.destroyed) return;
    this.send(frames);
  }

  /**
   * One system call for all the pieces: small ones joined, larger ones (a new body's views)
   * corked and written together (writev) rather than copied. False when the socket is full.
   */
  private send(pieces: Buffer[]): boolean {
    if (pieces.length === 1) return this.socket.write(pieces[0]!);
    const bytes = pieces.reduce((n, p) => n + p.length, 0);
    if (bytes <= JOIN_BELOW_BYTES) return this.socket.write(Buffer.concat(pieces, bytes));
    this.socket.cork();
    let ok = true;
    for (const p of pieces) ok = this.socket.write(p);
    this.socket.uncork();
    return ok;
  }

  private async writeAsync(pieces: Buffer[]): Promise<void> {
    if (this.closed || this.socket.destroyed) throw new Error('connection closed while sending the body');
    if (!this.send(pieces)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => (this.socket.off('close', onClose), resolve());
        const onClose = () => (
          this.socket.off('drain', onDrain),
          reject(new Error('connection closed while sending the body'))
        );
        this.socket.once('drain', onDrain);
        this.socket.once('close', onClose);
      });
    }
  }

  private protocolError(err: Error): void {
    this.log.warn(`protocol error, closing connection: ${err.message}`);
    protocolErrorsTotal.inc();
    this.end(true);
  }

  /** @internal */
  end(destroy = false): void {
    if (this.closed) return;
    this.closed = true;
    this.disarm();
    if (destroy) this.socket.destroy();
    else this.socket.end();
  }

  private onSocketClose(): void {
    this.closed = true;
    this.disarm();
    const cleanedUp = this.conv.close().catch((err: unknown) => {
      this.log.warn(`releasing the message on close: ${(err as Error).message}`);
    });
    this.opts.onClose?.(cleanedUp);
  }
}
