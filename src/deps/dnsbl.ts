// DNS blocklist client (DNSBL for IP addresses, RHSBL for domain names) on node:dns/promises.
//
// Why our own: the npm packages read every A answer as "listed" (so a list that answers
// 127.255.255.254 — "you query through a public resolver" — rejects all mail), swallow errors
// silently and have no shared time budget. Here:
//  * an answer is a listing only when it lies in 127.0.0.0/8 AND is one of the list's configured
//    codes; anything else is a list error (logged, counted, never a listing);
//  * NXDOMAIN / NODATA mean "not listed", every other failure is an error;
//  * all queries of one lookup run in parallel under ONE budget (and the caller's AbortSignal):
//    what has not answered by then counts as an error and the mail goes on (fail-open);
//  * answers are cached by their TTL, "not listed" briefly; errors are not cached.
import { Resolver } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';
import type { Logger } from 'winston';
import { normalizeDomain } from '../primitives/address.js';
import { normalizeIp } from '../primitives/networks.js';
import { untilAborted } from './until-aborted.js';

export interface DnsblSettings {
  /** "host" or "host:port" ("[::1]:5353" for IPv6); empty: the system's resolvers. */
  servers: readonly string[];
  /** Per-query timeout (ms); one try per query. */
  timeout: number;
  /** Total time (ms) all queries of one lookup may take together. */
  budget: number;
}

export interface DnsblCacheSettings {
  /** Entries kept at most; the oldest go first. */
  maxEntries: number;
  /** Lower and upper bound (ms) for how long a listing answer is kept, whatever its TTL says. */
  minTtl: number;
  maxTtl: number;
  /** How long (ms) "not listed" is kept (Node does not expose the SOA minimum of NXDOMAIN). */
  negativeTtl: number;
}

const DEFAULT_CACHE: DnsblCacheSettings = {
  maxEntries: 10_000,
  minTtl: 10_000,
  maxTtl: 3_600_000,
  negativeTtl: 60_000,
};

/** A TXT reason longer than this is cut: it ends up in an SMTP reply line. */
const MAX_TXT_LENGTH = 200;

/** Listing answers are loopback addresses; 127.255.255.0/24 is where lists put their error codes. */
const LISTING_RANGE = ipaddr.parseCIDR('127.0.0.0/8');
const LIST_ERROR_RANGE = ipaddr.parseCIDR('127.255.255.0/24');

/** Answers that are "not listed" rather than a failure. */
const NOT_LISTED_CODES = new Set(['ENOTFOUND', 'ENODATA']);

export type ListResult =
  | { status: 'listed'; codes: string[]; txt?: string }
  | { status: 'clean' }
  /**
   * code: a DNS error code (ETIMEOUT, ESERVFAIL, ECONNREFUSED...), EBUDGET (the shared budget ran
   * out), or one of the answer errors: ELISTERROR (127.255.255.x), EUNKNOWNCODE (in 127/8 but not
   * a configured code), EBADANSWER (outside 127/8: a resolver that rewrites NXDOMAIN).
   */
  | { status: 'error'; code: string; answers?: string[] };

// ---------------------------------------------------------------- listing codes

/** The answers a list uses for "listed": single addresses, "a-b" ranges or CIDR blocks, all in 127/8. */
export class ListingCodes {
  private readonly ranges: Array<[number, number]> = [];

  constructor(readonly specs: readonly string[]) {
    for (const spec of specs) {
      const err = checkCodeSpec(spec);
      if (err) throw new Error(`listing code "${spec}": ${err}`);
      this.ranges.push(codeRange(spec));
    }
  }

  has(ip: string): boolean {
    if (!ipaddr.IPv4.isValidFourPartDecimal(ip)) return false;
    const n = v4ToNumber(ip);
    return this.ranges.some(([lo, hi]) => n >= lo && n <= hi);
  }
}

/** null when `spec` is a usable listing code, else why not (for the policy schema). */
export function checkCodeSpec(spec: string): string | null {
  let range: [number, number];
  try {
    range = codeRange(spec);
  } catch {
    return 'use an IPv4 address, a range "127.0.0.2-127.0.0.11" or a CIDR block';
  }
  const [lo, hi] = range;
  if (lo > hi) return 'range ends before it starts';
  const [netLo, netHi] = cidrBounds('127.0.0.0/8');
  if (lo < netLo || hi > netHi) return 'listing codes lie in 127.0.0.0/8';
  const [errLo, errHi] = cidrBounds('127.255.255.0/24');
  if (hi >= errLo && lo <= errHi) return '127.255.255.x are list error answers, never listings';
  return null;
}

function codeRange(spec: string): [number, number] {
  const s = spec.trim();
  if (s.includes('/')) return cidrBounds(s);
  const dash = s.indexOf('-');
  if (dash >= 0) return [strictV4(s.slice(0, dash).trim()), strictV4(s.slice(dash + 1).trim())];
  const n = strictV4(s);
  return [n, n];
}

function strictV4(s: string): number {
  if (!ipaddr.IPv4.isValidFourPartDecimal(s)) throw new Error(`not an IPv4 address: ${s}`);
  return v4ToNumber(s);
}

function cidrBounds(s: string): [number, number] {
  const [addr, bits] = ipaddr.IPv4.parseCIDR(s);
  const size = 2 ** (32 - bits);
  const lo = Math.floor(v4ToNumber(addr.toString()) / size) * size;
  return [lo, lo + size - 1];
}

function v4ToNumber(ip: string): number {
  return ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

// ---------------------------------------------------------------- query names and answers

/** "d.c.b.a.zone" for IPv4, 32 reversed nibbles for IPv6 (v4-mapped IPv6 queries as IPv4). */
export function ipQueryName(ip: string, zone: string): string | null {
  const norm = normalizeIp(ip);
  if (!norm) return null;
  const addr = ipaddr.parse(norm);
  const labels =
    addr.kind() === 'ipv4'
      ? norm.split('.').reverse()
      : (addr as ipaddr.IPv6).parts
          .map((part) => part.toString(16).padStart(4, '0'))
          .join('')
          .split('')
          .reverse();
  return `${labels.join('.')}.${zone.toLowerCase()}`;
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
const MAX_NAME_LENGTH = 253;

/** "domain.zone" (lower case, IDNA); null for a name that cannot be a DNS name (address literal, junk). */
export function domainQueryName(domain: string, zone: string): string | null {
  const d = normalizeDomain(domain);
  if (!d || !isDnsName(d)) return null;
  const name = `${d}.${zone.toLowerCase()}`;
  return name.length <= MAX_NAME_LENGTH ? name : null;
}

export function isDnsName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && name.split('.').every((l) => LABEL.test(l));
}

/** Decide what a list's A answers mean. Pure, so the rules about codes are easy to test. */
export function classifyAnswers(addresses: readonly string[], codes: ListingCodes): ListResult {
  if (addresses.length === 0) return { status: 'clean' };
  const parsed = addresses.map((a) => (ipaddr.IPv4.isValidFourPartDecimal(a) ? ipaddr.IPv4.parse(a) : null));
  if (parsed.some((p) => !p || !p.match(LISTING_RANGE)))
    return { status: 'error', code: 'EBADANSWER', answers: [...addresses] };
  if (parsed.some((p) => p!.match(LIST_ERROR_RANGE)))
    return { status: 'error', code: 'ELISTERROR', answers: [...addresses] };
  const listed = addresses.filter((a) => codes.has(a));
  if (listed.length === 0) return { status: 'error', code: 'EUNKNOWNCODE', answers: [...addresses] };
  return { status: 'listed', codes: listed };
}

/** TXT records as one printable line, cut to MAX_TXT_LENGTH. */
export function cleanTxt(records: string[][]): string | undefined {
  const text = records
    .map((chunks) => chunks.join(''))
    .join('; ')
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (!text) return undefined;
  return text.length > MAX_TXT_LENGTH ? `${text.slice(0, MAX_TXT_LENGTH - 3)}...` : text;
}

// ---------------------------------------------------------------- the client

export interface DnsblList {
  /** DNS zone queried, e.g. "zen.spamhaus.org". */
  zone: string;
  /** Name used in logs and replies (a keyed zone can be shown under a public name). */
  name: string;
  codes: ListingCodes;
}

export interface DnsblQuery {
  list: DnsblList;
  /** The IP address or domain being looked up. */
  subject: string;
  /** Full DNS name: ipQueryName() or domainQueryName(). */
  name: string;
}

export interface DnsblAnswer {
  query: DnsblQuery;
  result: ListResult;
  /** Served from the cache. */
  cached: boolean;
  ms: number;
}

export interface DnsblStats {
  queries: number;
  cacheHits: number;
  listed: number;
  clean: number;
  errors: number;
  /** Queries cut off by the shared budget or the caller's deadline. */
  budgetExceeded: number;
}

type CacheEntry = { expires: number; addresses: string[] | null; txt?: string };

export class DnsblClient {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly counters: DnsblStats = {
    queries: 0,
    cacheHits: 0,
    listed: 0,
    clean: 0,
    errors: 0,
    budgetExceeded: 0,
  };
  private readonly cacheSettings: DnsblCacheSettings;

  constructor(
    private readonly settings: DnsblSettings,
    cache: Partial<DnsblCacheSettings> = {},
    private readonly now: () => number = Date.now,
    /** Sees every answer (metrics). */
    private readonly observe?: (answer: DnsblAnswer) => void,
  ) {
    this.cacheSettings = { ...DEFAULT_CACHE, ...cache };
    this.newResolver(); // a bad server address fails here, when the policy loads
  }

  get stats(): Readonly<DnsblStats> {
    return { ...this.counters };
  }

  /**
   * Runs every query in parallel; resolves (never rejects) with one answer per query, in order,
   * at the latest when the budget or `signal` runs out.
   */
  async lookup(
    queries: readonly DnsblQuery[],
    opts: { signal?: AbortSignal; log?: Logger } = {},
  ): Promise<DnsblAnswer[]> {
    if (queries.length === 0) return [];
    // The budget is a timer cleared when the lookup is done: AbortSignal.timeout would stay alive
    // for its whole term after every lookup, and a client that opens sessions quickly (pipelined
    // QUIT_NC + CONNECT) would pile them up.
    const ends = new AbortController();
    const deadline = ends.signal;
    const budget = setTimeout(
      () => ends.abort(new DOMException('blocklist budget', 'TimeoutError')),
      this.settings.budget,
    );
    budget.unref();
    const onCaller = () => ends.abort(opts.signal?.reason);
    if (opts.signal?.aborted) onCaller();
    else opts.signal?.addEventListener('abort', onCaller, { once: true });
    let resolver: Resolver | null = null;
    const getResolver = () => (resolver ??= this.newResolver());
    // Cancelling makes c-ares give up at once on everything still outstanding.
    const onDeadline = () => resolver?.cancel();
    deadline.addEventListener('abort', onDeadline, { once: true });
    try {
      const answers = await Promise.all(queries.map((q) => this.one(q, getResolver, deadline)));
      for (const a of answers) this.count(a, opts.log);
      return answers;
    } finally {
      clearTimeout(budget);
      opts.signal?.removeEventListener('abort', onCaller);
      deadline.removeEventListener('abort', onDeadline);
    }
  }

  clearCache(): void {
    this.cache.clear();
  }

  private newResolver(): Resolver {
    const r = new Resolver({ timeout: this.settings.timeout, tries: 1 });
    if (this.settings.servers.length) r.setServers([...this.settings.servers]);
    return r;
  }

  private async one(query: DnsblQuery, resolver: () => Resolver, deadline: AbortSignal): Promise<DnsblAnswer> {
    const started = performance.now();
    const done = (result: ListResult, cached: boolean): DnsblAnswer => ({
      query,
      result,
      cached,
      ms: Math.round(performance.now() - started),
    });
    const hit = this.fromCache(query);
    if (hit) return done(hit, true);
    if (deadline.aborted) return done({ status: 'error', code: 'EBUDGET' }, false);
    try {
      const result = await untilAborted(this.resolve(query, resolver()), deadline);
      return done(result, false);
    } catch (err) {
      if (deadline.aborted) return done({ status: 'error', code: 'EBUDGET' }, false);
      return done({ status: 'error', code: (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN' }, false);
    }
  }

  private async resolve(query: DnsblQuery, resolver: Resolver): Promise<ListResult> {
    let records: Array<{ address: string; ttl: number }>;
    try {
      records = await resolver.resolve4(query.name, { ttl: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
      if (!NOT_LISTED_CODES.has(code)) throw err;
      this.store(query.name, null, this.cacheSettings.negativeTtl);
      return { status: 'clean' };
    }
    const addresses = records.map((r) => r.address);
    const result = classifyAnswers(addresses, query.list.codes);
    if (result.status !== 'listed') {
      // A clean/odd answer with records is unusual: keep it no longer than a negative answer.
      if (result.status === 'clean') this.store(query.name, addresses, this.cacheSettings.negativeTtl);
      return result;
    }
    // The reason is a courtesy for the rejected sender: its failure changes nothing.
    let txt: string | undefined;
    try {
      txt = cleanTxt(await resolver.resolveTxt(query.name));
    } catch {
      txt = undefined;
    }
    const ttl = Math.min(...records.map((r) => r.ttl)) * 1000;
    this.store(query.name, addresses, clamp(ttl, this.cacheSettings.minTtl, this.cacheSettings.maxTtl), txt);
    return txt ? { ...result, txt } : result;
  }

  private fromCache(query: DnsblQuery): ListResult | null {
    const entry = this.cache.get(query.name);
    if (!entry) return null;
    if (entry.expires <= this.now()) {
      this.cache.delete(query.name);
      return null;
    }
    if (entry.addresses === null) return { status: 'clean' };
    const result = classifyAnswers(entry.addresses, query.list.codes);
    return result.status === 'listed' && entry.txt ? { ...result, txt: entry.txt } : result;
  }

  private store(name: string, addresses: string[] | null, ttl: number, txt?: string): void {
    if (ttl <= 0 || this.cacheSettings.maxEntries <= 0) return;
    this.cache.delete(name); // re-insert at the end: Map order is our eviction order
    while (this.cache.size >= this.cacheSettings.maxEntries) {
      const oldest = this.cache.keys().next();
      if (oldest.done) break;
      this.cache.delete(oldest.value);
    }
    this.cache.set(name, { expires: this.now() + ttl, addresses, ...(txt ? { txt } : {}) });
  }

  private count(a: DnsblAnswer, log: Logger | undefined): void {
    this.observe?.(a);
    this.counters.queries++;
    if (a.cached) this.counters.cacheHits++;
    const r = a.result;
    if (r.status === 'listed') this.counters.listed++;
    else if (r.status === 'clean') this.counters.clean++;
    else {
      this.counters.errors++;
      if (r.code === 'EBUDGET') this.counters.budgetExceeded++;
      log?.warn(`dnsbl ${a.query.list.name}: ${describeError(r)} for ${a.query.subject}; not treated as a listing`, {
        list: a.query.list.name,
        query: a.query.name,
        dns_error: r.code,
        ...(r.answers ? { answers: r.answers } : {}),
        ms: a.ms,
      });
    }
  }
}

function describeError(r: { code: string; answers?: string[] }): string {
  switch (r.code) {
    case 'EBUDGET':
      return 'no answer within the DNS budget';
    case 'ELISTERROR':
      return `list error answer ${r.answers?.join(',') ?? ''} (query refused by the list)`;
    case 'EUNKNOWNCODE':
      return `answer ${r.answers?.join(',') ?? ''} is not a configured listing code`;
    case 'EBADANSWER':
      return `answer ${r.answers?.join(',') ?? ''} outside 127.0.0.0/8 (resolver rewrites answers?)`;
    default:
      return `DNS error ${r.code}`;
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Number.isFinite(v) ? v : lo));
}
