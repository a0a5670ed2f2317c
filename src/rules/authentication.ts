// Sender authentication of inbound mail, checked before any rule changes the message: DKIM,
// SPF (the client's IP, HELO and MAIL FROM) and DMARC, recorded in an Authentication-Results
// header (RFC 8601) under the gateway's authserv-id. Copies of that header that arrived with the
// message and claim our authserv-id are deleted first: a sender could forge them (RFC 8601
// section 5). The results are facts other rules read (see auth-facts.ts), traced and counted.
import { hostname } from 'node:os';
import { z } from 'zod';
import { duration } from '../primitives/units.js';
import {
  arcSet,
  authenticationResultsValue,
  authservIdOf,
  checkAuthentication,
  type AuthFacts,
  type AuthResult,
  type SealKey,
} from '../deps/mail-auth.js';
import { readSigningKey } from '../deps/signing-key.js';
import { arcSealsTotal, authCheckErrorsTotal, authForgedHeadersTotal, authResultsTotal } from '../ops/auth-metrics.js';
import { modify, pass, type Header, type Modification } from '../policy/types.js';
import { authFacts, startAuthFacts } from './auth-facts.js';
import { finalMessage } from './final-message.js';
import { modeField } from './common.js';
import { defineRule } from '../policy/rule-env.js';

const AR_HEADER = 'Authentication-Results';

const domainName = z
  .string()
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'not a domain name')
  .max(253);

/** The gateway's signing key; the file is read and checked when the policy is loaded. */
export const signingKeySchema = z
  .object({
    /** d= of the signature: the domain whose DNS publishes the public key. */
    domain: domainName,
    /** s=: the key is published at <selector>._domainkey.<domain>. */
    selector: z
      .string()
      .regex(/^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/, 'not a DNS label')
      .max(63),
    /** PEM private key (PKCS#8, or PKCS#1 for RSA); `relayguard keygen` writes one. */
    private_key_file: z.string().min(1),
    algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']).default('rsa-sha256'),
  })
  .strict()
  .superRefine((k, ctx) => {
    const r = readSigningKey(k.private_key_file, k.algorithm);
    if ('error' in r) ctx.addIssue({ code: 'custom', path: ['private_key_file'], message: r.error });
  });

export function loadSealKey(k: z.infer<typeof signingKeySchema>): SealKey {
  const r = readSigningKey(k.private_key_file, k.algorithm);
  if ('error' in r) throw new Error(r.error);
  return { domain: k.domain.toLowerCase(), selector: k.selector, privateKey: r.pem, algorithm: k.algorithm };
}

const dnsServer = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\](:\d{1,5})?|[A-Za-z0-9.:-]+)$/, 'not "host", "host:port" or "[ipv6]:port"');

export const authenticationSchema = z
  .object({
    mode: modeField(),
    /**
     * The name our results are recorded under (RFC 8601 authserv-id), usually the gateway's host
     * name. Default: Postfix's myhostname (the j macro), else this machine's host name.
     */
    authserv_id: z
      .string()
      .regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'not a host name')
      .max(253)
      .optional(),
    /** Resolvers for the DKIM keys, SPF and DMARC records; empty: the system's resolvers. */
    dns_servers: z.array(dnsServer).max(8).default([]),
    /** Per DNS query; a query that times out gives a temperror result, not a refusal. */
    dns_timeout: duration().default(2000),
    /**
     * The whole check (all DNS queries of DKIM, SPF's up to 10 lookups, DMARC) takes at most
     * this long; past it the message goes on without Authentication-Results (logged, counted).
     */
    budget: duration().default(20_000),
    /** RSA keys shorter than this fail (RFC 8301 says 1024 at least). */
    min_key_bits: z.number().int().min(512).max(8192).default(1024),
    /**
     * ARC-seal (RFC 8617) inbound messages that relayguard changes (a replaced body, a changed
     * header), so a receiver that trusts our sealer keeps the original authentication result.
     */
    arc_seal: signingKeySchema.optional(),
  })
  .strict();

/** 1-based indexes (among Authentication-Results headers) of those that claim `authservId`. */
export function forgedIndexes(headers: readonly Header[], authservId: string): number[] {
  const ours = authservId.toLowerCase();
  const out: number[] = [];
  let n = 0;
  for (const h of headers) {
    if (h.name.toLowerCase() !== AR_HEADER.toLowerCase()) continue;
    n++;
    if (authservIdOf(h.value) === ours) out.push(n);
  }
  return out;
}

const RANK: readonly AuthResult[] = ['pass', 'fail', 'permerror', 'temperror', 'policy', 'neutral', 'softfail', 'none'];
/** The best DKIM result of the message, for the metric: one pass is enough. */
function bestDkim(facts: AuthFacts): AuthResult {
  if (facts.dkim.length === 0) return 'none';
  return facts.dkim.map((d) => d.result).sort((a, b) => RANK.indexOf(a) - RANK.indexOf(b))[0]!;
}

/**
 * Did relayguard change what a signature could cover: a new body, or an existing header changed
 * or deleted (not counting the forged Authentication-Results it deletes itself)? Added header
 * fields alone (trace headers, a banner) are not sealed for.
 */
function changesMessage(mods: readonly Modification[]): boolean {
  return mods.some(
    (m) => m.type === 'replaceBody' || (m.type === 'changeHeader' && m.name.toLowerCase() !== AR_HEADER.toLowerCase()),
  );
}

/** The trace's view: short and flat. */
function traceDetails(facts: AuthFacts): Record<string, unknown> {
  return {
    authserv_id: facts.authservId,
    dkim: facts.dkim.length
      ? facts.dkim.map((d) => `${d.result}(${d.domain}${d.aligned ? ',aligned' : ''})`).join(' ')
      : 'none',
    spf: facts.spf.result,
    dmarc: facts.dmarc.result,
    dmarc_policy: facts.dmarc.policy,
    arc: facts.arc,
  };
}

export const authenticationRule = defineRule({
  name: 'authentication',
  summary:
    'Checks DKIM, SPF and DMARC of inbound mail before anything changes it and records them in Authentication-Results.',
  schema: authenticationSchema,
  create(config) {
    const opts = { dnsServers: config.dns_servers, dnsTimeoutMs: config.dns_timeout, minKeyBits: config.min_key_bits };
    const sealKey = config.arc_seal ? loadSealKey(config.arc_seal) : null;
    const willSeal = sealKey !== null && config.mode === 'enforce';
    return {
      name: 'authentication',
      mode: config.mode,
      needs: {
        actions: ['addHeader', 'changeHeader'],
        macros: { connect: ['j'] },
        events: ['helo', 'headers', 'body'],
      },
      handlers: {
        async eom({ conn, msg: m, signal }) {
          if (m.direction !== 'inbound') return pass();
          const authservId = (config.authserv_id ?? conn.macros.get('j') ?? hostname()).toLowerCase();
          // Started before the first await: rules after this one in the list read the result.
          const budget = AbortSignal.any([signal, AbortSignal.timeout(config.budget)]);
          const check = checkAuthentication(
            {
              message: m.source.message(),
              ip: conn.client.ip,
              helo: conn.helo ?? '',
              sender: m.sender?.raw ?? '',
              authservId,
              signal: budget,
              willSeal,
            },
            opts,
          );
          startAuthFacts(m, check);
          const forged = forgedIndexes(m.headers, authservId);
          // Last first, so the indexes of those not yet deleted do not move.
          const removals: Modification[] = forged
            .reverse()
            .map((index) => ({ type: 'changeHeader', name: AR_HEADER, index, value: '' }));
          let facts: AuthFacts;
          try {
            facts = await check;
          } catch (err) {
            if (signal.aborted) throw err;
            authCheckErrorsTotal.inc();
            const error = budget.aborted
              ? `took longer than the budget of ${config.budget} ms`
              : (err as Error).message;
            m.log.error(`authentication check failed, no Authentication-Results recorded: ${error}`, {
              rule: 'authentication',
            });
            return removals.length ? modify(removals, { error, forged_removed: removals.length }) : pass({ error });
          }
          if (removals.length) authForgedHeadersTotal.inc(removals.length);
          authResultsTotal.inc({ method: 'dkim', result: bestDkim(facts) });
          authResultsTotal.inc({ method: 'spf', result: facts.spf.result });
          authResultsTotal.inc({ method: 'dmarc', result: facts.dmarc.result });
          authResultsTotal.inc({ method: 'arc', result: facts.arc });
          const details = traceDetails(facts);
          if (removals.length) details.forged_removed = removals.length;
          // At the top, where RFC 8601 wants it: above the trace fields of this hop.
          return modify(
            [
              ...removals,
              { type: 'insertHeader', index: 0, name: AR_HEADER, value: authenticationResultsValue(facts) },
            ],
            details,
          );
        },
      },
      async finish({ msg: m }, mods) {
        if (!sealKey || m.direction !== 'inbound' || !changesMessage(mods)) return { mods: [] };
        const facts = await authFacts(m);
        if (!facts) return { mods: [] };
        const authResults = [
          `${facts.authservId};`,
          ...facts.lines.map((l, i) => `\t${l}${i < facts.lines.length - 1 ? ';' : ''}`),
        ].join('\r\n');
        const set = await arcSet(await finalMessage(m, mods), sealKey, authResults, facts.arc);
        arcSealsTotal.inc();
        // Top first: inserting each at 0 from the last up leaves ARC-Seal on top.
        const added: Modification[] = [...set]
          .reverse()
          .map((h) => ({ type: 'insertHeader', index: 0, name: h.name, value: h.value }));
        return {
          mods: added,
          details: {
            arc_sealed: `${sealKey.domain}/${sealKey.selector}`,
            arc_cv: facts.arc === 'pass' || facts.arc === 'fail' ? facts.arc : 'none',
          },
        };
      },
    };
  },
});
