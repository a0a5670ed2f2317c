// Rule 1 on the MTA side: Postfix (or Sendmail) must refuse unauthorised relaying by itself
// too, and let relay by address exactly the networks relayguard treats as internal.
import { normalizeDomain } from '../../primitives/address.js';
import { parseCidr } from '../../primitives/networks.js';
import type { LintFinding, MtaContext, PostfixView, RuleMtaPart } from '../../policy/rule-parts.js';
import type { RelayConfig } from './schema.js';

/** The relay restrictions that refuse unauthorised relaying without help from relayguard. */
const RELAY_RESTRICTIONS = 'permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination';
/** Restrictions that let anyone relay when they come before reject_unauth_destination. */
const OPEN_RELAY = [/^permit$/i, /static:(ok|permit)/i, /^permit_auth_destination$/i];
const RELAY_STOPPERS = new Set(['reject_unauth_destination', 'defer_unauth_destination']);
/** Where Postfix lists the domains it accepts mail for. */
const ACCEPTING_PARAMETERS = ['relay_domains', 'mydestination', 'virtual_alias_domains', 'virtual_mailbox_domains'];

/** networks.internal plus the rule's trusted_networks: who may relay by address. */
function relayNetworks(config: RelayConfig | null, ctx: MtaContext): string[] {
  return [...new Set([...ctx.policy.networks.internal, ...(config?.trusted_networks ?? [])])];
}

/** Domains we accept mail for from anyone (local_domains plus the rule's relay_domains). */
function relayDomains(config: RelayConfig | null, ctx: MtaContext): Array<{ domain: string; subdomains: boolean }> {
  const subdomains = config?.include_subdomains ?? false;
  const domains = [
    ...new Set(
      [...ctx.policy.local_domains, ...(config?.relay_domains ?? [])].map((d) =>
        normalizeDomain(d.replace(/^\*?\./, '')),
      ),
    ),
  ];
  return domains.map((domain) => ({ domain, subdomains }));
}

/** True when every address of `inner` lies in one of `outer` (CIDR strings). */
function cidrCovered(inner: string, outer: readonly string[]): boolean {
  let a: ReturnType<typeof parseCidr>;
  try {
    a = parseCidr(inner);
  } catch {
    return false;
  }
  return outer.some((o) => {
    try {
      const b = parseCidr(o);
      return (
        a[0].kind() === b[0].kind() && a[1] >= b[1] && (a[0] as { match(range: [unknown, number]): boolean }).match(b)
      );
    } catch {
      return false;
    }
  });
}

const setting = (name: string, value: string) => `${name} = ${value}`;

function lintRelay(config: RelayConfig | null, view: PostfixView, ctx: MtaContext): LintFinding[] {
  const findings: LintFinding[] = [];
  const add = (severity: LintFinding['severity'], parameter: string, message: string, fix: string) =>
    findings.push({ severity, parameter, message, fix });
  const networks = relayNetworks(config, ctx);
  const domains = relayDomains(config, ctx);
  const relay = view.list('smtpd_relay_restrictions');
  const recipient = view.list('smtpd_recipient_restrictions');
  // Postfix < 2.10 style: the relay check in smtpd_recipient_restrictions.
  const lists: Array<[string, string[]]> =
    view.has('smtpd_relay_restrictions') || relay.length ? [['smtpd_relay_restrictions', relay]] : [];
  lists.push(['smtpd_recipient_restrictions', recipient]);
  const fix = setting('smtpd_relay_restrictions', RELAY_RESTRICTIONS);
  let stopped = false;
  for (const [name, items] of lists) {
    const stop = items.findIndex((i) => RELAY_STOPPERS.has(i.toLowerCase()));
    const open = items.findIndex((i) => OPEN_RELAY.some((re) => re.test(i)));
    if (open >= 0 && (stop < 0 || open < stop)) {
      add(
        'error',
        name,
        `"${items[open]}" comes before any reject_unauth_destination: Postfix relays for anyone (open relay; only relayguard stands in the way)`,
        fix,
      );
      return findings;
    }
    if (stop >= 0) {
      stopped = true;
      if (items[stop]!.toLowerCase() === 'defer_unauth_destination') {
        add(
          'warning',
          name,
          'defer_unauth_destination answers relay attempts with 4xx, so they are retried; reject_unauth_destination refuses them for good',
          fix,
        );
      }
      break;
    }
  }
  if (!stopped)
    add(
      'error',
      'smtpd_relay_restrictions',
      'no reject_unauth_destination: Postfix relays for anyone (open relay)',
      fix,
    );
  if (
    !relay.some((i) => i.toLowerCase() === 'permit_mynetworks') &&
    !recipient.some((i) => i.toLowerCase() === 'permit_mynetworks')
  ) {
    add('warning', 'smtpd_relay_restrictions', 'no permit_mynetworks: internal clients cannot send outbound mail', fix);
  }
  if (
    !relay.some((i) => i.toLowerCase() === 'permit_sasl_authenticated') &&
    !recipient.some((i) => i.toLowerCase() === 'permit_sasl_authenticated')
  ) {
    add(
      'warning',
      'smtpd_relay_restrictions',
      'no permit_sasl_authenticated: authenticated clients cannot send outbound mail',
      fix,
    );
  }

  // Who permit_mynetworks lets relay.
  const wantNetworks = setting('mynetworks', networks.map((n) => ctx.postfixCidr(n)).join(', '));
  if (!view.has('mynetworks')) {
    if (view.raw('mynetworks_style') !== 'host') {
      add(
        'error',
        'mynetworks',
        `mynetworks_style = ${view.raw('mynetworks_style')}: every client in this host's subnets may relay`,
        wantNetworks,
      );
    } else if (networks.length) {
      add(
        'warning',
        'mynetworks',
        "mynetworks is not set: only this host may relay, not the policy's internal networks",
        wantNetworks,
      );
    }
  } else {
    const cidrs = view.networks('mynetworks');
    for (const { entry, cidr } of cidrs) {
      if (cidr === null)
        add('warning', 'mynetworks', `mynetworks entry "${entry}" cannot be checked against the policy`, wantNetworks);
      else if (!cidrCovered(cidr, networks))
        add(
          'error',
          'mynetworks',
          `mynetworks has ${entry}, which the policy does not treat as internal: Postfix lets it relay`,
          wantNetworks,
        );
    }
    const known = cidrs.flatMap((c) => (c.cidr ? [c.cidr] : []));
    const missing = networks.filter((n) => !cidrCovered(n, known));
    if (missing.length)
      add(
        'warning',
        'mynetworks',
        `mynetworks lacks the internal network(s) ${missing.join(', ')}: Postfix will not let them relay`,
        wantNetworks,
      );
  }

  // Mail for our domains must be accepted at all.
  const accepted = ACCEPTING_PARAMETERS.flatMap((p) => view.list(p).map((d) => d.toLowerCase()));
  const notAccepted = domains.filter((d) => !accepted.includes(d.domain));
  if (notAccepted.length) {
    add(
      'warning',
      'relay_domains',
      `Postfix does not accept mail for ${notAccepted.map((d) => d.domain).join(', ')} (not in relay_domains, mydestination or virtual domains)`,
      setting('relay_domains', domains.map((d) => d.domain).join(', ')),
    );
  }
  return findings;
}

export const relayMta: RuleMtaPart<RelayConfig> = {
  init: () => [
    '  relay:',
    '    # enforce: outside clients that did not authenticate may only send to local_domains (554 5.7.1 per recipient).',
    '    mode: monitor',
  ],
  postfix(config, ctx) {
    const domains = relayDomains(config, ctx).flatMap((d) => (d.subdomains ? [d.domain, `.${d.domain}`] : [d.domain]));
    return [
      {
        name: 'mynetworks',
        value: relayNetworks(config, ctx)
          .map((n) => ctx.postfixCidr(n))
          .join(', '),
        why: "rule 1: the policy's internal networks (networks.internal) may relay; nobody else by address",
      },
      {
        name: 'relay_domains',
        value: domains.join(', '),
        why: domains.length
          ? 'rule 1: the local domains: mail to them is accepted from anyone and passed to the mail store'
          : 'rule 1: the policy names no local_domains, so Postfix accepts mail for no domain from outside',
      },
      {
        name: 'smtpd_relay_restrictions',
        value: RELAY_RESTRICTIONS,
        why: 'rule 1: Postfix refuses unauthorised relaying by itself too: internal or authenticated clients only, else 554 5.7.1',
      },
    ];
  },
  lintPostfix: lintRelay,
  sendmail(_config, ctx) {
    // -T<TMPF>: a lookup that fails (the map missing or unreadable) is a temporary failure, not "no entry".
    return [
      {
        why: `rule 1: the access map (${ctx.accessMap}.db, from: relayguard postfix-config --mta sendmail --access-map) decides who may relay; never FEATURE(\`promiscuous_relay')`,
        text: `FEATURE(\`access_db', \`hash -T<TMPF> ${ctx.accessMap}')dnl`,
      },
    ];
  },
  sendmailAccess(config, ctx) {
    const lines: string[] = [];
    for (const cidr of relayNetworks(config, ctx)) {
      const key = ctx.accessMapKey(cidr);
      lines.push(
        key ? `Connect:${key}\tRELAY` : `# ${cidr}: not on an octet boundary; list its addresses or prefixes by hand`,
      );
    }
    for (const d of relayDomains(config, ctx)) lines.push(`To:${d.domain}\tRELAY`);
    return lines;
  },
};
