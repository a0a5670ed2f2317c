// Option negotiation: answer the MTA's offer with the intersection of what it offers and what
// the enabled rules need, ask for the macros the rules need per stage, tell the MTA not to send
// events nobody reads, and decide which events get no reply. A no-reply bit is a promise, so
// only events no rule judges get one, and only over a unix socket (see NO_REPLY_TRANSPORTS).
// The answer depends only on the policy and the offer, so it is computed once per policy and
// offer (negotiateCached), not per connection.
import {
  Action,
  MacroStage,
  MILTER_MIN_VERSION,
  MILTER_VERSION,
  Proto,
  type MacroStageNumber,
} from '../protocol/constants.js';
import * as enc from '../protocol/encode.js';
import type { OptnegReply } from '../protocol/encode.js';
import type { ActionNeed, MessageEvent, Phase, ProtocolNeed, Rule, RuleNeeds } from '../policy/types.js';

/** The kind of socket a session serves. */
export type Transport = 'unix' | 'inet';

/**
 * Transports on which events no rule judges are negotiated without a reply. Over TCP, Postfix
 * then writes commands back to back and waits on Nagle/delayed ACK (bench/RESULTS.md, "1. Trace
 * header only", measured slower over TCP).
 */
const NO_REPLY_TRANSPORTS: ReadonlySet<Transport> = new Set(['unix']);

/** Distinct MTA offers remembered per policy (one MTA sends the same offer every time). */
const MAX_CACHED_OFFERS = 16;

/** The milter action bits (SMFIF_*) behind the words rules use in `needs.actions`. */
const ACTION_BITS: Readonly<Record<ActionNeed, number>> = {
  addHeader: Action.ADDHDRS,
  changeHeader: Action.CHGHDRS,
  replaceBody: Action.CHGBODY,
  quarantine: Action.QUARANTINE,
};

/** The protocol bits (SMFIP_*) behind the words of `needs.protocol`. */
const PROTOCOL_BITS: Readonly<Record<ProtocolNeed, number>> = {
  refusedRecipients: Proto.RCPT_REJ,
};

/** The bits of `table` for `words` (0 for none). */
function bitsOf<W extends string>(table: Readonly<Record<W, number>>, words: ReadonlyArray<W> | undefined): number {
  let bits = 0;
  for (const w of words ?? []) bits |= table[w];
  return bits;
}

/** Phases whose handlers look at message content (headers, body). */
const CONTENT_PHASES: readonly Phase[] = ['header', 'eoh', 'body', 'eom'];

/** Macros the session itself needs whatever the rules are: client identity, TLS, auth, queue id. */
export const BASE_MACROS: Record<keyof NonNullable<RuleNeeds['macros']>, string[]> = {
  connect: [
    'j',
    '_',
    '{daemon_name}',
    '{daemon_addr}',
    '{client_addr}',
    '{client_name}',
    '{client_port}',
    '{client_ptr}',
  ],
  helo: ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}'],
  envfrom: [
    'i',
    '{auth_type}',
    '{auth_authen}',
    '{auth_author}',
    '{mail_addr}',
    '{tls_version}',
    '{cipher}',
    '{cipher_bits}',
    '{cert_subject}',
    '{cert_issuer}',
  ],
  envrcpt: ['i', '{rcpt_addr}', '{rcpt_host}', '{rcpt_mailer}'],
  data: ['i'],
  eoh: ['i'],
  eom: ['i'],
};

const STAGE_NUMBER: Record<keyof typeof BASE_MACROS, MacroStageNumber> = {
  connect: MacroStage.CONNECT,
  helo: MacroStage.HELO,
  envfrom: MacroStage.MAIL,
  envrcpt: MacroStage.RCPT,
  data: MacroStage.DATA,
  eoh: MacroStage.EOH,
  eom: MacroStage.EOM,
};

export interface Negotiated {
  version: number;
  actions: number;
  protocol: number;
  reply: OptnegReply;
  /** Actions the rules wanted but the MTA did not offer (logged: a feature is degraded). */
  missingActions: number;
}

/** What the active rules read of a message, beyond the phases they handle. */
export interface EventNeeds {
  helo: boolean;
  data: boolean;
  headers: boolean;
  eoh: boolean;
  body: boolean;
  /** Keep the body received (a rule reads it at end of message, or may: no declaration). */
  storeBody: boolean;
  unknown: boolean;
}

export class NegotiationError extends Error {}

/** Which events the rules need, from their handlers and their `needs.events` declarations. */
export function eventNeeds(rules: readonly Rule[], handles: (p: Phase) => boolean): EventNeeds {
  const reads = (event: MessageEvent, contentOnly: boolean) =>
    rules.some((r) => {
      const declared = r.needs?.events;
      if (declared) return declared.includes(event);
      return !contentOnly || CONTENT_PHASES.some((p) => p in r.handlers);
    });
  const storeBody = reads('body', true);
  return {
    helo: handles('helo') || reads('helo', false),
    data: handles('data'),
    headers: handles('header') || reads('headers', true),
    eoh: handles('eoh'),
    body: handles('body') || storeBody,
    storeBody,
    unknown: handles('unknown'),
  };
}

export function negotiate(
  offer: { version: number; actions: number; protocol: number },
  rules: readonly Rule[],
  handles: (p: Phase) => boolean,
  transport: Transport = 'inet',
): Negotiated {
  if (offer.version < MILTER_MIN_VERSION)
    throw new NegotiationError(`MTA milter protocol version ${offer.version} < ${MILTER_MIN_VERSION}`);
  const version = Math.min(MILTER_VERSION, offer.version);

  let wantedActions = 0;
  let extraProtocol = 0;
  const macros = new Map<MacroStageNumber, Set<string>>();
  for (const [stage, names] of Object.entries(BASE_MACROS))
    macros.set(STAGE_NUMBER[stage as keyof typeof BASE_MACROS], new Set(names));
  for (const rule of rules) {
    wantedActions |= bitsOf(ACTION_BITS, rule.needs?.actions);
    extraProtocol |= bitsOf(PROTOCOL_BITS, rule.needs?.protocol);
    for (const [stage, names] of Object.entries(rule.needs?.macros ?? {})) {
      const set = macros.get(STAGE_NUMBER[stage as keyof typeof BASE_MACROS])!;
      for (const n of names ?? []) set.add(n.length > 1 && !n.startsWith('{') ? `{${n}}` : n);
    }
  }
  wantedActions |= Action.SETSYMLIST;
  const actions = wantedActions & offer.actions;

  // Events: CONNECT, MAIL and RCPT always (the context: client, envelope, direction). The
  // others only when a rule handles their phase or reads what they carry.
  const need = eventNeeds(rules, handles);
  let protocol = Proto.HDR_LEADSPC | extraProtocol;
  // Headers are bookkeeping: refusals found there are answered at EOH.
  protocol |= Proto.NR_HDR;
  if (!need.unknown) protocol |= Proto.NOUNKNOWN;
  else protocol |= Proto.NR_UNKN; // EXPN & co are only counted, never answered
  if (!need.helo) protocol |= Proto.NOHELO;
  if (!need.data) protocol |= Proto.NODATA;
  if (!need.headers) protocol |= Proto.NOHDRS;
  if (!need.eoh) protocol |= Proto.NOEOH;
  if (!need.body) protocol |= Proto.NOBODY;
  if (NO_REPLY_TRANSPORTS.has(transport)) protocol |= noReplyBits(handles);
  protocol &= offer.protocol;

  const reply: OptnegReply = { version, actions, protocol };
  if (actions & Action.SETSYMLIST) {
    reply.macros = {};
    for (const [stage, set] of macros) reply.macros[stage] = [...set];
  }
  return { version, actions, protocol, reply, missingActions: wantedActions & ~offer.actions & ~Action.SETSYMLIST };
}

/**
 * No-reply bits for the events no rule judges: the session's answer would always be "continue".
 * A refusal pending from the headers (a header flood) is answered at the next event that gets
 * a reply, at the latest at end of message, so EOH goes without a reply only when no rule
 * judges headers either, and BODY only when no rule judges the body.
 */
function noReplyBits(handles: (p: Phase) => boolean): number {
  let bits = 0;
  if (!handles('connect')) bits |= Proto.NR_CONN;
  if (!handles('helo')) bits |= Proto.NR_HELO;
  if (!handles('envfrom')) bits |= Proto.NR_MAIL;
  if (!handles('envrcpt')) bits |= Proto.NR_RCPT;
  if (!handles('data')) bits |= Proto.NR_DATA;
  if (!handles('header') && !handles('eoh')) bits |= Proto.NR_EOH;
  if (!handles('body')) bits |= Proto.NR_BODY;
  return bits;
}

/** A negotiation with its encoded OPTNEG frame, shared by every session of one policy. */
export interface CachedNegotiation {
  readonly negotiated: Readonly<Negotiated>;
  readonly frame: Buffer;
}

interface PolicyNegotiations {
  needs: EventNeeds;
  byOffer: Map<string, CachedNegotiation>;
}

/** The rules a policy runs, as the session sees them (a compiled policy's engine). */
export interface NegotiationSource {
  activeRules(): readonly Rule[];
  handles(p: Phase): boolean;
}

/** Keyed by the policy's engine: a reload compiles a new engine, the old entry goes with it. */
const perPolicy = new WeakMap<NegotiationSource, PolicyNegotiations>();

function entryOf(engine: NegotiationSource): PolicyNegotiations {
  let entry = perPolicy.get(engine);
  if (!entry) {
    entry = { needs: eventNeeds(engine.activeRules(), (p) => engine.handles(p)), byOffer: new Map() };
    perPolicy.set(engine, entry);
  }
  return entry;
}

/** What the policy's rules read (computed once per policy). */
export function policyEventNeeds(engine: NegotiationSource): EventNeeds {
  return entryOf(engine).needs;
}

/** negotiate(), computed once per policy, MTA offer and transport. Throws NegotiationError. */
export function negotiateCached(
  engine: NegotiationSource,
  offer: { version: number; actions: number; protocol: number },
  transport: Transport,
): CachedNegotiation {
  const { byOffer } = entryOf(engine);
  const key = `${offer.version}:${offer.actions}:${offer.protocol}:${transport}`;
  let hit = byOffer.get(key);
  if (!hit) {
    const negotiated = negotiate(offer, engine.activeRules(), (p) => engine.handles(p), transport);
    hit = { negotiated: Object.freeze(negotiated), frame: enc.optneg(negotiated.reply) };
    if (byOffer.size >= MAX_CACHED_OFFERS) byOffer.delete(byOffer.keys().next().value!);
    byOffer.set(key, hit);
  }
  return hit;
}
