// Rule 8 in the self-audit: every IP list answers its RFC 5782 test points as relayguard reads
// them (127.0.0.2 listed with one of the configured codes, 127.0.0.1 never).
import {
  DnsblClient,
  ipQueryName,
  ListingCodes,
  type DnsblList,
  type DnsblQuery,
  type ListResult,
} from '../../deps/dnsbl.js';
import type { AuditProbe, RuleAuditPart } from '../../policy/rule-parts.js';
import type { BlocklistsConfig } from './schema.js';

/** RFC 5782 test points: 127.0.0.2 must be listed, 127.0.0.1 never. */
const DNSBL_LISTED_TEST_POINT = '127.0.0.2';
const DNSBL_UNLISTED_TEST_POINT = '127.0.0.1';

/** What relayguard makes of an answer, in words. */
function describeAnswer(r: ListResult): string {
  if (r.status === 'listed') return `listed (${r.codes.join(', ')})`;
  if (r.status === 'clean') return 'not listed';
  return `list error ${r.code}${r.answers ? ` (${r.answers.join(', ')})` : ''}`;
}

/** One probe per IP list (none when the rule is absent or off). */
export const blocklistsAudit: RuleAuditPart<BlocklistsConfig> = {
  probes(config, ctx) {
    const { dns } = ctx.policy;
    return (config?.ip_lists ?? []).map((l): AuditProbe => {
      const list: DnsblList = { zone: l.zone, name: l.name ?? l.zone, codes: new ListingCodes(l.codes) };
      const where = `${list.name}${dns.servers.length ? ` via ${dns.servers.join(', ')}` : ''}`;
      return {
        name: `dnsbl:${list.name}`,
        async run() {
          // No cache: every audit asks the list afresh.
          const client = new DnsblClient(
            { servers: dns.servers, timeout: dns.timeout, budget: dns.budget },
            { maxEntries: 0 },
          );
          const query = (ip: string): DnsblQuery => ({ list, subject: ip, name: ipQueryName(ip, list.zone)! });
          const answers = await client.lookup(
            [query(DNSBL_LISTED_TEST_POINT), query(DNSBL_UNLISTED_TEST_POINT)],
            ctx.signal ? { signal: ctx.signal } : {},
          );
          const [listed, unlisted] = answers.map((a) => a.result) as [ListResult, ListResult];
          const evidence = { test_point: describeAnswer(listed), unlisted_point: describeAnswer(unlisted) };
          if (listed.status !== 'listed') {
            return {
              ok: false,
              detail: `${where}: test point ${DNSBL_LISTED_TEST_POINT} is ${describeAnswer(listed)}, not a listing with codes ${l.codes.join(', ')}: the list blocks nothing from here`,
              ...evidence,
            };
          }
          if (unlisted.status === 'listed') {
            return {
              ok: false,
              detail: `${where}: ${DNSBL_UNLISTED_TEST_POINT} (never listed, RFC 5782) reads as listed: the list or resolver answers for everything`,
              ...evidence,
            };
          }
          return {
            ok: true,
            detail: `${where}: ${DNSBL_LISTED_TEST_POINT} ${describeAnswer(listed)}; ${DNSBL_UNLISTED_TEST_POINT} ${describeAnswer(unlisted)} (not a listing)`,
            ...evidence,
          };
        },
      };
    });
  },
};
