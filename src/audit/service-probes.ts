// The audit's probes of the services around the MTA: the DNS blocklists (do they answer their
// RFC 5782 test points as relayguard reads them?), clamd (alive, signatures fresh?) and
// relayguard itself (does its milter address negotiate?).
import type { PolicyConfig } from '../config/schema.js';
import { ClamdClient } from '../deps/clamd.js';
import { DnsblClient, ipQueryName, ListingCodes, type DnsblList, type DnsblQuery, type ListResult } from '../deps/dnsbl.js';
import { activeRule, mtaRequirements } from '../mta/requirements.js';
import type { AntivirusConfig } from '../rules/antivirus.js';
import { milterOptneg } from './milter-probe.js';

export type ProbeOutcome = { ok: boolean; detail: string; [extra: string]: unknown };
export type ProbeFn = () => Promise<ProbeOutcome>;

/** Extra time the audit gives the gateway beyond relayguard's own deadlines. */
export const REPLY_MARGIN_MS = 10_000;
/** A signature database older than this means updates have stopped. */
const MAX_SIGNATURE_AGE_S = 7 * 24 * 3600;
/** RFC 5782 test points: 127.0.0.2 must be listed, 127.0.0.1 never. */
const DNSBL_LISTED_TEST_POINT = '127.0.0.2';
const DNSBL_UNLISTED_TEST_POINT = '127.0.0.1';

/** What relayguard makes of an answer, in words. */
function describeAnswer(r: ListResult): string {
  if (r.status === 'listed') return `listed (${r.codes.join(', ')})`;
  if (r.status === 'clean') return 'not listed';
  return `list error ${r.code}${r.answers ? ` (${r.answers.join(', ')})` : ''}`;
}

/** One probe per IP list of the blocklists rule (none when the rule is absent or off). */
export function dnsblProbes(config: PolicyConfig, signal?: AbortSignal): Array<[string, ProbeFn]> {
  const rule = activeRule<{ ip_lists?: Array<{ zone: string; name?: string; codes: string[] }> }>(config, 'blocklists');
  const { dns } = config;
  return (rule?.ip_lists ?? []).map((l): [string, ProbeFn] => {
    const list: DnsblList = { zone: l.zone, name: l.name ?? l.zone, codes: new ListingCodes(l.codes) };
    const where = `${list.name}${dns.servers.length ? ` via ${dns.servers.join(', ')}` : ''}`;
    return [
      `dnsbl:${list.name}`,
      async () => {
        // No cache: every audit asks the list afresh.
        const client = new DnsblClient({ servers: dns.servers, timeout: dns.timeout, budget: dns.budget }, { maxEntries: 0 });
        const query = (ip: string): DnsblQuery => ({ list, subject: ip, name: ipQueryName(ip, list.zone)! });
        const [listed, unlisted] = (await client.lookup([query(DNSBL_LISTED_TEST_POINT), query(DNSBL_UNLISTED_TEST_POINT)], signal ? { signal } : {})).map((a) => a.result) as [ListResult, ListResult];
        const evidence = { test_point: describeAnswer(listed), unlisted_point: describeAnswer(unlisted) };
        if (listed.status !== 'listed') {
          return { ok: false, detail: `${where}: test point ${DNSBL_LISTED_TEST_POINT} is ${describeAnswer(listed)}, not a listing with codes ${l.codes.join(', ')}: the list blocks nothing from here`, ...evidence };
        }
        if (unlisted.status === 'listed') {
          return { ok: false, detail: `${where}: ${DNSBL_UNLISTED_TEST_POINT} (never listed, RFC 5782) reads as listed: the list or resolver answers for everything`, ...evidence };
        }
        return { ok: true, detail: `${where}: ${DNSBL_LISTED_TEST_POINT} ${describeAnswer(listed)}; ${DNSBL_UNLISTED_TEST_POINT} ${describeAnswer(unlisted)} (not a listing)`, ...evidence };
      },
    ];
  });
}

/** clamd answers PING and has fresh signatures; null without an active antivirus rule. */
export function clamdProbe(config: PolicyConfig, signal?: AbortSignal, now?: () => number): ProbeFn | null {
  const av = activeRule<AntivirusConfig>(config, 'antivirus');
  if (!av) return null;
  return async () => {
    const client = new ClamdClient({ address: av.clamd.address, timeoutMs: av.clamd.timeout });
    const h = await client.health(signal, now);
    if (!h.ok) return { ok: false, detail: `clamd ${client.name}: ${h.error ?? 'no answer'}` };
    const v = h.version?.raw ?? 'no VERSION';
    if (h.databaseAgeSeconds === undefined) {
      return { ok: true, detail: `clamd ${client.name}: PONG in ${h.latencyMs}ms; ${v}; no official signature database date (custom signatures only?)`, version: v };
    }
    const days = Math.round((h.databaseAgeSeconds / 86400) * 10) / 10;
    const ok = h.databaseAgeSeconds <= MAX_SIGNATURE_AGE_S;
    return {
      ok,
      detail: `clamd ${client.name}: PONG in ${h.latencyMs}ms; ${v}; signatures ${days} day(s) old${ok ? '' : ` (older than ${MAX_SIGNATURE_AGE_S / 86400} days: are updates running?)`}`,
      version: v,
      signature_age_s: h.databaseAgeSeconds,
    };
  };
}

/** relayguard's own milter address accepts a connection and negotiates like a milter. */
export function milterProbe(config: PolicyConfig, signal?: AbortSignal): ProbeFn {
  return async () => {
    const req = mtaRequirements(config);
    const where = req.milter.kind === 'unix' ? `unix:${req.milter.path}` : `${req.milter.host}:${req.milter.port}`;
    const a = await milterOptneg(req.milter, config.server.deadlines.connect + REPLY_MARGIN_MS, signal);
    return { ok: true, detail: `relayguard at ${where} answered OPTNEG in ${a.ms}ms: version ${a.version}, actions 0x${a.actions.toString(16)}, protocol 0x${a.protocol.toString(16)}` };
  };
}

