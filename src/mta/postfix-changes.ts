// `relayguard postfix-config` as changes to the Postfix an admin already has: every setting the
// policy needs (postfixConfigLines) is compared with what Postfix uses now (`postconf -n` plus
// Postfix's defaults), and only the ones that differ are kept, as `postconf -e` commands. Where
// the admin's own value can be kept and extended (macro lists, other milters, relay domains) it
// is; a change that widens or replaces what the admin has is flagged so nobody runs it blind.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TLS_PROTOCOLS, tlsRank } from '../primitives/tls-version.js';
import { lintPostfix, lowestAllowedProtocol, tlsLevel } from './lint.js';
import { chrootInfo, insideJail, type ChrootInfo } from './master-cf.js';
import { MACRO_PARAMETER, postfixConfigLines, type ConfigLine } from './postfix-config.js';
import {
  expandParam,
  paramValue,
  parseMilterEntry,
  parsePostconf,
  parsePostfixTime,
  runPostconf,
  splitList,
  type PostfixParams,
} from './postconf.js';
import { plainCidr, postfixMilterAddress, type MtaRequirements } from './requirements.js';

/** The directory `postconf` uses when given none; `-c` is printed only for another one. */
const DEFAULT_POSTFIX_CONFIG_DIR = '/etc/postfix';

export interface PostfixChange {
  name: string;
  /** The value to set. */
  value: string;
  /** Which rule needs it, and why. */
  why: string;
  /** What Postfix uses now (the main.cf value, else its default; "" when empty). */
  current: string;
  /** True when main.cf sets it (postconf -n lists it), false when Postfix's default applies. */
  configured: boolean;
  /** Set for a change that widens or replaces what the admin has: what it does. */
  flag?: string;
  /** Printed commented out and never applied: the value depends on the site (certificates). */
  suggestion?: boolean;
}

const macroItems = (v: string) => splitList(v);
const union = (a: readonly string[], b: readonly string[]) => [...new Set([...a, ...b])];
const lower = (items: readonly string[]) => items.map((i) => i.toLowerCase());

/** The parameters the lint reports something about (the lint is the judge of "right" where it has an opinion). */
function linted(params: PostfixParams, req: MtaRequirements): Set<string> {
  return new Set(lintPostfix(params, req).map((f) => f.parameter));
}

/** mynetworks entries as plain CIDR (tables and files kept as written). */
function networkSet(value: string): string[] {
  return splitList(value).map((e) => plainCidr(e) ?? e);
}

function describe(list: readonly string[]): string {
  return list.length ? list.join(', ') : '(none)';
}

/**
 * The changes `postconf -n` (parsed into `params`) needs for the policy's requirements. Each
 * setting of postfixConfigLines() is either already right (dropped), merged with the admin's
 * value, or replaced (then flagged: decide() says what it replaces).
 */
export function postfixChanges(req: MtaRequirements, params: PostfixParams, chroot?: ChrootInfo): PostfixChange[] {
  const view = chrootView(req, chroot);
  const lint = linted(params, view.req);
  const out: PostfixChange[] = [];
  for (const line of postfixConfigLines(view.req)) {
    const adjusted =
      line.name === 'non_smtpd_milters' && view.nonSmtpd
        ? { ...line, value: view.nonSmtpd.value, why: `${line.why}; ${view.nonSmtpd.why}` }
        : line;
    const change = decide(adjusted, params, view.req, lint);
    if (change) out.push(change);
  }
  return out;
}

/**
 * The socket as the MTA's processes see it: a chrooted smtpd names a socket under
 * queue_directory relative to it (unix:/relayguard/milter.sock); when cleanup (which runs
 * non_smtpd_milters) is chrooted differently from smtpd, non_smtpd_milters names it its own way.
 */
export function chrootView(
  req: MtaRequirements,
  chroot?: ChrootInfo,
): { req: MtaRequirements; nonSmtpd?: { value: string; why: string }; note?: string } {
  if (!chroot || req.milter.kind !== 'unix') return { req };
  const inside = insideJail(req.milter.path, chroot.queueDirectory);
  const view = chroot.smtpd && inside ? { ...req, milter: { kind: 'unix' as const, path: inside } } : req;
  const out: { req: MtaRequirements; nonSmtpd?: { value: string; why: string }; note?: string } = { req: view };
  if (chroot.smtpd && !inside) {
    out.note = `smtpd runs chrooted in ${chroot.queueDirectory} (master.cf) and cannot reach ${req.milter.path}: listen under it, e.g. server.listen: unix:${chroot.queueDirectory.replace(/\/+$/, '')}/relayguard/milter.sock`;
  }
  if (chroot.smtpd !== chroot.cleanup) {
    const path = chroot.cleanup ? (inside ?? req.milter.path) : req.milter.path;
    out.nonSmtpd = {
      value: `{ unix:${path}, default_action=tempfail }`,
      why: `cleanup runs ${chroot.cleanup ? 'chrooted' : 'outside the chroot'} (master.cf), so it names the socket ${path}`,
    };
  }
  return out;
}

function decide(
  line: ConfigLine,
  params: PostfixParams,
  req: MtaRequirements,
  lint: Set<string>,
): PostfixChange | null {
  const { name } = line;
  const current = paramValue(params, name);
  const expanded = expandParam(params, name).trim();
  const base: PostfixChange = {
    name,
    value: line.value,
    why: line.why,
    current,
    configured: params.has(name),
    ...(line.suggestion ? { suggestion: true } : {}),
  };
  const replaced = (what: string) => ({
    ...base,
    flag: `${base.configured ? 'replaces your' : "replaces Postfix's default"} ${name} = ${current || '(empty)'}: ${what}`,
  });

  switch (name) {
    case 'disable_vrfy_command':
      return /^yes$/i.test(expanded) ? null : base;
    case 'mynetworks': {
      const want = networkSet(line.value);
      const have = base.configured ? networkSet(expanded) : [];
      if (base.configured && want.length === have.length && want.every((w) => have.includes(w))) return null;
      if (!base.configured && !lint.has('mynetworks')) return null;
      const dropped = have.filter((h) => !want.includes(h));
      const added = want.filter((w) => !have.includes(w));
      const parts = [
        dropped.length ? `${describe(dropped)} would no longer relay by address` : '',
        added.length ? `widens: ${describe(added)} may relay by address` : '',
      ].filter(Boolean);
      return replaced(
        parts.join('; ') ||
          `mynetworks_style = ${paramValue(params, 'mynetworks_style')} is replaced by an explicit list`,
      );
    }
    case 'relay_domains': {
      // Mail for the policy's domains must be accepted; the admin's other domains stay.
      const accepted = lower(
        ['relay_domains', 'mydestination', 'virtual_alias_domains', 'virtual_mailbox_domains'].flatMap((p) =>
          splitList(expandParam(params, p)),
        ),
      );
      const want = splitList(line.value);
      const missing = want.filter((d) => !accepted.includes(d.toLowerCase()));
      if (!missing.length) return null;
      const keep = splitList(current);
      return {
        ...base,
        value: union(keep, missing).join(', '),
        flag: `widens relay_domains: Postfix accepts mail for ${describe(missing)} from anyone (${keep.length ? `keeps ${describe(keep)}` : 'was empty'})`,
      };
    }
    case 'smtpd_relay_restrictions':
      return lint.has('smtpd_relay_restrictions') || lint.has('smtpd_recipient_restrictions')
        ? replaced('Postfix itself must refuse unauthorised relaying')
        : null;
    case 'message_size_limit': {
      // A larger limit than needed is the admin's choice (relayguard still decides below it); 0 is unlimited.
      const have = Number(expanded);
      return expanded !== '' && have !== 0 && have >= Number(line.value)
        ? null
        : { ...base, why: `${line.why} (now ${expanded || '(empty)'})` };
    }
    case 'mailbox_size_limit': {
      const have = Number(expanded);
      return have === 0 || have >= Number(line.value) ? null : base;
    }
    case 'smtpd_milters': {
      if (!lint.has('smtpd_milters')) return null;
      // relayguard first, the admin's other milters after it in their order.
      const others = splitList(expanded)
        .map(parseMilterEntry)
        .filter((e) => !sameMilter(e.address, postfixMilterAddress(req.milter)));
      return { ...base, value: [line.value, ...others.map((o) => o.raw)].join(', ') };
    }
    case 'non_smtpd_milters': {
      const address =
        line.value === '$smtpd_milters' ? postfixMilterAddress(req.milter) : parseMilterEntry(line.value).address;
      if (
        line.value === '$smtpd_milters' &&
        (current.trim() === '$smtpd_milters' || current.trim() === '${smtpd_milters}')
      )
        return null;
      return splitList(expanded)
        .map(parseMilterEntry)
        .some((e) => sameMilter(e.address, address))
        ? null
        : base;
    }
    case 'milter_protocol':
      return Number(expanded) >= Number(line.value) ? null : base;
    case 'milter_default_action':
      return expanded.toLowerCase() === line.value ? null : base;
    case 'milter_command_timeout':
    case 'milter_content_timeout': {
      const have = parsePostfixTime(expanded);
      const want = parsePostfixTime(line.value)!;
      return have !== null && have >= want ? null : base;
    }
    case 'smtpd_tls_security_level': {
      const level = tlsLevel(params);
      return level === 'may' || level === 'encrypt' ? null : base;
    }
    case 'smtpd_tls_protocols':
    case 'smtpd_tls_mandatory_protocols': {
      const lowest = lowestAllowedProtocol(expanded);
      // The wanted value excludes every protocol below the floor the policy asks for.
      const min = tlsRank(lowestAllowedProtocol(line.value)) ?? 0;
      if ((tlsRank(lowest) ?? 0) >= min) return null;
      const lost = TLS_PROTOCOLS.filter((p) => (tlsRank(p) ?? 0) >= (tlsRank(lowest) ?? 0) && (tlsRank(p) ?? 0) < min);
      return replaced(`clients that only speak ${lost.join(' or ')} can no longer use TLS`);
    }
    case 'smtpd_tls_chain_files':
      return ['smtpd_tls_chain_files', 'smtpd_tls_cert_file', 'smtpd_tls_eccert_file', 'smtpd_tls_dcert_file'].some(
        (p) => paramValue(params, p).trim() !== '',
      )
        ? null
        : base;
    case 'smtp_tls_policy_maps':
      return expanded === '' ? base : null;
    case 'smtpd_authorized_xclient_hosts':
      return expanded === '' ? base : null;
    default: {
      if (Object.values(MACRO_PARAMETER).includes(name)) {
        const have = macroItems(expanded);
        const want = macroItems(line.value);
        const missing = want.filter((m) => !have.includes(m));
        return missing.length ? { ...base, value: union(macroItems(current), missing).join(' ') } : null;
      }
      return expanded === line.value ? null : base;
    }
  }
}

function sameMilter(a: string, b: string): boolean {
  const norm = (s: string) => s.trim().replace(/^inet:\[?localhost\]?:/, 'inet:127.0.0.1:');
  return norm(a) === norm(b);
}

/** A shell word in single quotes (values hold $, spaces, braces). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `postconf [-c DIR] -e 'name = value'` as an admin would type it. */
export function postconfCommand(configDir: string, change: Pick<PostfixChange, 'name' | 'value'>): string {
  const dir = configDir === DEFAULT_POSTFIX_CONFIG_DIR ? '' : ` -c ${shellQuote(configDir)}`;
  return `postconf${dir} -e ${shellQuote(`${change.name} = ${change.value}`)}`;
}

/** The changes as commented shell commands; suggestions commented out; then, as comments, what is already right. */
export function formatChanges(
  changes: readonly PostfixChange[],
  configDir: string,
  header: readonly string[],
  kept: ReadonlyArray<{ name: string; value: string }> = [],
): string {
  const out = header.map((h) => `# ${h}`);
  for (const c of changes) {
    out.push('');
    out.push(`# ${c.why}`);
    if (c.flag) out.push(`# CHECK FIRST: ${c.flag}`);
    out.push(`${c.suggestion ? '#' : ''}${postconfCommand(configDir, c)}`);
  }
  if (kept.length) {
    out.push('', '# Already as the policy needs (no change):');
    for (const k of kept) out.push(`#   ${k.name} = ${k.value}`);
  }
  return out.join('\n') + '\n';
}

export interface PostfixPlan {
  changes: PostfixChange[];
  /** Things the admin must do that no main.cf setting does (e.g. move the socket into the chroot). */
  notes: string[];
  /** The settings the policy needs that Postfix already has, with the value it uses. */
  kept: Array<{ name: string; value: string }>;
  /** Where the live settings came from ("postconf -c DIR -n", a file, or Postfix's defaults). */
  source: string;
  /** Set when postconf could not run and Postfix's defaults stood in for the live settings. */
  fallback?: string;
}

/**
 * The changes against the live Postfix (`postconf -c DIR -n`), or against saved output when
 * `postconfText` is given. When postconf cannot run (no Postfix on this host) the changes are
 * computed against Postfix's defaults and `fallback` says why.
 */
export async function planPostfixChanges(
  req: MtaRequirements,
  opts: { program: string; configDir: string; timeoutMs: number; postconfText?: { text: string; source: string } },
): Promise<PostfixPlan> {
  const plan = (params: PostfixParams, source: string, fallback?: string): PostfixPlan => {
    const chroot = readChroot(opts.configDir, paramValue(params, 'queue_directory'));
    const view = chrootView(req, chroot);
    const changes = postfixChanges(req, params, chroot);
    const kept = postfixConfigLines(view.req)
      .filter((l) => !l.suggestion && !changes.some((c) => c.name === l.name))
      .map((l) => ({ name: l.name, value: paramValue(params, l.name) }));
    return { changes, notes: view.note ? [view.note] : [], kept, source, ...(fallback ? { fallback } : {}) };
  };
  if (opts.postconfText) return plan(parsePostconf(opts.postconfText.text), opts.postconfText.source);
  try {
    const text = await runPostconf({ program: opts.program, configDir: opts.configDir, timeoutMs: opts.timeoutMs });
    return plan(parsePostconf(text), `postconf -c ${opts.configDir} -n`);
  } catch (err) {
    return plan(new Map(), "Postfix's defaults", (err as Error).message);
  }
}

/** master.cf's chroot columns; without a readable master.cf nothing is chrooted as far as we know. */
function readChroot(configDir: string, queueDirectory: string): ChrootInfo | undefined {
  try {
    return chrootInfo(readFileSync(join(configDir, 'master.cf'), 'utf8'), queueDirectory);
  } catch {
    return undefined;
  }
}
