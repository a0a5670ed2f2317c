// Rule 8 (first half): DNS blocklists and static block lists.
//
// The client IP is looked up in the IP lists as soon as it connects (the queries run while the
// client says EHLO), but the refusal waits until MAIL FROM, as Postfix's smtpd_delay_reject
// does: only then is it known whether the client authenticated, and an authenticated client is
// never refused by a list. At MAIL the sender domain (and, if configured, the HELO name) is
// checked against the domain lists and the static blocked domains. Internal and authenticated
// clients skip every list. DNS trouble never refuses mail: an answer that is not a configured
// listing code, an error or a timeout is logged as a list error and the mail goes on.
import client from '../ops/prom.js';
import {
  DnsblClient,
  domainQueryName,
  ipQueryName,
  ListingCodes,
  type DnsblAnswer,
  type DnsblList,
  type DnsblQuery,
} from '../deps/dnsbl.js';
import { domainMatches, normalizeDomain } from '../primitives/address.js';
import { NetworkSet } from '../primitives/networks.js';
import { dependencySeconds, dependencyUp, registry } from '../ops/metrics.js';
import { pass, reject, type ConnectionContext, type PhaseHandlers, type Rule, type Verdict } from '../policy/types.js';
import { blocklistsAudit } from './blocklists/audit.js';
import {
  blocklistsSchema,
  STATIC_BLOCKED_DOMAINS,
  STATIC_BLOCKED_IPS,
  type BlocklistsConfig,
} from './blocklists/schema.js';
import { defineRule, type RuleEnv } from '../policy/rule-env.js';

/** What Postfix answers for reject_rbl_client / reject_rhsbl_sender / check_sender_access. */
const BLOCKED = { code: 554, enhanced: '5.7.1' } as const;
/** SASL macro of the MAIL stage: an authenticated client is exempt. */
const AUTH_MACROS = ['{auth_authen}'];
/** conn.state key of the client IP lookup started at connect. */
const IP_LOOKUP_KEY = 'blocklists.ip';

// ---------------------------------------------------------------- schema

// ---------------------------------------------------------------- allowlist

interface AllowEntry {
  ips: NetworkSet | null;
  domain: string | null;
  lists: Set<string> | null;
  reason: string;
  expires: number;
}

class Allowlist {
  private readonly entries: AllowEntry[];

  constructor(
    config: BlocklistsConfig['allowlist'],
    private readonly now: () => number,
  ) {
    this.entries = config.map((e) => ({
      ips: e.ip ? new NetworkSet([e.ip]) : null,
      domain: e.domain ?? null,
      lists: e.lists ? new Set(e.lists) : null,
      reason: e.reason ?? '',
      expires: e.expires ? expiryOf(e.expires) : Infinity,
    }));
  }

  /** The entry that exempts this IP from `list`, if any. */
  ip(ip: string, list: string): AllowEntry | undefined {
    return this.entries.find((e) => e.ips?.contains(ip) && this.covers(e, list));
  }

  domain(domain: string, list: string): AllowEntry | undefined {
    return this.entries.find((e) => e.domain !== null && domainMatches(domain, e.domain) && this.covers(e, list));
  }

  private covers(e: AllowEntry, list: string): boolean {
    return (e.lists === null || e.lists.has(list)) && this.now() < e.expires;
  }
}

/** A date alone means "through that day" (UTC). */
function expiryOf(text: string): number {
  return /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00Z`) + 86_400_000 : Date.parse(text);
}

/** For the trace: which list an allowlist entry skipped, and why. */
function allowed(e: AllowEntry | undefined, list: string, subject: string) {
  return e ? [{ list, subject, ...(e.reason ? { reason: e.reason } : {}) }] : [];
}

// ---------------------------------------------------------------- replies

interface ReplyFacts {
  list: string;
  ip?: string;
  domain?: string;
  sender?: string;
  helo?: string;
  txt?: string;
}

function fillReply(template: string, f: ReplyFacts): string {
  return template.replace(/\{(list|ip|domain|sender|helo|txt)\}/g, (_, k: keyof ReplyFacts) => f[k] ?? '');
}

const withTxt = (text: string, txt?: string) => (txt ? `${text}; ${txt}` : text);

// ---------------------------------------------------------------- metrics

const dnsblAnswers = new client.Counter({
  name: 'relayguard_dnsbl_answers_total',
  help: 'DNS list answers by list and status (listed, clean, error); cached="true" when served from the cache',
  labelNames: ['list', 'status', 'cached'] as const,
  registers: [registry],
});

function observeAnswer(a: DnsblAnswer): void {
  const list = a.query.list.name;
  dnsblAnswers.inc({ list, status: a.result.status, cached: String(a.cached) });
  if (a.cached) return;
  const dependency = `dnsbl:${list}`;
  dependencySeconds.observe(
    { dependency, result: a.result.status === 'error' ? a.result.code : a.result.status },
    a.ms / 1000,
  );
  dependencyUp.set({ dependency }, a.result.status === 'error' ? 0 : 1);
}

// ---------------------------------------------------------------- the rule

type Check = 'client' | 'sender' | 'helo';

interface ListDef extends DnsblList {
  reply?: string;
  check: Check[];
}

/** A query that knows which list asked it and what it checks (the client, the sender, HELO). */
interface ListQuery extends DnsblQuery {
  list: ListDef;
  check: Check;
}

interface Hit {
  query: ListQuery;
  codes: string[];
  txt?: string;
}

export const blocklistsRule = defineRule({
  name: 'blocklists',
  summary:
    'Refuses clients listed in DNS blocklists and senders in domain blocklists or static block lists, at MAIL FROM.',
  schema: blocklistsSchema,
  mta: {
    init: () => [
      '  # DNS lists need lists you may query (terms of use, a resolver that is not a public one). Example:',
      '  # blocklists:',
      '  #   mode: monitor',
      '  #   ip_lists:',
      '  #     - zone: zen.spamhaus.org',
      '  #       codes: [127.0.0.2, 127.0.0.3, 127.0.0.4, 127.0.0.9, 127.0.0.10, 127.0.0.11]',
      '  #   domain_lists:',
      '  #     - zone: dbl.spamhaus.org',
      '  #       codes: [127.0.1.2, 127.0.1.4, 127.0.1.5, 127.0.1.6]',
      '  #       check: [sender]',
    ],
  },
  audit: blocklistsAudit,
  create(config, env) {
    return createBlocklists(config, env);
  },
});

function createBlocklists(config: BlocklistsConfig, env: RuleEnv, now: () => number = Date.now): Rule {
  const toList = (l: BlocklistsConfig['ip_lists'][number], check: Check[]): ListDef => ({
    zone: l.zone,
    name: l.name ?? l.zone,
    codes: new ListingCodes(l.codes),
    check,
    ...(l.reply ? { reply: l.reply } : {}),
  });
  const ipLists = config.ip_lists.map((l) => toList(l, ['client']));
  const domainLists = config.domain_lists.map((l) => toList(l, l.check));
  const blockedIps = new NetworkSet(config.blocked_ips);
  const allow = new Allowlist(config.allowlist, now);
  const usesDns = ipLists.length + domainLists.length > 0;
  const dns = usesDns
    ? env.shared(
        'dnsbl',
        () =>
          new DnsblClient(
            env.policy.dns,
            {
              maxEntries: config.cache.max_entries,
              minTtl: config.cache.min_ttl,
              maxTtl: config.cache.max_ttl,
              negativeTtl: config.cache.negative_ttl,
            },
            Date.now,
            observeAnswer,
          ),
      )
    : null;
  if (usesDns && env.policy.dns.servers.length === 0) {
    env.log.info(
      'rule blocklists: dns.servers is empty, using the system resolvers (public resolvers are refused by most lists)',
    );
  }

  const exempt = (conn: ConnectionContext) => conn.internalNetwork || !!conn.authUser;

  /** IP list queries for this client, without the lists an allowlist entry exempts it from. */
  const ipQueries = (ip: string): ListQuery[] =>
    ipLists.flatMap((list) => {
      if (allow.ip(ip, list.name)) return [];
      const name = ipQueryName(ip, list.zone);
      return name ? [{ list, check: 'client' as const, subject: ip, name }] : [];
    });

  const startIpLookup = (conn: ConnectionContext, signal: AbortSignal) => {
    const ip = conn.client.ip!;
    const lookup = dns!.lookup(ipQueries(ip), { signal, log: conn.log });
    conn.state.set(IP_LOOKUP_KEY, { ip, lookup });
    return lookup;
  };

  /** The lookup started at connect; a new one when there is none (or it was for another address). */
  const ipLookup = (conn: ConnectionContext, signal: AbortSignal): Promise<DnsblAnswer[]> => {
    if (!dns || ipLists.length === 0 || !conn.client.ip) return Promise.resolve([]);
    const started = conn.state.get(IP_LOOKUP_KEY) as { ip: string; lookup: Promise<DnsblAnswer[]> } | undefined;
    return started?.ip === conn.client.ip ? started.lookup : startIpLookup(conn, signal);
  };

  const domainQueries = (name: string, check: 'sender' | 'helo'): ListQuery[] =>
    domainLists.flatMap((list) => {
      if (!list.check.includes(check) || allow.domain(name, list.name)) return [];
      const q = domainQueryName(name, list.zone);
      return q ? [{ list, check, subject: normalizeDomain(name), name: q }] : [];
    });

  const refuse = (hit: Hit, facts: ReplyFacts, details: Record<string, unknown>): Verdict => {
    const list = hit.query.list;
    let text: string;
    if (list.reply) text = fillReply(list.reply, facts);
    else if (hit.query.check === 'client')
      text = withTxt(`Client host [${facts.ip}] blocked using ${list.name}`, hit.txt);
    else if (hit.query.check === 'sender')
      text = withTxt(
        `Sender address <${facts.sender}> rejected: domain ${facts.domain} blocked using ${list.name}`,
        hit.txt,
      );
    else text = withTxt(`Helo command rejected: ${facts.helo} blocked using ${list.name}`, hit.txt);
    return reject(text, BLOCKED, {
      ...details,
      list: list.name,
      check: hit.query.check,
      subject: hit.query.subject,
      codes: hit.codes,
      ...(hit.txt ? { txt: hit.txt } : {}),
    });
  };

  const handlers: PhaseHandlers = {};

  if (ipLists.length > 0) {
    // Start the queries now; the answer is read at MAIL. The connect phase does not wait.
    handlers.connect = async ({ conn, signal }) => {
      if (!conn.client.ip || conn.internalNetwork) return pass();
      void startIpLookup(conn, signal);
      return pass();
    };
  }

  handlers.envfrom = async ({ conn, msg, signal }) => {
    if (exempt(conn)) return pass();
    const ip = conn.client.ip;
    const sender = msg?.sender;
    const domain = sender?.domain ?? '';
    const facts: ReplyFacts = {
      list: '',
      ...(ip ? { ip } : {}),
      ...(domain ? { domain, sender: sender!.raw } : {}),
      ...(conn.helo ? { helo: conn.helo } : {}),
    };

    // Static lists first: they need no DNS.
    if (ip && blockedIps.contains(ip)) {
      const a = allow.ip(ip, STATIC_BLOCKED_IPS);
      if (!a)
        return reject(`Client host [${ip}] blocked by local policy`, BLOCKED, {
          list: STATIC_BLOCKED_IPS,
          check: 'client',
          subject: ip,
        });
      conn.log.info(`blocklists: ${ip} in blocked_ips but allowlisted${a.reason ? ` (${a.reason})` : ''}`);
    }
    if (domain) {
      const blocked = config.blocked_domains.find((d) => domainMatches(domain, d));
      if (blocked) {
        const a = allow.domain(domain, STATIC_BLOCKED_DOMAINS);
        if (!a) {
          return reject(
            `Sender address <${sender!.raw}> rejected: domain ${domain} is blocked by local policy`,
            BLOCKED,
            {
              list: STATIC_BLOCKED_DOMAINS,
              check: 'sender',
              subject: domain,
              entry: blocked,
            },
          );
        }
        conn.log.info(
          `blocklists: sender domain ${domain} in blocked_domains but allowlisted${a.reason ? ` (${a.reason})` : ''}`,
        );
      }
    }
    if (!dns) return pass();

    const started = performance.now();
    const helo = conn.helo && !conn.helo.startsWith('[') ? conn.helo : '';
    const domainBatch = [
      ...(domain ? domainQueries(domain, 'sender') : []),
      ...(helo ? domainQueries(helo, 'helo') : []),
    ];
    const [ipAnswers, domainAnswers] = await Promise.all([
      ipLookup(conn, signal),
      dns.lookup(domainBatch, { signal, log: conn.log }),
    ]);
    const answers = [...ipAnswers, ...domainAnswers];
    const details: Record<string, unknown> = { dns_ms: Math.round(performance.now() - started) };
    const exempted = [
      ...(ip ? ipLists.flatMap((l) => allowed(allow.ip(ip, l.name), l.name, ip)) : []),
      ...(domain
        ? domainLists.flatMap((l) =>
            l.check.includes('sender') ? allowed(allow.domain(domain, l.name), l.name, domain) : [],
          )
        : []),
      ...(helo
        ? domainLists.flatMap((l) =>
            l.check.includes('helo') ? allowed(allow.domain(helo, l.name), l.name, helo) : [],
          )
        : []),
    ];
    if (exempted.length) details.allowlisted = exempted;
    const errors = answers.flatMap((a) =>
      a.result.status === 'error' ? [{ list: a.query.list.name, subject: a.query.subject, error: a.result.code }] : [],
    );
    if (errors.length) details.list_errors = errors;
    // The first listing in order: client lists, then sender, then HELO.
    for (const a of answers) {
      if (a.result.status !== 'listed') continue;
      const hit: Hit = {
        query: a.query as ListQuery,
        codes: a.result.codes,
        ...(a.result.txt ? { txt: a.result.txt } : {}),
      };
      return refuse(hit, { ...facts, list: a.query.list.name, ...(hit.txt ? { txt: hit.txt } : {}) }, details);
    }
    return errors.length || exempted.length ? pass(details) : pass();
  };

  return {
    name: 'blocklists',
    mode: config.mode,
    needs: { macros: { envfrom: AUTH_MACROS } },
    handlers,
  };
}
