// `relayguard postfix-config --mta sendmail`: the sendmail.mc lines that go with a policy, each
// with the reason (as an m4 dnl comment). Sendmail has no XCLIENT and relays only for what its
// access map allows, so relaying is described as access-map entries.
import { dirname, join } from 'node:path';
import { parseCidr } from '../primitives/networks.js';
import type { SendmailContext, SendmailSetting } from '../policy/rule-parts.js';
import {
  sendmailMilterAddress,
  suggestedCommandTimeoutMs,
  suggestedContentTimeoutMs,
  type MacroStage,
  type MtaRequirements,
} from './requirements.js';

/** The filter's name in sendmail.cf (InputMailFilters). */
const SENDMAIL_FILTER_NAME = 'relayguard';
/** The access map's file name beside sendmail.cf. */
const ACCESS_MAP_NAME = 'access';
/** Time Sendmail may take to connect to the milter. */
const SENDMAIL_CONNECT_TIMEOUT_MS = 30_000;

/** Sendmail 8.17's default macro lists (cf/m4/cfhead.m4): a define replaces them, so they are kept. */
const SENDMAIL_DEFAULT_MACROS: Record<MacroStage, string[]> = {
  connect: ['j', '_', '{daemon_name}', '{if_name}', '{if_addr}'],
  helo: ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}'],
  envfrom: [
    'i',
    '{auth_type}',
    '{auth_authen}',
    '{auth_ssf}',
    '{auth_author}',
    '{mail_mailer}',
    '{mail_host}',
    '{mail_addr}',
  ],
  envrcpt: ['{rcpt_mailer}', '{rcpt_host}', '{rcpt_addr}'],
  data: [],
  eoh: [],
  eom: ['{msg_id}'],
};

const MACRO_DEFINE: Record<MacroStage, string> = {
  connect: 'confMILTER_MACROS_CONNECT',
  helo: 'confMILTER_MACROS_HELO',
  envfrom: 'confMILTER_MACROS_ENVFROM',
  envrcpt: 'confMILTER_MACROS_ENVRCPT',
  data: 'confMILTER_MACROS_DATA',
  eoh: 'confMILTER_MACROS_EOH',
  eom: 'confMILTER_MACROS_EOM',
};

/** Sendmail time: "30s", "5m" (whole minutes when exact). */
function smTime(ms: number): string {
  const s = Math.ceil(ms / 1000);
  return s % 60 === 0 ? `${s / 60}m` : `${s}s`;
}

/**
 * A CIDR as a Sendmail access-map "Connect:" key: only whole octets can be written (10.0.0.0/8
 * -> "10"); anything else comes back null and is left to the reader.
 */
export function accessMapPrefix(cidr: string): string | null {
  const [addr, bits] = parseCidr(cidr);
  if (addr.kind() === 'ipv6') return bits === 128 ? `IPv6:${addr.toString()}` : null;
  if (bits % 8 !== 0) return null;
  const octets = addr
    .toString()
    .split('.')
    .slice(0, bits / 8);
  return octets.length ? octets.join('.') : null;
}

type McLine = SendmailSetting;

/** Sendmail's convention: the access map lives next to sendmail.cf (/etc/mail/access). */
export function accessMapPath(sendmailCf: string): string {
  return join(dirname(sendmailCf), ACCESS_MAP_NAME);
}

export interface SendmailConfigOptions {
  /** The access map's source file (the .db beside it is what Sendmail reads). */
  accessMap: string;
}

function sendmailContext(req: MtaRequirements, opts: SendmailConfigOptions): SendmailContext {
  return { ...req.ctx, accessMap: opts.accessMap, accessMapKey: accessMapPrefix };
}

function sendmailMcLines(req: MtaRequirements, opts: SendmailConfigOptions): McLine[] {
  const out: McLine[] = [];
  const add = (why: string, text: string) => out.push({ why, text });

  add(
    'no VRFY, no EXPN, HELO first (goaway includes the other two; spelled out for the reader)',
    "define(`confPRIVACY_FLAGS', `goaway,noexpn,novrfy')dnl",
  );
  const command = smTime(suggestedCommandTimeoutMs(req));
  const content = smTime(suggestedContentTimeoutMs(req));
  add(
    `relayguard fails closed (F=T: 4xx when it is unreachable) and is waited for longer than its own deadlines (${smTime(req.commandDeadlineMs)} per command, ${smTime(req.contentDeadlineMs)} for the content); declare it before any DKIM filter`,
    `INPUT_MAIL_FILTER(\`${SENDMAIL_FILTER_NAME}', \`S=${sendmailMilterAddress(req.milter)}, F=T, T=C:${smTime(SENDMAIL_CONNECT_TIMEOUT_MS)};S:${command};R:${command};E:${content}')dnl`,
  );
  for (const stage of Object.keys(MACRO_DEFINE) as MacroStage[]) {
    const names = [...new Set([...SENDMAIL_DEFAULT_MACROS[stage], ...req.macros[stage]])];
    // Double quotes keep the commas inside one m4 argument.
    add(
      `macros relayguard reads at ${stage} (Sendmail ignores a milter's own request for them)`,
      `define(\`${MACRO_DEFINE[stage]}', \`\`${names.join(', ')}'')dnl`,
    );
  }
  // What the rules need of Sendmail, in the registry's order.
  const ctx = sendmailContext(req, opts);
  for (const { def, config } of req.rules) out.push(...(def.mta?.sendmail?.(config, ctx) ?? []));
  return out;
}

/** Lines for /etc/mail/access: what the rules' MTA parts put there (who may relay, for which domains). */
export function sendmailAccessEntries(req: MtaRequirements, opts: SendmailConfigOptions): string[] {
  const ctx = sendmailContext(req, opts);
  return req.rules.flatMap(({ def, config }) => def.mta?.sendmailAccess?.(config, ctx) ?? []);
}

export function formatSendmailConfig(
  req: MtaRequirements,
  header: readonly string[],
  opts: SendmailConfigOptions,
): string {
  const out = header.map((h) => `dnl # ${h}`);
  for (const l of sendmailMcLines(req, opts)) {
    out.push(`dnl # ${l.why}`);
    out.push(l.text);
  }
  out.push(`dnl # the access map ${opts.accessMap} (then: makemap hash ${opts.accessMap} < ${opts.accessMap}):`);
  for (const e of sendmailAccessEntries(req, opts)) out.push(`dnl #   ${e}`);
  return out.join('\n') + '\n';
}

/** The access map file itself, for `postfix-config --mta sendmail --access-map`. */
export function formatAccessMap(req: MtaRequirements, header: readonly string[], opts: SendmailConfigOptions): string {
  return [...header.map((h) => `# ${h}`), ...sendmailAccessEntries(req, opts)].join('\n') + '\n';
}
