// Rule 9: TLS policy. Some networks (by CIDR or by network group, e.g. `partner`) and some
// sender domains must arrive encrypted, with at least a minimum TLS version; otherwise MAIL is
// refused with 530 5.7.0 (RFC 3207). Every delivered message records the connection's TLS in a
// header, and a header of that name that came with the message is removed (it would lie).
//
// The decision waits for MAIL on purpose: a refusal at HELO would make Postfix refuse STARTTLS
// too, so the client could never fix it.
import { domainMatches } from '../primitives/address.js';
import { NetworkSet, isValidCidr } from '../primitives/networks.js';
import { modify, pass, reject, type ConnectionContext, type Modification, type TlsInfo } from '../policy/types.js';
import { tlsRank } from '../primitives/tls-version.js';
import { tlsAudit } from './tls/audit.js';
import { tlsMta } from './tls/mta.js';
import { tlsSchema } from './tls/schema.js';
import { defineRule } from '../policy/rule-env.js';

const TLS_REQUIRED = { code: 530, enhanced: '5.7.0' } as const;
const TLS_REQUIRED_TEXT = 'Must issue a STARTTLS command first';

/** Postfix sends these at HELO (milter_helo_macros) and, when asked, at MAIL. */
const TLS_MACROS = ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}', '{verify}'];

export { tlsRank };

/** The header value: "version=TLSv1.3 cipher=... bits=256" or "none". */
export function describeTls(tls: TlsInfo | undefined): string {
  if (!tls) return 'none';
  const parts = [`version=${tls.version}`];
  if (tls.cipher) parts.push(`cipher=${tls.cipher}`);
  if (tls.bits !== undefined) parts.push(`bits=${tls.bits}`);
  if (tls.verify) parts.push(`verify=${tls.verify}`);
  return parts.join(' ');
}

export const tlsRule = defineRule({
  name: 'tls',
  summary:
    'Requires TLS (and a minimum version) from given networks or sender domains, and records the TLS of every message in a header.',
  schema: tlsSchema,
  mta: tlsMta,
  audit: tlsAudit,
  crossCheck(config, policy) {
    return config.require.networks.flatMap((n, i) =>
      isValidCidr(n) || n in policy.networks.groups
        ? []
        : [{ path: ['require', 'networks', i], message: `no network group "${n}" under networks.groups` }],
    );
  },
  create(config, env) {
    const cidrs = config.require.networks.filter((n) => isValidCidr(n));
    const groups = config.require.networks.filter((n) => !isValidCidr(n));
    for (const g of groups) {
      // A typo here would silently drop the requirement: refuse to start instead.
      if (!(g in env.policy.networks.groups))
        throw new Error(`rule tls: require.networks: no network group "${g}" under networks.groups`);
    }
    const required = new NetworkSet(cidrs);
    const minRank = tlsRank(config.min_version)!;
    const headerName = config.header;

    /** Why this client must use TLS, or null. */
    const requirement = (conn: ConnectionContext, senderDomain: string): string | null => {
      const group = groups.find((g) => conn.networkGroups.includes(g));
      if (group) return `network group ${group}`;
      if (required.contains(conn.client.ip)) return 'network';
      const domain = senderDomain && config.require.sender_domains.find((d) => domainMatches(senderDomain, d));
      if (domain) return `sender domain ${domain}`;
      return null;
    };

    /** What is wrong with the connection's TLS, or null when it is good enough. */
    const shortfall = (tls: TlsInfo | undefined): string | null => {
      if (!tls) return TLS_REQUIRED_TEXT;
      const rank = tlsRank(tls.version);
      if (rank === null || rank < minRank) return `Encryption too weak: ${tls.version} is below ${config.min_version}`;
      if (config.min_cipher_bits > 0 && (tls.bits ?? 0) < config.min_cipher_bits) {
        return `Encryption too weak: ${tls.bits ?? 'unknown'} cipher bits, ${config.min_cipher_bits} required`;
      }
      return null;
    };

    return {
      name: 'tls',
      mode: config.mode,
      needs: {
        macros: { helo: TLS_MACROS, envfrom: TLS_MACROS },
        ...(headerName ? { actions: ['addHeader', 'changeHeader'] } : {}),
      },
      handlers: {
        async envfrom({ conn, msg }) {
          const why = requirement(conn, msg?.sender?.domain ?? '');
          if (!why) return pass();
          const problem = shortfall(conn.tls);
          if (!problem) return pass({ required_by: why, tls: describeTls(conn.tls) });
          return reject(problem, TLS_REQUIRED, { required_by: why, tls: describeTls(conn.tls) });
        },
        ...(headerName
          ? {
              async eom({ conn, msg }) {
                const mods: Modification[] = [];
                // Remove copies that came with the message, last first so indexes stay valid.
                const lower = headerName.toLowerCase();
                const existing = (msg?.headers ?? []).filter((h) => h.name.toLowerCase() === lower).length;
                for (let i = existing; i >= 1; i--)
                  mods.push({ type: 'changeHeader', name: headerName, index: i, value: '' });
                mods.push({ type: 'addHeader', name: headerName, value: describeTls(conn.tls) });
                return modify(mods, existing ? { removed_forged: existing } : undefined);
              },
            }
          : {}),
      },
    };
  },
});
