// The contract between the session, the engine and the rules. Rules see only these types.
import type { Readable } from 'node:stream';
import type { Logger } from 'winston';
import type { Address } from '../primitives/address.js';

export type Phase = 'connect' | 'helo' | 'envfrom' | 'envrcpt' | 'data' | 'header' | 'eoh' | 'body' | 'eom' | 'unknown';

export type Direction = 'inbound' | 'outbound';
export type RuleMode = 'enforce' | 'monitor' | 'off';

/** What a rule decides. `continue` is "no objection". */
export type ActionKind = 'continue' | 'reject' | 'tempfail' | 'discard' | 'quarantine';

/** Why a non-continue verdict happened: policy refusals map to 5xx, dependency failures to 4xx. */
export type Cause = 'policy' | 'dependency' | 'internal';

export interface SmtpOverride {
  code?: number; // e.g. 552
  enhanced?: string; // e.g. "5.3.4"
}

export type Modification =
  | { type: 'addHeader'; name: string; value: string }
  | { type: 'insertHeader'; index: number; name: string; value: string }
  /** index is 1-based among headers of that name; empty value deletes. */
  | { type: 'changeHeader'; name: string; index: number; value: string }
  /** A new body (everything after the header block). Produced lazily at end of message. */
  | { type: 'replaceBody'; body: BodySource };

export interface BodySource {
  size: number;
  stream(): Readable;
  /** Releases what the body holds; the engine calls it when it drops the change (monitor mode). */
  dispose?(): void;
}

export interface Verdict {
  action: ActionKind;
  /** Short human reason: goes to the log and, for refusals, to the SMTP reply text. */
  reason?: string;
  cause?: Cause;
  smtp?: SmtpOverride;
  /** Modifications (end of message only; ignored elsewhere and in monitor mode). */
  mods?: Modification[];
  /** Extra facts for the trace (list name, virus name, matched pattern...). */
  details?: Record<string, unknown>;
}

export const pass = (details?: Record<string, unknown>): Verdict =>
  details ? { action: 'continue', details } : { action: 'continue' };
export const reject = (reason: string, smtp?: SmtpOverride, details?: Record<string, unknown>): Verdict => ({
  action: 'reject',
  reason,
  cause: 'policy',
  ...(smtp ? { smtp } : {}),
  ...(details ? { details } : {}),
});
export const tempfail = (
  reason: string,
  cause: Cause = 'dependency',
  smtp?: SmtpOverride,
  details?: Record<string, unknown>,
): Verdict => ({
  action: 'tempfail',
  reason,
  cause,
  ...(smtp ? { smtp } : {}),
  ...(details ? { details } : {}),
});
export const quarantine = (reason: string, details?: Record<string, unknown>): Verdict => ({
  action: 'quarantine',
  reason,
  cause: 'policy',
  ...(details ? { details } : {}),
});
export const discard = (reason: string, details?: Record<string, unknown>): Verdict => ({
  action: 'discard',
  reason,
  cause: 'policy',
  ...(details ? { details } : {}),
});
export const modify = (mods: Modification[], details?: Record<string, unknown>): Verdict => ({
  action: 'continue',
  mods,
  ...(details ? { details } : {}),
});

export type { Address };

export interface TlsInfo {
  version: string; // "TLSv1.3"
  cipher?: string;
  bits?: number;
  certSubject?: string;
  certIssuer?: string;
  verify?: string;
}

export interface ClientInfo {
  /** Normalised IP (IPv4-mapped -> IPv4, "IPv6:" prefix removed), or null for unix/unknown. */
  ip: string | null;
  hostname: string;
  port: number;
  family: 'inet' | 'inet6' | 'unix' | 'unknown';
}

export interface MacroReader {
  /** Looks `name` and `{name}` up, most recent stage first. */
  get(name: string): string | undefined;
}

/** Per-connection facts. Survives several messages; reset by QUIT_NC. */
export interface ConnectionContext {
  readonly id: string;
  client: ClientInfo;
  helo?: string;
  tls?: TlsInfo;
  /** SASL login ({auth_authen}), once known (MAIL stage). */
  authUser?: string;
  readonly macros: MacroReader;
  /** Client IP is in the policy's internal networks. */
  internalNetwork: boolean;
  /** Named network groups the client is in (e.g. "partner"). */
  networkGroups: string[];
  /** Per-rule scratch space that lives as long as the connection. */
  readonly state: Map<string, unknown>;
  log: Logger;
}

export interface Header {
  name: string;
  /** Value without the single leading space after the colon; folded lines joined with "\n". */
  value: string;
}

export interface Recipient {
  address: Address;
  args: string[];
  /** Set once the recipient was refused (by us, in enforce mode). */
  refused?: boolean;
}

/** Read access to the message as received (headers reconstructed + CRLF + body). */
export interface MessageSource {
  /** Bytes of the body received so far. */
  readonly bodySize: number;
  /** Body only. Valid from end of message on. */
  body(): Readable;
  /** The whole message: header block, blank line, body. Valid from end of message on. */
  message(): Readable;
  /** The reconstructed header block, CRLF line ends, with the final blank line. */
  headerBlock(): Buffer;
  /**
   * The message as pieces in memory (header block, then the body's chunks), or null when the
   * body was spilled to disk: readers that can work synchronously skip the stream machinery.
   */
  inMemory?(): { header: Buffer; body: readonly Buffer[] } | null;
}

/** Per-message facts. Reset by ABORT, the next MAIL, QUIT and QUIT_NC. */
export interface MessageContext {
  queueId?: string;
  sender?: Address;
  senderArgs: string[];
  /** ESMTP parameters of MAIL FROM, upper-case keys (SIZE, BODY, ...). */
  senderParams: Record<string, string>;
  recipients: Recipient[];
  headers: Header[];
  direction: Direction;
  readonly source: MessageSource;
  readonly state: Map<string, unknown>;
  log: Logger;
}

/** What a phase handler gets; PhaseInputs says which parts each phase always has. */
export interface PhaseInput {
  conn: ConnectionContext;
  /** Present from envfrom on. */
  msg?: MessageContext;
  /** The recipient being judged (envrcpt only). */
  rcpt?: Recipient;
  /** The header just received (header only). */
  header?: Header;
  /** The body chunk just received (body only). */
  chunk?: Buffer;
  /** The command verb (unknown only), e.g. "EXPN". */
  command?: string;
  /** Deadline of this phase. Pass it to every I/O. */
  signal: AbortSignal;
}

/** A phase of a message (from envfrom on): its message is always there. */
interface MessagePhaseInput extends PhaseInput {
  msg: MessageContext;
}

/** The input of each phase, as the session builds it. */
export interface PhaseInputs {
  connect: PhaseInput;
  helo: PhaseInput;
  envfrom: MessagePhaseInput;
  envrcpt: MessagePhaseInput & { rcpt: Recipient };
  data: MessagePhaseInput;
  header: MessagePhaseInput & { header: Header };
  eoh: MessagePhaseInput;
  body: MessagePhaseInput & { chunk: Buffer };
  eom: MessagePhaseInput;
  /** An unknown command may come before MAIL (no message) or inside a transaction. */
  unknown: PhaseInput & { command: string };
}

export type PhaseHandler<P extends Phase = Phase> = (input: PhaseInputs[P]) => Promise<Verdict>;

/** A rule's handlers, each typed by its phase (an envfrom handler always has `msg`). */
export type PhaseHandlers = { [P in Phase]?: PhaseHandler<P> };

/** Milter capabilities a rule needs, so the session negotiates only what is used. */
export interface RuleNeeds {
  /** Macro names per stage: connect helo envfrom envrcpt data eoh eom. */
  macros?: Partial<Record<'connect' | 'helo' | 'envfrom' | 'envrcpt' | 'data' | 'eoh' | 'eom', string[]>>;
  /** What the rule may do to a message at its end; the session turns the words into milter action bits. */
  actions?: ReadonlyArray<ActionNeed>;
  /** Extra events: 'refusedRecipients' also shows the rule recipients the MTA itself refused. */
  protocol?: ReadonlyArray<ProtocolNeed>;
  /**
   * What the rule reads beyond the phases it has handlers for, so the session can tell the MTA
   * not to send the rest: 'helo' (conn.helo), 'headers' (msg.headers, source.headerBlock()),
   * 'body' (source.body(), source.message(), source.bodySize). Left out, the rule gets HELO and,
   * if it has a header, eoh, body or eom handler, the headers and the body (the safe default).
   * `[]` for a rule that reads only the connection and the envelope.
   */
  events?: ReadonlyArray<MessageEvent>;
}

/**
 * Changes a rule may make at end of message: addHeader (also insertHeader), changeHeader (also
 * deleting a header), replaceBody, quarantine.
 */
export type ActionNeed = 'addHeader' | 'changeHeader' | 'replaceBody' | 'quarantine';

/** Protocol extras a rule may ask for (see RuleNeeds.protocol). */
export type ProtocolNeed = 'refusedRecipients';

/** Events a rule can read without handling their phase (see RuleNeeds.events). */
export type MessageEvent = 'helo' | 'headers' | 'body';

export interface Rule {
  /** Stable name, used in config, logs, traces and metrics. */
  readonly name: string;
  readonly mode: RuleMode;
  readonly needs?: RuleNeeds;
  readonly handlers: Readonly<PhaseHandlers>;
  /**
   * End of message, after every rule's verdict: `mods` are all modifications of the accepted
   * message (read-only). For what must cover the message as delivered (an ARC seal, a DKIM
   * signature). Enforce mode only; runs after the eom handlers of all rules.
   */
  finish?(
    input: PhaseInputs['eom'],
    mods: readonly Modification[],
  ): Promise<{ mods: Modification[]; details?: Record<string, unknown> }>;
  /** Events outside a phase verdict: the engine tells rules what happened, e.g. for the offender ledger. */
  onOutcome?(event: OutcomeEvent): void | Promise<void>;
  /**
   * The message is over, however it ended: end of message, ABORT, RSET, the next MAIL, QUIT or a
   * dropped connection. Synchronous so no cleanup is ever awaited on the protocol path; for
   * releasing per-message resources (a clamd stream) that no later phase would release.
   */
  onMessageEnd?(conn: ConnectionContext, msg: MessageContext): void;
  /** Release sockets, timers, databases. */
  close?(): void | Promise<void>;
}

export interface OutcomeEvent {
  conn: ConnectionContext;
  msg?: MessageContext;
  phase: Phase;
  action: ActionKind;
  rule?: string;
  reason?: string;
}

export interface TraceEntry {
  rule: string;
  phase: Phase;
  action: ActionKind;
  reason?: string;
  /** True when the rule is in monitor mode: it would have done `action`, nothing changed. */
  monitor?: boolean;
  ms: number;
  details?: Record<string, unknown>;
  recipient?: string;
}
