// What a policy asks of the MTA in front of relayguard, derived once from the loaded policy and
// used by both `postfix-config` (to write the settings) and `lint-mta` (to check them): where
// the milter listens, how long its phases may take, the largest size limit, who may relay, which
// macros the rules read and what rule 9 implies for TLS.
import type { PolicyConfig } from '../config/schema.js';
import { normalizeDomain } from '../policy/address.js';
import { parseCidr } from '../policy/networks.js';
import type { RuleNeeds } from '../policy/types.js';
import { DEFAULT_MAX_BYTES } from '../rules/size.js';
import { DEFAULT_MIN_VERSION } from '../rules/tls.js';
import { BASE_MACROS } from '../session/negotiate.js';
import { parseListen, type ListenAddress } from '../session/server.js';

/** The MTA must wait longer than relayguard's own deadline, by at least this much, so relayguard's answer arrives. */
const DEADLINE_MARGIN_MS = 10_000;
/** Postfix's defaults; never suggest less. */
const POSTFIX_COMMAND_TIMEOUT_MS = 30_000;
const POSTFIX_CONTENT_TIMEOUT_MS = 300_000;

export type MacroStage = keyof typeof BASE_MACROS;
const MACRO_STAGES = Object.keys(BASE_MACROS) as MacroStage[];

export interface MtaRequirements {
  /** Where the MTA reaches relayguard (a wildcard listen address becomes loopback). */
  milter: ListenAddress;
  /** relayguard's longest deadline for one SMTP command (CONNECT, HELO, MAIL, RCPT). */
  commandDeadlineMs: number;
  /** relayguard's deadline for the message content (end of message). */
  contentDeadlineMs: number;
  /** The largest limit of the size rule; null without an active size rule. */
  sizeLimit: number | null;
  /** networks.internal plus the relay rule's trusted_networks: who may relay by address. */
  relayNetworks: string[];
  /** Domains we accept mail for from anyone (local_domains plus the relay rule's relay_domains). */
  relayDomains: Array<{ domain: string; subdomains: boolean }>;
  /** Macros relayguard reads, per stage (BASE_MACROS plus what the active rules declare). */
  macros: Record<MacroStage, string[]>;
  tls: {
    /** Rule 9 is active. */
    rule: boolean;
    /** Rule 9 requires TLS from some networks or sender domains. */
    required: boolean;
    /** Lowest protocol version to accept (rule 9's min_version, else TLSv1.2). */
    minVersion: string;
    /** Partner domains that must also be reached over TLS (smtp_tls_policy_maps). */
    encryptDomains: string[];
  };
  antivirus: boolean;
  /** relayguard's connection table and idle timeout (server.*): the MTA's process count and idle time must fit. */
  connections: {
    max: number;
    /** null over a unix socket (one local peer, no per-peer limit). */
    perPeer: number | null;
    idleTimeoutMs: number;
  };
}

type RuleConfigs = Record<string, { mode?: string } | undefined>;

/** A rule's configuration when the rule is present and not off (config.rules is keyed by name). */
export function activeRule<T extends object>(config: PolicyConfig, name: string): T | null {
  const r = (config.rules as RuleConfigs)[name];
  if (!r || r.mode === 'off') return null;
  return r as T;
}

/** A wildcard listen host is not an address the MTA can connect to: use loopback. */
function milterAddress(listen: string): ListenAddress {
  const a = parseListen(listen);
  if (a.kind === 'inet' && (a.host === '0.0.0.0' || a.host === '*' || a.host === '')) return { ...a, host: '127.0.0.1' };
  if (a.kind === 'inet' && a.host === '::') return { ...a, host: '::1' };
  return a;
}

/** Largest size limit of a `max_bytes` that is one number or { inbound, outbound }. */
function largestLimit(maxBytes: number | { inbound: number; outbound: number }): number {
  return typeof maxBytes === 'number' ? maxBytes : Math.max(maxBytes.inbound, maxBytes.outbound);
}

/** "{x}" for long macro names, as Postfix and Sendmail spell them. */
function macroName(n: string): string {
  return n.length > 1 && !n.startsWith('{') ? `{${n}}` : n;
}

function neededMacros(needs: ReadonlyArray<RuleNeeds | undefined>): Record<MacroStage, string[]> {
  const out = {} as Record<MacroStage, string[]>;
  for (const stage of MACRO_STAGES) {
    const set = new Set(BASE_MACROS[stage].map(macroName));
    for (const n of needs) for (const m of n?.macros?.[stage] ?? []) set.add(macroName(m));
    out[stage] = [...set];
  }
  return out;
}

/** `needs` are the active rules' declarations (CompiledPolicy.engine.activeRules()); without them only the base macros are listed. */
export function mtaRequirements(config: PolicyConfig, needs: ReadonlyArray<RuleNeeds | undefined> = []): MtaRequirements {
  const { deadlines } = config.server;
  const size = activeRule<{ max_bytes: number | { inbound: number; outbound: number } }>(config, 'size');
  const relay = activeRule<{ relay_domains?: string[]; include_subdomains?: boolean; trusted_networks?: string[] }>(config, 'relay');
  const tls = activeRule<{ require?: { networks?: string[]; sender_domains?: string[] }; min_version?: string }>(config, 'tls');
  const av = activeRule<object>(config, 'antivirus');

  const subdomains = relay?.include_subdomains ?? false;
  const domains = [...new Set([...config.local_domains, ...(relay?.relay_domains ?? [])].map((d) => normalizeDomain(d.replace(/^\*?\./, ''))))];
  const required = (tls?.require?.networks?.length ?? 0) + (tls?.require?.sender_domains?.length ?? 0) > 0;

  return {
    milter: milterAddress(config.server.listen),
    commandDeadlineMs: Math.max(deadlines.connect, deadlines.envelope),
    contentDeadlineMs: deadlines.content,
    sizeLimit: size ? largestLimit(size.max_bytes ?? DEFAULT_MAX_BYTES) : null,
    relayNetworks: [...new Set([...config.networks.internal, ...(relay?.trusted_networks ?? [])])],
    relayDomains: domains.map((domain) => ({ domain, subdomains })),
    macros: neededMacros(needs),
    tls: {
      rule: tls !== null,
      required,
      minVersion: tls?.min_version ?? DEFAULT_MIN_VERSION,
      // Partners that must send to us encrypted are reached encrypted too.
      encryptDomains: (tls?.require?.sender_domains ?? []).map(normalizeDomain),
    },
    antivirus: av !== null,
    connections: {
      max: config.server.max_connections,
      perPeer: config.server.listen.startsWith('unix:') ? null : config.server.max_connections_per_peer,
      idleTimeoutMs: config.server.idle_timeout,
    },
  };
}

/** The MTA's command timeout to suggest: Postfix's default, or longer when relayguard's deadlines need it. */
export function suggestedCommandTimeoutMs(req: MtaRequirements): number {
  return roundUpToSeconds(Math.max(POSTFIX_COMMAND_TIMEOUT_MS, req.commandDeadlineMs + DEADLINE_MARGIN_MS));
}

export function suggestedContentTimeoutMs(req: MtaRequirements): number {
  return roundUpToSeconds(Math.max(POSTFIX_CONTENT_TIMEOUT_MS, req.contentDeadlineMs + DEADLINE_MARGIN_MS));
}

function roundUpToSeconds(ms: number): number {
  return Math.ceil(ms / 1000) * 1000;
}

/** True when every address of `inner` lies in one of `outer` (CIDR strings). */
export function cidrCovered(inner: string, outer: readonly string[]): boolean {
  let a: ReturnType<typeof parseCidr>;
  try {
    a = parseCidr(inner);
  } catch {
    return false;
  }
  return outer.some((o) => {
    try {
      const b = parseCidr(o);
      return a[0].kind() === b[0].kind() && a[1] >= b[1] && (a[0] as { match(range: [unknown, number]): boolean }).match(b);
    } catch {
      return false;
    }
  });
}

/** A policy CIDR in Postfix's mynetworks syntax: IPv6 in brackets. */
export function postfixCidr(cidr: string): string {
  const [addr, bits] = parseCidr(cidr);
  return addr.kind() === 'ipv6' ? `[${addr.toString()}]/${bits}` : `${addr.toString()}/${bits}`;
}

/** Postfix's mynetworks entry back to plain CIDR ("[::1]/128" -> "::1/128"); null for tables (hash:...) and files. */
export function plainCidr(entry: string): string | null {
  const m = /^\[([^\]]+)\](\/\d+)?$/.exec(entry);
  const s = m ? `${m[1]}${m[2] ?? ''}` : entry;
  try {
    parseCidr(s);
    return s;
  } catch {
    return null;
  }
}

/** Where the MTA reaches the milter, in Postfix syntax. */
export function postfixMilterAddress(a: ListenAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return a.host.includes(':') ? `inet:[${a.host}]:${a.port}` : `inet:${a.host}:${a.port}`;
}

/** The same in Sendmail/libmilter syntax (S= of INPUT_MAIL_FILTER). */
export function sendmailMilterAddress(a: ListenAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return a.host.includes(':') ? `inet6:${a.port}@${a.host}` : `inet:${a.port}@${a.host}`;
}
