// Reading Postfix's configuration the way `postconf -n` prints it: "name = value" lines (a
// main.cf also works: comments and indented continuation lines are understood), plus the few
// value syntaxes the lint needs: lists, { } groups, $parameter references, time units.
import { postconf } from '../deps/mta-postfix.js';

/** Postfix time values are read where postconf is run (deps/mta-postfix.ts). */
export { parsePostfixTime } from '../deps/mta-postfix.js';

export type PostfixParams = ReadonlyMap<string, string>;

/**
 * Postfix's built-in defaults for the parameters relayguard looks at (Postfix 3.7 at compatibility
 * level >= 2; see LEGACY_DEFAULTS for lower levels). `postconf -n` prints only what differs from these, so the lint reads a missing
 * parameter as its default.
 */
const POSTFIX_DEFAULTS: Readonly<Record<string, string>> = {
  disable_vrfy_command: 'no',
  smtpd_relay_restrictions: 'permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination',
  smtpd_recipient_restrictions: '',
  mynetworks_style: 'host',
  relay_domains: '',
  mydestination: '$myhostname, localhost.$mydomain, localhost',
  virtual_alias_domains: '$virtual_alias_maps',
  virtual_mailbox_domains: '$virtual_mailbox_maps',
  message_size_limit: '10240000',
  mailbox_size_limit: '51200000',
  smtpd_milters: '',
  non_smtpd_milters: '',
  milter_protocol: '6',
  milter_default_action: 'tempfail',
  default_process_limit: '100',
  smtpd_timeout: '300s',
  milter_connect_timeout: '30s',
  milter_command_timeout: '30s',
  milter_content_timeout: '300s',
  milter_connect_macros: 'j {daemon_name} {daemon_addr} v _',
  milter_helo_macros: '{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}',
  milter_mail_macros: 'i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}',
  milter_rcpt_macros: 'i {rcpt_addr} {rcpt_host} {rcpt_mailer}',
  milter_data_macros: 'i',
  milter_end_of_header_macros: 'i',
  milter_end_of_data_macros: 'i',
  smtpd_tls_security_level: '',
  smtpd_use_tls: 'no',
  smtpd_enforce_tls: 'no',
  smtpd_tls_protocols: '>=TLSv1',
  smtpd_tls_mandatory_protocols: '>=TLSv1',
  smtp_tls_policy_maps: '',
  queue_directory: '/var/spool/postfix',
};

/** Parses `postconf -n` output (or a main.cf). Later lines win, as in Postfix. */
export function parsePostconf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | null = null;
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s*#/.test(raw) || raw.trim() === '') {
      // A comment or blank line ends nothing in main.cf; continuation lines may follow a comment.
      continue;
    }
    if (/^\s/.test(raw)) {
      // "Lines that start with whitespace continue a logical line."
      if (current !== null) out.set(current, `${out.get(current) ?? ''} ${raw.trim()}`.trim());
      continue;
    }
    const m = /^([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)?)\s*=\s*(.*)$/.exec(raw);
    if (!m) {
      current = null;
      continue;
    }
    current = m[1]!;
    out.set(current, m[2]!.trim());
  }
  return out;
}

/**
 * Defaults that depend on compatibility_level (a main.cf without it runs at level 0, with the
 * old, more permissive defaults).
 */
const LEGACY_DEFAULTS: ReadonlyArray<{ below: number; values: Readonly<Record<string, string>> }> = [
  { below: 1, values: { smtpd_relay_restrictions: '' } },
  { below: 2, values: { mynetworks_style: 'subnet', relay_domains: '$mydestination' } },
];

/** compatibility_level as a number ("3.6" -> 3.6); 0 when unset. */
export function compatibilityLevel(params: PostfixParams): number {
  const m = /^(\d+)(?:\.(\d+))?/.exec(params.get('compatibility_level')?.trim() ?? '');
  return m ? Number(m[1]) + Number(m[2] ?? 0) / 100 : 0;
}

/** The value Postfix uses: the configured one, else the default for the compatibility level, else "". */
export function paramValue(params: PostfixParams, name: string): string {
  const set = params.get(name);
  if (set !== undefined) return set;
  const level = compatibilityLevel(params);
  for (const { below, values } of LEGACY_DEFAULTS) if (level < below && name in values) return values[name]!;
  return POSTFIX_DEFAULTS[name] ?? '';
}

/** Expands $name and ${name} references (several levels, no loops). */
export function expandParam(params: PostfixParams, name: string, depth = 0): string {
  const MAX_DEPTH = 10;
  const value = paramValue(params, name);
  if (depth >= MAX_DEPTH) return value;
  return value.replace(/\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g, (_, a?: string, b?: string) =>
    expandParam(params, (a ?? b)!, depth + 1),
  );
}

/**
 * Splits a Postfix list: items separated by commas and/or whitespace; "{ ... }" groups stay
 * whole (smtpd_milters = { inet:host:port, default_action=accept }, ...).
 */
export function splitList(value: string): string[] {
  const items: string[] = [];
  let buf = '';
  let depth = 0;
  const flush = () => {
    if (buf.trim()) items.push(buf.trim());
    buf = '';
  };
  for (const ch of value) {
    if (ch === '{') depth++;
    if (ch === '}') depth = Math.max(0, depth - 1);
    if (depth === 0 && (ch === ',' || /\s/.test(ch))) {
      flush();
      continue;
    }
    buf += ch;
    if (depth === 0 && ch === '}') flush();
  }
  flush();
  return items;
}

export interface MilterEntry {
  /** As written, e.g. "inet:127.0.0.1:10025" or "{ inet:..., default_action=accept }". */
  raw: string;
  /** The service address, e.g. "inet:127.0.0.1:10025" or "unix:/run/opendkim/opendkim.sock". */
  address: string;
  /** Per-milter settings from the { } form (Postfix >= 3.0): default_action, command_timeout... */
  settings: Record<string, string>;
}

/** One smtpd_milters item, plain or in the { address, name=value, ... } form. */
export function parseMilterEntry(item: string): MilterEntry {
  const t = item.trim();
  if (!t.startsWith('{')) return { raw: item, address: t, settings: {} };
  const inner = t.replace(/^\{/, '').replace(/\}$/, '');
  const parts = inner
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const settings: Record<string, string> = {};
  let address = '';
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq > 0) settings[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
    else if (!address) address = p;
  }
  return { raw: item, address, settings };
}

export interface PostconfCommand {
  /** The postconf program (policy mta.postconf). */
  program: string;
  /** Configuration directory (postconf -c). */
  configDir: string;
  timeoutMs: number;
}

/** Runs `postconf -c DIR -n`; rejects with Postfix's own message when it fails. */
export function runPostconf(cmd: PostconfCommand, signal?: AbortSignal): Promise<string> {
  return postconf(cmd, ['-n'], signal);
}
