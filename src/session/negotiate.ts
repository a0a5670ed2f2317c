// Option negotiation: answer the MTA's offer with the intersection of what it offers and what
// the enabled rules need, ask for the macros the rules need per stage, and decide which events
// get no reply. A no-reply bit is a promise, so only bookkeeping events get one.
import { Action, MacroStage, MILTER_MIN_VERSION, MILTER_VERSION, Proto, type MacroStageNumber } from '../protocol/constants.js';
import type { OptnegReply } from '../protocol/encode.js';
import type { Phase, Rule, RuleNeeds } from '../policy/types.js';

/** Macros the session itself needs whatever the rules are: client identity, TLS, auth, queue id. */
export const BASE_MACROS: Record<keyof NonNullable<RuleNeeds['macros']>, string[]> = {
  connect: ['j', '_', '{daemon_name}', '{daemon_addr}', '{client_addr}', '{client_name}', '{client_port}', '{client_ptr}'],
  helo: ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}'],
  envfrom: ['i', '{auth_type}', '{auth_authen}', '{auth_author}', '{mail_addr}', '{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}'],
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

export class NegotiationError extends Error {}

export function negotiate(offer: { version: number; actions: number; protocol: number }, rules: readonly Rule[], handles: (p: Phase) => boolean): Negotiated {
  if (offer.version < MILTER_MIN_VERSION) throw new NegotiationError(`MTA milter protocol version ${offer.version} < ${MILTER_MIN_VERSION}`);
  const version = Math.min(MILTER_VERSION, offer.version);

  let wantedActions = 0;
  let extraProtocol = 0;
  const macros = new Map<MacroStageNumber, Set<string>>();
  for (const [stage, names] of Object.entries(BASE_MACROS)) macros.set(STAGE_NUMBER[stage as keyof typeof BASE_MACROS], new Set(names));
  for (const rule of rules) {
    wantedActions |= rule.needs?.actions ?? 0;
    extraProtocol |= rule.needs?.protocol ?? 0;
    for (const [stage, names] of Object.entries(rule.needs?.macros ?? {})) {
      const set = macros.get(STAGE_NUMBER[stage as keyof typeof BASE_MACROS])!;
      for (const n of names ?? []) set.add(n.length > 1 && !n.startsWith('{') ? `{${n}}` : n);
    }
  }
  wantedActions |= Action.SETSYMLIST;
  const actions = wantedActions & offer.actions;

  // Events: we always need CONNECT, HELO, MAIL, RCPT for the context. Content events are
  // skipped entirely when no rule looks at content.
  const content = handles('header') || handles('eoh') || handles('body') || handles('eom');
  let protocol = Proto.HDR_LEADSPC | extraProtocol;
  // Headers are bookkeeping: refusals found there are answered at EOH.
  protocol |= Proto.NR_HDR;
  if (!handles('unknown')) protocol |= Proto.NOUNKNOWN;
  else protocol |= Proto.NR_UNKN; // EXPN & co are only counted, never answered
  if (!content) protocol |= Proto.NOHDRS | Proto.NOEOH | Proto.NOBODY | Proto.NR_HDR;
  protocol &= offer.protocol;

  const reply: OptnegReply = { version, actions, protocol };
  if (actions & Action.SETSYMLIST) {
    reply.macros = {};
    for (const [stage, set] of macros) reply.macros[stage] = [...set];
  }
  return { version, actions, protocol, reply, missingActions: wantedActions & ~offer.actions & ~Action.SETSYMLIST };
}
