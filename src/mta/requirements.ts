// What a policy asks of the MTA in front of relayguard, derived once from the loaded policy and
// used by both `postfix-config` (to write the settings) and `lint-mta` (to check them): where
// the milter listens, how long its phases may take, which macros the rules read, and each
// registered rule with its configuration, whose `mta` part says what else the rule needs.
import type { PolicyConfig } from '../rules/policy-schema.js';
import { parseCidr } from '../primitives/networks.js';
import type { MtaContext } from '../policy/rule-parts.js';
import type { RuleNeeds } from '../policy/types.js';
import { RULES } from '../rules/index.js';
import type { RuleDefinition } from '../policy/rule-env.js';
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
  /** Macros relayguard reads, per stage (BASE_MACROS plus what the active rules declare). */
  macros: Record<MacroStage, string[]>;
  /** Every registered rule with its configuration (null when off or absent), in the registry's order. */
  rules: ConfiguredRule[];
  /** What the rules' MTA parts get besides their configuration. */
  ctx: MtaContext;
  /** relayguard's connection table and idle timeout (server.*): the MTA's process count and idle time must fit. */
  connections: {
    max: number;
    /** null over a unix socket (one local peer, no per-peer limit). */
    perPeer: number | null;
    idleTimeoutMs: number;
  };
}

export interface ConfiguredRule {
  def: RuleDefinition;
  /** The rule's block under `rules:` as parsed by its schema; null when the rule is off or absent. */
  config: unknown;
}

/** Each registered rule with its configuration in `config` (null when off or absent). */
export function configuredRules(config: PolicyConfig): ConfiguredRule[] {
  const blocks = config.rules as Record<string, { mode?: string } | undefined>;
  return RULES.map((def) => {
    const block = blocks[def.name];
    return { def, config: block && block.mode !== 'off' ? block : null };
  });
}

/** A wildcard listen host is not an address the MTA can connect to: use loopback. */
function milterAddress(listen: string): ListenAddress {
  const a = parseListen(listen);
  if (a.kind === 'inet' && (a.host === '0.0.0.0' || a.host === '*' || a.host === ''))
    return { ...a, host: '127.0.0.1' };
  if (a.kind === 'inet' && a.host === '::') return { ...a, host: '::1' };
  return a;
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
export function mtaRequirements(
  config: PolicyConfig,
  needs: ReadonlyArray<RuleNeeds | undefined> = [],
): MtaRequirements {
  const { deadlines } = config.server;
  return {
    milter: milterAddress(config.server.listen),
    commandDeadlineMs: Math.max(deadlines.connect, deadlines.envelope),
    contentDeadlineMs: deadlines.content,
    macros: neededMacros(needs),
    rules: configuredRules(config),
    ctx: { policy: config, postfixCidr },
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

/** A policy CIDR in Postfix's mynetworks syntax: IPv6 in brackets. */
function postfixCidr(cidr: string): string {
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
