// `relayguard postfix-config`: the main.cf lines that go with a policy, each with the reason.
// Rule 2 (no VRFY, relayguard wired in fail-closed) and the MTA side of rules 1, 3 and 9. The
// same requirements drive `lint-mta`, so the output always passes the lint.
import { tlsRank } from '../rules/tls.js';
import { paramValue, POSTFIX_DEFAULTS, splitList } from './postconf.js';
import {
  postfixCidr,
  postfixMilterAddress,
  suggestedCommandTimeoutMs,
  suggestedContentTimeoutMs,
  type MacroStage,
  type MtaRequirements,
} from './requirements.js';

/** Postfix refuses to start when mailbox_size_limit is below message_size_limit. */
const POSTFIX_MAILBOX_SIZE_LIMIT = 51_200_000;
/**
 * Postfix counts the queue file (envelope records and its own Received: header included), so
 * its limit sits a little above relayguard's: relayguard decides, with the same 552 5.3.4.
 */
export const SIZE_HEADROOM_BYTES = 64 * 1024;
/** The Postfix milter protocol that carries everything relayguard negotiates (SETSYMLIST). */
const MILTER_PROTOCOL = 6;
/** Protocol names from oldest to newest, as smtpd_tls_protocols spells them. */
export const TLS_PROTOCOLS = ['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;

export const MACRO_PARAMETER: Record<MacroStage, string> = {
  connect: 'milter_connect_macros',
  helo: 'milter_helo_macros',
  envfrom: 'milter_mail_macros',
  envrcpt: 'milter_rcpt_macros',
  data: 'milter_data_macros',
  eoh: 'milter_end_of_header_macros',
  eom: 'milter_end_of_data_macros',
};

export interface ConfigLine {
  name: string;
  value: string;
  /** One line: why the policy needs this. */
  why: string;
  /** Printed commented out: the value depends on the site (e.g. certificate paths). */
  suggestion?: boolean;
}

/** The policy's limit plus the headroom for what the MTA counts too (null: no size rule: Postfix's default). */
export function sizeWithHeadroom(policyLimit: number | null): number {
  return policyLimit === null ? Number(POSTFIX_DEFAULTS.message_size_limit) : policyLimit + SIZE_HEADROOM_BYTES;
}

/**
 * The Postfix message_size_limit that goes with a policy limit: never below Postfix's default
 * (10240000), so that every message between the policy's limit and that is refused by relayguard,
 * with its enhanced code and reference, and an admin's default is never lowered; above it, the
 * policy's limit plus headroom.
 */
export function postfixSizeLimit(policyLimit: number | null): number {
  return Math.max(Number(POSTFIX_DEFAULTS.message_size_limit), sizeWithHeadroom(policyLimit));
}

/** "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1": every protocol below `min` excluded (works on every Postfix 3.x). */
export function excludedProtocols(min: string): string {
  const minRank = tlsRank(min) ?? tlsRank('TLSv1.2')!;
  return TLS_PROTOCOLS.filter((p) => tlsRank(p)! < minRank)
    .map((p) => `!${p}`)
    .join(', ');
}

function seconds(ms: number): string {
  return `${Math.ceil(ms / 1000)}s`;
}

/** The relay restrictions that refuse unauthorised relaying without help from relayguard. */
export const RELAY_RESTRICTIONS = 'permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination';

export function postfixConfigLines(req: MtaRequirements): ConfigLine[] {
  const lines: ConfigLine[] = [];
  const add = (name: string, value: string, why: string, suggestion = false) => lines.push({ name, value, why, ...(suggestion ? { suggestion } : {}) });

  // Rule 2: nothing that tells outsiders which addresses exist.
  add('disable_vrfy_command', 'yes', 'rule 2: VRFY would let anyone test which addresses exist (Postfix has no EXPN at all)');

  // Rule 1 on the MTA side.
  add('mynetworks', req.relayNetworks.map(postfixCidr).join(', '), 'rule 1: the policy\'s internal networks (networks.internal) may relay; nobody else by address');
  const domains = req.relayDomains.flatMap((d) => (d.subdomains ? [d.domain, `.${d.domain}`] : [d.domain]));
  add(
    'relay_domains',
    domains.join(', '),
    domains.length ? 'rule 1: the local domains: mail to them is accepted from anyone and passed to the mail store' : 'rule 1: the policy names no local_domains, so Postfix accepts mail for no domain from outside',
  );
  add('smtpd_relay_restrictions', RELAY_RESTRICTIONS, 'rule 1: Postfix refuses unauthorised relaying by itself too: internal or authenticated clients only, else 554 5.7.1');

  // Rule 3: Postfix's own limit must never be the stricter one.
  const sizeLimit = postfixSizeLimit(req.sizeLimit);
  add(
    'message_size_limit',
    String(sizeLimit),
    req.sizeLimit === null
      ? 'rule 3: the policy has no size rule, so Postfix\'s own limit (its default) is the only one; never 0 (unlimited)'
      : `rule 3: above the policy's largest limit (${req.sizeLimit} bytes; Postfix counts envelope records too, and its default is never lowered) so relayguard decides, with its reference`,
  );
  if (sizeLimit > POSTFIX_MAILBOX_SIZE_LIMIT) add('mailbox_size_limit', String(sizeLimit), 'rule 3: Postfix will not start with mailbox_size_limit below message_size_limit');

  // The milter itself: first in line, fail closed, patient enough.
  const address = postfixMilterAddress(req.milter);
  add(
    'smtpd_milters',
    `{ ${address}, default_action=tempfail }`,
    'every rule: relayguard first (server.listen), before any DKIM signer, so what it adds gets signed; append other milters after it',
  );
  add('non_smtpd_milters', '$smtpd_milters', 'every rule: mail submitted with the sendmail command is checked the same way');
  add('milter_protocol', String(MILTER_PROTOCOL), 'every rule: protocol 6 lets relayguard ask for exactly the macros and events it needs');
  add('milter_default_action', 'tempfail', 'every rule, fail closed: when a milter is down or times out the client is told to retry (4xx), nothing passes unchecked');
  const commandMs = suggestedCommandTimeoutMs(req);
  const contentMs = suggestedContentTimeoutMs(req);
  add('milter_command_timeout', seconds(commandMs), `every rule: longer than relayguard's connect/envelope deadline (${seconds(req.commandDeadlineMs)}), so its answer arrives`);
  add('milter_content_timeout', seconds(contentMs), `every rule: longer than relayguard's content deadline (${seconds(req.contentDeadlineMs)}), so its answer arrives`);
  for (const [stage, param] of Object.entries(MACRO_PARAMETER) as Array<[MacroStage, string]>) {
    // Postfix's defaults are kept: other milters may rely on them.
    const merged = [...new Set([...splitList(paramValue(new Map(), param)), ...req.macros[stage]])];
    add(param, merged.join(' '), `every rule: macros relayguard reads at ${stage} (it also asks for them itself; listed for MTAs that ignore that)`);
  }

  // Rule 9 on the MTA side.
  add('smtpd_tls_security_level', 'may', 'rule 9: offer STARTTLS to everyone; relayguard refuses plain text where the policy requires TLS (a public MX may not require it of all)');
  const excluded = excludedProtocols(req.tls.minVersion);
  const tlsWhy = req.tls.rule ? `rule 9: nothing below its min_version ${req.tls.minVersion}` : `no protocol below ${req.tls.minVersion}`;
  add('smtpd_tls_protocols', excluded, tlsWhy);
  add('smtpd_tls_mandatory_protocols', excluded, tlsWhy);
  add('smtpd_tls_chain_files', '/etc/postfix/key.pem, /etc/postfix/cert.pem', 'set to your key and certificate: without one Postfix offers no STARTTLS', true);
  if (req.tls.encryptDomains.length) {
    const entries = req.tls.encryptDomains.flatMap((d) => [`${d}=encrypt`, `.${d}=encrypt`]);
    add('smtp_tls_policy_maps', `inline:{ ${entries.join(', ')} }`, 'rule 9: partners that must send to us over TLS are reached over TLS too (no plain-text fallback)');
  }
  add('smtpd_authorized_xclient_hosts', '127.0.0.1', 'lets `relayguard audit` on this host act as an outside client (XCLIENT); loopback clients are internal anyway', true);
  return lines;
}

export function formatConfigLines(lines: readonly ConfigLine[], header: readonly string[]): string {
  const out = header.map((h) => `# ${h}`);
  for (const l of lines) {
    out.push(`# ${l.why}`);
    out.push(`${l.suggestion ? '#' : ''}${l.name} = ${l.value}`);
  }
  return out.join('\n') + '\n';
}
