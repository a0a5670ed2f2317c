// The blocklists rule's YAML block: its schema and configuration type (shared by the rule's
// handlers and its audit part).
import { z } from 'zod';
import { cidr, cidrList } from '../../config/settings.js';
import { duration } from '../../primitives/units.js';
import { checkCodeSpec, isDnsName } from '../../deps/dnsbl.js';
import { normalizeDomain } from '../../primitives/address.js';
import { modeField } from '../common.js';

/** Names of the static lists, as allowlist entries refer to them. */
export const STATIC_BLOCKED_DOMAINS = 'blocked_domains';
export const STATIC_BLOCKED_IPS = 'blocked_ips';

/** A DNS name, lower case and IDNA; `anyLevel` also allows a single label (a whole TLD). */
const dnsName = (what: string, anyLevel = false) =>
  z
    .string()
    .transform((s) => normalizeDomain(s))
    .refine((s) => (anyLevel || s.includes('.')) && isDnsName(s), { message: `not a ${what}` });

const listingCode = z.string().superRefine((s, ctx) => {
  const err = checkCodeSpec(s);
  if (err) ctx.addIssue({ code: 'custom', message: err });
});

/** Placeholders: {list} {ip} {domain} {sender} {helo} {txt}. */
const replyText = z.string().min(1).max(300);

const listFields = {
  /** DNS zone, e.g. zen.spamhaus.org. */
  zone: dnsName('DNS zone'),
  /** Shown in logs and replies instead of the zone (hide a keyed zone). Default: the zone. */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, dot, dash, underscore')
    .optional(),
  /** Answers that mean "listed": addresses, ranges "a-b" or CIDR blocks, in 127.0.0.0/8. */
  codes: z.array(listingCode).min(1),
  reply: replyText.optional(),
};

const allowEntry = z
  .object({
    /** A client address or CIDR range: exempt from the IP lists (and blocked_ips). */
    ip: cidr().optional(),
    /** A domain and its subdomains: exempt from the domain lists and blocked_domains, as sender or HELO. */
    domain: dnsName('domain', true).optional(),
    /** The lists this entry exempts from (list names, blocked_domains, blocked_ips). Default: all of them. */
    lists: z.array(z.string().min(1)).min(1).optional(),
    /** Why the entry exists and who asked: shown in the log when it fires. */
    reason: z.string().optional(),
    /** The entry stops applying after this day (YYYY-MM-DD, UTC) or instant (ISO 8601). */
    expires: z.union([z.iso.date(), z.iso.datetime({ offset: true })]).optional(),
  })
  .strict()
  .refine((e) => (e.ip === undefined) !== (e.domain === undefined), { message: 'give exactly one of ip or domain' });

export const blocklistsSchema = z
  .object({
    mode: modeField(),
    ip_lists: z.array(z.object(listFields).strict()).default([]),
    domain_lists: z
      .array(
        z
          .object({
            ...listFields,
            /** Which names are looked up: the envelope sender's domain and/or the HELO name. */
            check: z
              .array(z.enum(['sender', 'helo']))
              .min(1)
              .default(['sender']),
          })
          .strict(),
      )
      .default([]),
    /** Envelope sender domains refused outright, each with its subdomains (a TLD such as `zip` works too). */
    blocked_domains: z.array(dnsName('domain', true)).default([]),
    /** Client addresses / ranges refused outright (at MAIL, so an authenticated client is exempt). */
    blocked_ips: cidrList().default([]),
    allowlist: z.array(allowEntry).default([]),
    cache: z
      .object({
        max_entries: z.number().int().nonnegative().default(10_000),
        min_ttl: duration().default(10_000),
        max_ttl: duration().default(3_600_000),
        /** How long "not listed" is remembered. */
        negative_ttl: duration().default(60_000),
      })
      .strict()
      .default({ max_entries: 10_000, min_ttl: 10_000, max_ttl: 3_600_000, negative_ttl: 60_000 }),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const names = new Set<string>();
    const lists = [
      ...cfg.ip_lists.map((l, i) => ['ip_lists', i, l] as const),
      ...cfg.domain_lists.map((l, i) => ['domain_lists', i, l] as const),
    ];
    for (const [key, i, l] of lists) {
      const name = l.name ?? l.zone;
      if (names.has(name))
        ctx.addIssue({
          code: 'custom',
          path: [key, i, 'name'],
          message: `list name "${name}" is used twice; give one a name:`,
        });
      names.add(name);
    }
    names.add(STATIC_BLOCKED_DOMAINS).add(STATIC_BLOCKED_IPS);
    cfg.allowlist.forEach((e, i) =>
      e.lists?.forEach((n, j) => {
        if (!names.has(n))
          ctx.addIssue({
            code: 'custom',
            path: ['allowlist', i, 'lists', j],
            message: `no list named "${n}" (known: ${[...names].join(', ')})`,
          });
      }),
    );
  });

export type BlocklistsConfig = z.infer<typeof blocklistsSchema>;
