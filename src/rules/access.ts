// Rule 4: who may talk to us at all, and who may claim to be us.
//  - Networks denied at connect (and, optionally, an allow list: only those plus the internal
//    networks may connect). A refusal at connect makes Postfix greet with 554 and refuse MAIL and
//    every later transaction command.
//  - Anti-spoofing: an outside client that did not authenticate may not use one of our domains
//    as envelope sender (refused at MAIL) or in From: (refused at end of headers).
import { domainMatches, normalizeDomain, parseEnvelopeAddress } from '../primitives/address.js';
import { NetworkSet } from '../primitives/networks.js';
import { pass, reject, type Header } from '../policy/types.js';
import { AUTH_MACROS, isTrustedClient } from './relay.js';
import { accessAudit } from './access/audit.js';
import { accessSchema } from './access/schema.js';
import { defineRule } from '../policy/rule-env.js';

/** Refusals of this rule: 554 at connect (what Postfix itself uses for an access denial). */
const NETWORK_DENIED = { code: 554, enhanced: '5.7.1' } as const;
const SPOOF_REFUSED = { code: 550, enhanced: '5.7.1' } as const;

/**
 * Blanks around every "@" removed. Not by a regex of optional blanks around "@": that retries
 * every position of a long blank run (quadratic), and a header is the sender's to fill.
 */
function closeUpAts(s: string): string {
  if (!s.includes('@')) return s;
  const parts = s.split('@');
  const last = parts.length - 1;
  return parts.map((p, i) => (i > 0 && i < last ? p.trim() : i > 0 ? p.trimStart() : p.trimEnd())).join('@');
}

/**
 * The mailbox addresses of a From:-style header value. Display names, quoted strings and
 * comments are not addresses: a display name "Alice (alice@example.test) via List" from a
 * mailing list is not a spoof, the address in angle brackets is what counts.
 */
export function headerAddresses(value: string): string[] {
  const out: string[] = [];
  let i = 0;
  let bare = '';
  const flushBare = () => {
    // Obsolete syntax allows blanks (and comments, already blanked) around the @.
    for (const token of closeUpAts(bare).split(/[\s,;:]+/)) if (token.includes('@')) out.push(token);
    bare = '';
  };
  while (i < value.length) {
    const ch = value[i]!;
    if (ch === '"') {
      // Quoted string: skip, honouring backslash escapes.
      i++;
      while (i < value.length && value[i] !== '"') i += value[i] === '\\' ? 2 : 1;
      i++;
      bare += ' ';
    } else if (ch === '(') {
      // Comment, may nest.
      let depth = 1;
      i++;
      while (i < value.length && depth > 0) {
        const c = value[i]!;
        if (c === '\\') i++;
        else if (c === '(') depth++;
        else if (c === ')') depth--;
        i++;
      }
      bare += ' ';
    } else if (ch === '<') {
      const end = value.indexOf('>', i + 1);
      const inner = end < 0 ? value.slice(i + 1) : value.slice(i + 1, end);
      out.push(inner.replace(/\s+/g, ''));
      // The phrase right before the angle address is its display name; earlier mailboxes of a
      // list ("a@x, Bob <b@y>") are still addresses.
      const cut = Math.max(bare.lastIndexOf(','), bare.lastIndexOf(':'), bare.lastIndexOf(';'));
      bare = cut < 0 ? '' : bare.slice(0, cut + 1);
      flushBare();
      i = end < 0 ? value.length : end + 1;
    } else {
      bare += ch;
      i++;
    }
  }
  flushBare();
  return out.filter((a) => a.length > 0);
}

export const accessRule = defineRule({
  name: 'access',
  summary:
    'Refuses denied networks at connect and outside clients that use a local domain as sender (envelope or From:).',
  schema: accessSchema,
  mta: {
    init: () => [
      '  access:',
      '    # enforce: deny_networks are refused at connect; outside clients may not use local_domains as',
      '    # envelope sender or in From: (550 5.7.1).',
      '    mode: monitor',
      '    deny_networks: []',
      '    anti_spoofing:',
      '      envelope_sender: true',
      '      header_from: true',
      '      include_subdomains: true',
    ],
  },
  audit: accessAudit,
  create(config, env) {
    const denied = new NetworkSet(config.deny_networks);
    const allowed = new NetworkSet(config.allow_networks);
    const spoofers = new NetworkSet(config.allow_spoofing_from);
    const spoof = config.anti_spoofing;
    const ours = env.policy.local_domains.map(normalizeDomain);
    const isOurs = (domain: string) =>
      domain !== '' &&
      ours.some((d) => (spoof.include_subdomains ? domainMatches(domain, d) : normalizeDomain(domain) === d));

    return {
      name: 'access',
      mode: config.mode,
      needs: { macros: { envfrom: AUTH_MACROS } },
      handlers: {
        async connect({ conn }) {
          const ip = conn.client.ip;
          if (denied.contains(ip))
            return reject('Access denied: client network is not allowed', NETWORK_DENIED, { list: 'deny_networks' });
          if (allowed.size > 0 && !conn.internalNetwork && !allowed.contains(ip)) {
            return reject('Access denied: client network is not on the allow list', NETWORK_DENIED, {
              list: 'allow_networks',
            });
          }
          return pass();
        },
        async envfrom({ conn, msg }) {
          if (!spoof.envelope_sender || !msg?.sender) return pass();
          if (isTrustedClient(conn, msg) || spoofers.contains(conn.client.ip)) return pass();
          const domain = msg.sender.domain;
          if (!isOurs(domain)) return pass();
          return reject(
            `<${msg.sender.raw}>: Sender address rejected: not logged in to use local domain ${domain}`,
            SPOOF_REFUSED,
            {
              spoof: 'envelope',
              domain,
            },
          );
        },
        async eoh({ conn, msg }) {
          if (!spoof.header_from || !msg) return pass();
          if (isTrustedClient(conn, msg) || spoofers.contains(conn.client.ip)) return pass();
          const hit = spoofedFrom(msg.headers, isOurs);
          if (!hit) return pass();
          return reject(`From: header rejected: not logged in to use local domain ${hit.domain}`, SPOOF_REFUSED, {
            spoof: 'header',
            address: hit.address,
            domain: hit.domain,
          });
        },
      },
    };
  },
});

/** The first From: address (of any From: header) in one of our domains. */
function spoofedFrom(
  headers: readonly Header[],
  isOurs: (d: string) => boolean,
): { address: string; domain: string } | null {
  for (const h of headers) {
    if (h.name.toLowerCase() !== 'from') continue;
    for (const a of headerAddresses(h.value.replace(/\r?\n/g, ' '))) {
      const addr = parseEnvelopeAddress(a);
      if (isOurs(addr.domain)) return { address: addr.raw, domain: addr.domain };
    }
  }
  return null;
}
