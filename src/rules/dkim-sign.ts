// Outbound DKIM signing after relayguard's own changes, so relayguard can be the last milter
// and a separate signer becomes optional. The signature covers the message as delivered: it is
// made in the engine's finish step, once every rule's changes (the disclaimer) are known.
// Keys per domain, several per domain (an rsa-sha256 and an ed25519-sha256 one, RFC 8463 says
// to send both while receivers learn Ed25519); the From domain picks them.
import { z } from 'zod';
import { dkimSignatures, type SealKey } from '../deps/mail-auth.js';
import { domainMatches, normalizeDomain } from '../primitives/address.js';
import { pass, type Header, type Modification } from '../policy/types.js';
import { headerAddresses } from './access.js';
import { loadSealKey, signingKeySchema } from './authentication.js';
import { modeField } from './common.js';
import { finalMessage } from './final-message.js';
import { defineRule } from '../policy/rule-env.js';
import { dkimSignaturesTotal } from '../ops/auth-metrics.js';

export const dkimSignSchema = z
  .object({
    mode: modeField(),
    /** The signing keys; outbound mail whose From domain is a key's domain or a subdomain of it is signed with every key of the most specific such domain. */
    keys: z.array(signingKeySchema).min(1).max(32),
  })
  .strict();

/** The From domain, or why the message is not signed. */
export function fromDomain(headers: readonly Header[]): { domain: string } | { skip: string } {
  const froms = headers.filter((h) => h.name.toLowerCase() === 'from');
  if (froms.length !== 1) return { skip: froms.length ? 'several From headers' : 'no From header' };
  const addrs = headerAddresses(froms[0]!.value);
  const domains = [...new Set(addrs.map((a) => normalizeDomain(a.slice(a.lastIndexOf('@') + 1))))];
  if (domains.length !== 1 || !domains[0])
    return { skip: domains.length ? 'From has addresses in several domains' : 'no address in From' };
  return { domain: domains[0] };
}

/** The keys for `domain`: those of the longest key domain that it is in. */
export function keysFor(keys: readonly SealKey[], domain: string): SealKey[] {
  const matching = keys.filter((k) => domainMatches(domain, k.domain));
  const longest = Math.max(0, ...matching.map((k) => k.domain.length));
  return matching.filter((k) => k.domain.length === longest);
}

const KEY = 'dkim_sign';

export const dkimSignRule = defineRule({
  name: 'dkim_sign',
  summary:
    'DKIM-signs outbound mail (rsa-sha256, ed25519-sha256) after relayguard changed it, with the key of its From domain.',
  schema: dkimSignSchema,
  create(config) {
    const keys = config.keys.map(loadSealKey);
    return {
      name: 'dkim_sign',
      mode: config.mode,
      needs: { actions: ['addHeader'], events: ['headers', 'body'] },
      handlers: {
        async eom({ msg: m }) {
          if (m.direction !== 'outbound') return pass();
          const from = fromDomain(m.headers);
          if ('skip' in from) return pass({ skipped: from.skip });
          const chosen = keysFor(keys, from.domain);
          if (chosen.length === 0) return pass({ skipped: `no key for ${from.domain}` });
          m.state.set(KEY, chosen);
          return pass({ keys: chosen.map((k) => `${k.domain}/${k.selector}`).join(' ') });
        },
      },
      async finish({ msg }, mods) {
        const chosen = msg.state.get(KEY) as SealKey[] | undefined;
        if (!chosen) return { mods: [] };
        const sigs = await dkimSignatures(await finalMessage(msg, mods), chosen);
        for (const k of chosen) dkimSignaturesTotal.inc({ algorithm: k.algorithm });
        const added: Modification[] = [...sigs]
          .reverse()
          .map((h) => ({ type: 'insertHeader', index: 0, name: h.name, value: h.value }));
        return { mods: added, details: { signed: chosen.map((k) => `${k.domain}/${k.selector}`).join(' ') } };
      },
    };
  },
});
