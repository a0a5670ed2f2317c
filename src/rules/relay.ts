// Rule 1: no open relay. An outside client that did not authenticate may only send to our own
// domains; every other recipient is refused on its own (the others of the same message stay).
// This holds even when the MTA in front is misconfigured as an open relay.
import { domainMatches, normalizeDomain } from '../primitives/address.js';
import { NetworkSet } from '../primitives/networks.js';
import { pass, reject, type Address, type ConnectionContext, type MessageContext } from '../policy/types.js';
import { relayAudit } from './relay/audit.js';
import { relayMta } from './relay/mta.js';
import { relaySchema } from './relay/schema.js';
import { defineRule } from '../policy/rule-env.js';

/** Postfix's own answer to an unauthorised relay attempt (reject_unauth_destination). */
const RELAY_DENIED = { code: 554, enhanced: '5.7.1' } as const;
const RELAY_DENIED_TEXT = 'Relay access denied';

/** SASL macros the relay decision depends on (MAIL stage; Postfix sends them there). */
export const AUTH_MACROS = ['{auth_authen}', '{auth_type}'];

/** RFC 5321 4.5.1: <postmaster> without a domain must always be accepted. */
const BARE_POSTMASTER = 'postmaster';

/**
 * Characters that route mail onwards from inside a local part: the percent hack
 * (user%other@us), bang paths (other!user@us) and a second @ in a quoted local part. An MTA
 * that honours them relays to `other`, so an outside client may not use them.
 */
const ROUTING_CHARS = /[%!@]/;

/** Who may send anywhere: internal networks and authenticated clients (the outbound side). */
export function isTrustedClient(conn: ConnectionContext, msg?: MessageContext): boolean {
  return conn.internalNetwork || !!conn.authUser || msg?.direction === 'outbound';
}

export const relayRule = defineRule({
  name: 'relay',
  summary:
    'Refuses recipients outside the local domains for outside clients that did not authenticate (no open relay).',
  schema: relaySchema,
  mta: relayMta,
  audit: relayAudit,
  create(config, env) {
    const domains = [...env.policy.local_domains, ...config.relay_domains].map(normalizeDomain);
    const trusted = new NetworkSet(config.trusted_networks);
    if (domains.length === 0)
      env.log.warn(
        'rule relay: no local_domains and no relay_domains: every recipient of an outside client is refused',
      );

    const isOurDomain = (domain: string) =>
      domains.some((d) => (config.include_subdomains ? domainMatches(domain, d) : normalizeDomain(domain) === d));

    /** Why an outside client may not use this recipient, or null when it may. */
    const refusal = (a: Address): string | null => {
      if (a.domain === '') return a.local.toLowerCase() === BARE_POSTMASTER ? null : 'recipient has no domain';
      if (!isOurDomain(a.domain)) return 'recipient domain is not local';
      if (config.refuse_routing_local_parts && ROUTING_CHARS.test(a.local)) return 'local part routes to another host';
      return null;
    };

    return {
      name: 'relay',
      mode: config.mode,
      needs: { macros: { envfrom: AUTH_MACROS } },
      handlers: {
        async envrcpt({ conn, msg, rcpt }) {
          if (!rcpt) return pass();
          if (isTrustedClient(conn, msg)) return pass();
          if (trusted.contains(conn.client.ip)) return pass({ trusted_network: true });
          const why = refusal(rcpt.address);
          if (!why) return pass();
          return reject(`<${rcpt.address.raw}>: ${RELAY_DENIED_TEXT}`, RELAY_DENIED, {
            why,
            domain: rcpt.address.domain,
          });
        },
      },
    };
  },
});
