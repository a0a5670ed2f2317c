// `relayguard postfix-config --mta sendmail`: the sendmail.mc lines that go with a policy, each
// with the reason (as an m4 dnl comment). Sendmail has no XCLIENT and relays only for what its
// access map allows, so relaying is described as access-map entries.
import { dirname, join } from 'node:path';
import { tlsRank } from '../rules/tls.js';
import { parseCidr } from '../policy/networks.js';
import { sizeWithHeadroom } from './postfix-config.js';
import { sendmailMilterAddress, suggestedCommandTimeoutMs, suggestedContentTimeoutMs, type MacroStage, type MtaRequirements } from './requirements.js';

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
  envfrom: ['i', '{auth_type}', '{auth_authen}', '{auth_ssf}', '{auth_author}', '{mail_mailer}', '{mail_host}', '{mail_addr}'],
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

/** OpenSSL options that switch off every protocol below `min`. */
const SSL_OP_NO: Array<[string, string]> = [
  ['SSLv2', '+SSL_OP_NO_SSLv2'],
  ['SSLv3', '+SSL_OP_NO_SSLv3'],
  ['TLSv1', '+SSL_OP_NO_TLSv1'],
  ['TLSv1.1', '+SSL_OP_NO_TLSv1_1'],
  ['TLSv1.2', '+SSL_OP_NO_TLSv1_2'],
];

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
  const octets = addr.toString().split('.').slice(0, bits / 8);
  return octets.length ? octets.join('.') : null;
}

interface McLine {
  why: string;
  text: string;
}

/** Sendmail's convention: the access map lives next to sendmail.cf (/etc/mail/access). */
export function accessMapPath(sendmailCf: string): string {
  return join(dirname(sendmailCf), ACCESS_MAP_NAME);
}

export interface SendmailConfigOptions {
  /** The access map's source file (the .db beside it is what Sendmail reads). */
  accessMap: string;
}

function sendmailMcLines(req: MtaRequirements, opts: SendmailConfigOptions): McLine[] {
  const out: McLine[] = [];
  const add = (why: string, text: string) => out.push({ why, text });

  add('rule 2: no VRFY, no EXPN, HELO first (goaway includes the other two; spelled out for the reader)', "define(`confPRIVACY_FLAGS', `goaway,noexpn,novrfy')dnl");
  const size = sizeWithHeadroom(req.sizeLimit);
  add(
    req.sizeLimit === null ? 'rule 3: no size rule in the policy: a finite limit anyway (Postfix\'s default)' : `rule 3: a little above the policy's largest limit (${req.sizeLimit} bytes) so relayguard decides`,
    `define(\`confMAX_MESSAGE_SIZE', \`${size}')dnl`,
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
    add(`macros relayguard reads at ${stage} (Sendmail ignores a milter's own request for them)`, `define(\`${MACRO_DEFINE[stage]}', \`\`${names.join(', ')}'')dnl`);
  }
  const minRank = tlsRank(req.tls.minVersion) ?? tlsRank('TLSv1.2')!;
  const noOps = SSL_OP_NO.filter(([p]) => tlsRank(p)! < minRank).map(([, op]) => op);
  add(
    req.tls.rule ? `rule 9: no protocol below its min_version ${req.tls.minVersion}` : `no TLS protocol below ${req.tls.minVersion}`,
    `define(\`confSERVER_SSL_OPTIONS', \`${noOps.join(' ')}')dnl`,
  );
  add('rule 9: offer STARTTLS (set to your certificate and key; without them Sendmail offers no STARTTLS)', "dnl define(`confSERVER_CERT', `/etc/mail/tls/cert.pem')dnl define(`confSERVER_KEY', `/etc/mail/tls/key.pem')dnl");
  // -T<TMPF>: a lookup that fails (the map missing or unreadable) is a temporary failure, not "no entry".
  add(
    `rule 1: the access map (${opts.accessMap}.db, from: relayguard postfix-config --mta sendmail --access-map) decides who may relay; never FEATURE(\`promiscuous_relay')`,
    `FEATURE(\`access_db', \`hash -T<TMPF> ${opts.accessMap}')dnl`,
  );
  return out;
}

/** Lines for /etc/mail/access: internal networks may relay, mail to local domains is accepted. */
export function sendmailAccessEntries(req: MtaRequirements): string[] {
  const lines: string[] = [];
  for (const cidr of req.relayNetworks) {
    const key = accessMapPrefix(cidr);
    lines.push(key ? `Connect:${key}\tRELAY` : `# ${cidr}: not on an octet boundary; list its addresses or prefixes by hand`);
  }
  for (const d of req.relayDomains) lines.push(`To:${d.domain}\tRELAY`);
  return lines;
}

export function formatSendmailConfig(req: MtaRequirements, header: readonly string[], opts: SendmailConfigOptions): string {
  const out = header.map((h) => `dnl # ${h}`);
  for (const l of sendmailMcLines(req, opts)) {
    out.push(`dnl # ${l.why}`);
    out.push(l.text);
  }
  out.push(`dnl # rule 1: ${opts.accessMap} (then: makemap hash ${opts.accessMap} < ${opts.accessMap}):`);
  for (const e of sendmailAccessEntries(req)) out.push(`dnl #   ${e}`);
  return out.join('\n') + '\n';
}

/** The access map file itself, for `postfix-config --mta sendmail --access-map`. */
export function formatAccessMap(req: MtaRequirements, header: readonly string[]): string {
  return [...header.map((h) => `# ${h}`), ...sendmailAccessEntries(req)].join('\n') + '\n';
}
