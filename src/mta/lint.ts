// `relayguard lint-mta`: compares Postfix's effective configuration (postconf -n plus Postfix's
// defaults) with what the policy needs, and names for each deviation the line that fixes it.
// Errors are holes (open relay, VRFY, fail-open milter, no size limit); warnings are settings
// that work against relayguard without opening a hole by themselves.
import type { Logger } from 'winston';
import type { PolicyConfig } from '../rules/policy-schema.js';
import type { LintFinding, LintSeverity, PostfixView } from '../policy/rule-parts.js';
import {
  expandParam,
  paramValue,
  parseMilterEntry,
  parsePostconf,
  parsePostfixTime,
  runPostconf,
  splitList,
  type MilterEntry,
  type PostfixParams,
} from './postconf.js';
import {
  mtaRequirements,
  plainCidr,
  postfixMilterAddress,
  suggestedCommandTimeoutMs,
  suggestedContentTimeoutMs,
  type MtaRequirements,
} from './requirements.js';
import { parseListen, type ListenAddress } from '../session/server.js';

export type Severity = LintSeverity;
export type Finding = LintFinding;

/** How long `postconf -n` may take before the lint gives up. */
export const POSTCONF_TIMEOUT_MS = 10_000;

/** Milters that sign with DKIM: relayguard must come before them (its changes must be signed). */
const DKIM_MILTER = [/opendkim/i, /dkim/i, /:8891$/, /rspamd/i, /:11332$/];

/** Milter actions other than tempfail, and why they are not good enough. */
const DEFAULT_ACTION_PROBLEM: Record<string, { severity: Severity; why: string }> = {
  accept: { severity: 'error', why: 'fail-open: when relayguard is down or slow, mail passes unchecked' },
  reject: {
    severity: 'warning',
    why: 'mail is refused for good (5xx) while relayguard is down; tempfail lets senders retry',
  },
  quarantine: {
    severity: 'warning',
    why: 'mail is held unchecked while relayguard is down; tempfail lets senders retry',
  },
};

function milterMatches(entry: MilterEntry, want: ListenAddress, queueDirectory = ''): boolean {
  if (want.kind === 'unix') {
    const path = entry.address.replace(/^(unix|local):/, '');
    // A chrooted smtpd names the socket relative to queue_directory (unix:/relayguard/milter.sock).
    return (
      path === want.path ||
      (path.startsWith('/') && queueDirectory !== '' && `${queueDirectory.replace(/\/+$/, '')}${path}` === want.path)
    );
  }
  let got: ListenAddress;
  try {
    got = parseListen(entry.address.replace(/^inet:\[?localhost\]?:/, 'inet:127.0.0.1:'));
  } catch {
    return false;
  }
  if (got.kind !== 'inet' || got.port !== want.port) return false;
  const loop = (h: string) => h === '127.0.0.1' || h === '::1' || h === 'localhost';
  return got.host === want.host || (loop(got.host) && loop(want.host));
}

function isDkim(entry: MilterEntry): boolean {
  return DKIM_MILTER.some((re) => re.test(entry.address));
}

function setting(name: string, value: string): string {
  return `${name} = ${value}`;
}

/** The effective smtpd TLS level, including the pre-2.3 smtpd_use_tls/smtpd_enforce_tls switches. */
export function tlsLevel(params: PostfixParams): string {
  const level = expandParam(params, 'smtpd_tls_security_level').trim();
  if (level) return level;
  if (/^yes$/i.test(paramValue(params, 'smtpd_enforce_tls'))) return 'encrypt';
  if (/^yes$/i.test(paramValue(params, 'smtpd_use_tls'))) return 'may';
  return 'none';
}

/** Lowest protocol smtpd_tls_protocols lets through ("!SSLv2, !SSLv3" -> TLSv1; ">=TLSv1.2" -> TLSv1.2). */
export function lowestAllowedProtocol(value: string): string {
  const items = splitList(value.replace(/:/g, ' '));
  const ge = items.find((i) => i.startsWith('>='));
  if (ge) return ge.slice(2);
  const excluded = new Set(items.filter((i) => i.startsWith('!')).map((i) => i.slice(1)));
  const included = items.filter((i) => !i.startsWith('!') && !i.startsWith('<'));
  const all = ['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
  const candidates = (included.length ? all.filter((p) => included.includes(p)) : all).filter((p) => !excluded.has(p));
  return candidates[0] ?? 'TLSv1.3';
}

export function lintPostfix(params: PostfixParams, req: MtaRequirements): Finding[] {
  const findings: Finding[] = [];
  const add = (severity: Severity, parameter: string, message: string, fix: string) =>
    findings.push({ severity, parameter, message, fix });

  // ---- no VRFY
  if (!/^yes$/i.test(expandParam(params, 'disable_vrfy_command').trim())) {
    add(
      'error',
      'disable_vrfy_command',
      'VRFY is enabled: anyone can test which addresses exist',
      setting('disable_vrfy_command', 'yes'),
    );
  }

  // ---- what the rules need, in the registry's order
  const view = postfixView(params);
  for (const { def, config } of req.rules) findings.push(...(def.mta?.lintPostfix?.(config, view, req.ctx) ?? []));

  // ---- the milter
  lintMilter(params, req, add);
  lintConnections(params, req, add);
  return findings;
}

/** main.cf as the rules' lint checks read it. */
function postfixView(params: PostfixParams): PostfixView {
  return {
    has: (name) => params.has(name),
    raw: (name) => paramValue(params, name),
    value: (name) => expandParam(params, name),
    list: (name) => splitList(expandParam(params, name)),
    networks: (name) => splitList(expandParam(params, name)).map((entry) => ({ entry, cidr: plainCidr(entry) })),
    tlsLevel: () => tlsLevel(params),
    lowestProtocol: (name) => lowestAllowedProtocol(expandParam(params, name)),
  };
}

type Add = (severity: Severity, parameter: string, message: string, fix: string) => void;

function lintMilter(params: PostfixParams, req: MtaRequirements, add: Add): void {
  const address = postfixMilterAddress(req.milter);
  const entries = splitList(expandParam(params, 'smtpd_milters')).map(parseMilterEntry);
  const fixMilters = (others: MilterEntry[]) =>
    setting('smtpd_milters', [`{ ${address}, default_action=tempfail }`, ...others.map((o) => o.raw)].join(', '));
  const mine = entries.findIndex((e) => milterMatches(e, req.milter, expandParam(params, 'queue_directory')));
  if (mine < 0) {
    add(
      'error',
      'smtpd_milters',
      `relayguard (${address}) is not in smtpd_milters: Postfix does not ask it about anything`,
      fixMilters(entries),
    );
    return;
  }
  const entry = entries[mine]!;
  const dkimBefore = entries.slice(0, mine).find(isDkim);
  if (dkimBefore) {
    add(
      'error',
      'smtpd_milters',
      `relayguard comes after the DKIM milter ${dkimBefore.address}: what relayguard adds to the message (text, headers) breaks the signature`,
      fixMilters(entries.filter((_, i) => i !== mine)),
    );
  }
  const protocol = Number(expandParam(params, 'milter_protocol'));
  if (!(protocol >= 6))
    add(
      'warning',
      'milter_protocol',
      `milter_protocol = ${protocol}: relayguard cannot ask for the macros it needs`,
      setting('milter_protocol', '6'),
    );

  const action = (entry.settings.default_action ?? expandParam(params, 'milter_default_action')).trim().toLowerCase();
  const problem = DEFAULT_ACTION_PROBLEM[action];
  if (problem) {
    const where = entry.settings.default_action
      ? `default_action=${action} for relayguard in smtpd_milters`
      : `milter_default_action = ${action}`;
    add(
      problem.severity,
      entry.settings.default_action ? 'smtpd_milters' : 'milter_default_action',
      `${where}: ${problem.why}`,
      entry.settings.default_action
        ? fixMilters(entries.filter((_, i) => i !== mine))
        : setting('milter_default_action', 'tempfail'),
    );
  }

  const timeouts: Array<[string, string, number, number]> = [
    ['command_timeout', 'milter_command_timeout', req.commandDeadlineMs, suggestedCommandTimeoutMs(req)],
    ['content_timeout', 'milter_content_timeout', req.contentDeadlineMs, suggestedContentTimeoutMs(req)],
  ];
  for (const [own, global, deadline, suggested] of timeouts) {
    const text = entry.settings[own] ?? expandParam(params, global);
    const ms = parsePostfixTime(text);
    if (ms === null) {
      add('warning', global, `${global} "${text}" is not a time`, setting(global, `${suggested / 1000}s`));
    } else if (ms <= deadline) {
      add(
        'warning',
        entry.settings[own] ? 'smtpd_milters' : global,
        `${entry.settings[own] ? `${own}=${text} for relayguard` : `${global} = ${text}`} is not longer than relayguard's deadline of ${deadline / 1000}s: Postfix gives up first and applies the default action`,
        setting(global, `${suggested / 1000}s`),
      );
    }
  }
}

/**
 * Postfix keeps a milter connection per smtpd process for the whole SMTP session: more smtpd
 * processes than relayguard takes connections (from one address) means sessions past that get
 * the milter's default action under load; an smtpd_timeout longer than relayguard's
 * idle_timeout lets a slow client's session lose its milter connection.
 */
function lintConnections(params: PostfixParams, req: MtaRequirements, add: Add): void {
  const procs = Number(expandParam(params, 'default_process_limit'));
  const { max, perPeer, idleTimeoutMs } = req.connections;
  const room = perPeer === null ? max : Math.min(max, perPeer);
  if (Number.isFinite(procs) && procs > room) {
    const which =
      perPeer !== null && perPeer < max ? `max_connections_per_peer (${perPeer})` : `max_connections (${max})`;
    add(
      'warning',
      'default_process_limit',
      `default_process_limit = ${procs}: up to ${procs} smtpd processes may each hold a connection to relayguard, which takes ${which}; sessions past that get the milter default action under load (or raise ${which.split(' ')[0]} in the policy)`,
      setting('default_process_limit', String(room)),
    );
  }
  const idle = parsePostfixTime(expandParam(params, 'smtpd_timeout'));
  if (idle !== null && idle >= idleTimeoutMs) {
    add(
      'warning',
      'smtpd_timeout',
      `smtpd_timeout = ${expandParam(params, 'smtpd_timeout')} is not shorter than relayguard's idle_timeout of ${idleTimeoutMs / 1000}s: a client that waits that long between commands loses its milter connection (or raise idle_timeout in the policy)`,
      setting('smtpd_timeout', `${Math.floor(idleTimeoutMs / 2000)}s`),
    );
  }
}

/** Runs the lint on `postconf -n` output. */
export function lintPostconfText(text: string, config: PolicyConfig): Finding[] {
  return lintPostfix(parsePostconf(text), mtaRequirements(config));
}

export function formatFinding(f: Finding): string {
  return `${f.severity}: ${f.parameter}: ${f.message}\n    fix: ${f.fix}`;
}

/**
 * For `serve` start-up: when this host's Postfix can be asked (postconf runs), log every
 * deviation as a warning. Never throws and never delays start-up for long.
 */
export async function logMtaLint(
  config: PolicyConfig,
  log: Logger,
  opts: { configDir?: string; timeoutMs?: number } = {},
): Promise<Finding[]> {
  if (config.mta.kind !== 'postfix') return [];
  const configDir = opts.configDir ?? (process.env.MAIL_CONFIG || config.mta.config_directory);
  let text: string;
  try {
    text = await runPostconf({
      program: config.mta.postconf,
      configDir,
      timeoutMs: opts.timeoutMs ?? POSTCONF_TIMEOUT_MS,
    });
  } catch (err) {
    log.info(`mta lint skipped: ${(err as Error).message}`);
    return [];
  }
  const findings = lintPostconfText(text, config);
  for (const f of findings)
    log.warn(`mta lint (${configDir}): ${f.severity}: ${f.parameter}: ${f.message}; fix: ${f.fix}`, {
      lint: f.severity,
      parameter: f.parameter,
    });
  if (!findings.length) log.info(`mta lint (${configDir}): Postfix settings match the policy`);
  return findings;
}

/** The same check in the shape of serve's `startupChecks` entries. */
export async function mtaLintStartupCheck(config: PolicyConfig, log: Logger): Promise<void> {
  await logMtaLint(config, log);
}
