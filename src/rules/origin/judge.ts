// Where may mail come from: the origin rule's lists (countries and autonomous systems) and the
// decision for one client. Kept apart from the rule so the order of precedence is in one place
// and testable without a database.
import { z } from 'zod';
import type { OriginFacts } from './database.js';

// Made on the first country code checked: building it pages in ICU's region data, which every
// relayguard loading this file paid for, whether its policy lists countries or not (bench/RESULTS.md).
let regionNames: Intl.DisplayNames | null = null;
const regionName = (code: string) =>
  (regionNames ??= new Intl.DisplayNames(['en'], { type: 'region', fallback: 'none' })).of(code);

/** An ISO 3166-1 alpha-2 code the runtime knows; "UK" is refused with "use GB" (databases say GB). */
function countryCodeProblem(code: string): string | null {
  if (!/^[A-Z]{2}$/.test(code)) return `"${code}" is not a two-letter ISO 3166 country code`;
  const canonical = Intl.getCanonicalLocales(`und-${code}`)[0]!.slice(4);
  if (canonical !== code) return `"${code}" is written ${canonical} in ISO 3166 and in the databases`;
  if (code === 'ZZ' || regionName(code) === undefined) return `"${code}" is not an assigned ISO 3166 country code`;
  return null;
}

const countryList = () =>
  z.array(
    z
      .string()
      .transform((s) => s.trim().toUpperCase())
      .superRefine((c, ctx) => {
        const problem = countryCodeProblem(c);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
  );

/** Longest organisation pattern: they are written by hand; this bounds the matching work. */
const MAX_ORG_PATTERN = 200;

/** 3320, "AS3320", or an organisation name pattern ("*Hosting*", "Example Telecom AG"). */
const asnEntry = z.union([
  z.number().int().min(0).max(4_294_967_295),
  z
    .string()
    .trim()
    .min(1)
    .max(MAX_ORG_PATTERN)
    .transform((s) => (/^AS\d+$/i.test(s) ? Number(s.slice(2)) : s))
    .refine((v) => typeof v === 'string' || v <= 4_294_967_295, { message: 'AS numbers go up to 4294967295' }),
]);

export const directionSchema = z
  .object({
    /** When not empty: clients from other countries are out of place. */
    allow_countries: countryList().default([]),
    deny_countries: countryList().default([]),
    /** AS numbers or organisation patterns (`*` is any run of characters, case is ignored). */
    allow_asns: z.array(asnEntry).default([]),
    deny_asns: z.array(asnEntry).default([]),
    /** An address the databases know nothing of, when allow lists exist: allow (default) or deny. */
    unknown: z.enum(['allow', 'deny']).default('allow'),
    /**
     * reject: 5xx at MAIL; tempfail: 4xx at MAIL (the sender retries, a real MTA keeps trying
     * for days); score: no refusal, `score` offences in the offender ledger and the trace
     * header; monitor: log and trace only.
     */
    action: z.enum(['reject', 'tempfail', 'score', 'monitor']).default('reject'),
    /** Offences one out-of-place connection adds to the offender ledger (action score). */
    score: z.number().int().min(1).max(100).default(1),
    /** Reply text; placeholders {ip} {country} {asn}. */
    reply: z.string().min(1).max(300).optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    for (const c of d.allow_countries) {
      if (d.deny_countries.includes(c))
        ctx.addIssue({ code: 'custom', path: ['deny_countries'], message: `${c} is both allowed and denied` });
    }
  });

export type DirectionConfig = z.infer<typeof directionSchema>;

/** Why a client is out of place, or that it is not. */
export interface Judgement {
  outOfPlace: boolean;
  /** The list entry that decided, for the trace and the log: "deny_countries: RU", "allow_countries". */
  because: string;
}

/** `*` matches any run of characters; everything else literally, case-insensitive, whole name. */
export function orgPattern(pattern: string): (org: string) => boolean {
  const parts = pattern.toLowerCase().split('*');
  return (org) => {
    const s = org.toLowerCase();
    // Greedy left-to-right match of the literal pieces: linear, no backtracking regex.
    if (!s.startsWith(parts[0]!)) return false;
    let at = parts[0]!.length;
    for (let i = 1; i < parts.length - 1; i++) {
      const found = s.indexOf(parts[i]!, at);
      if (found < 0) return false;
      at = found + parts[i]!.length;
    }
    if (parts.length === 1) return s.length === at;
    const last = parts[parts.length - 1]!;
    return s.length - last.length >= at && s.endsWith(last);
  };
}

class AsnList {
  private readonly numbers: Set<number>;
  private readonly patterns: Array<{ text: string; test: (org: string) => boolean }>;

  constructor(entries: ReadonlyArray<number | string>) {
    this.numbers = new Set(entries.filter((e): e is number => typeof e === 'number'));
    this.patterns = entries
      .filter((e): e is string => typeof e === 'string')
      .map((text) => ({ text, test: orgPattern(text) }));
  }

  get size(): number {
    return this.numbers.size + this.patterns.length;
  }

  /** The entry that matches, as written in the policy. */
  match(f: OriginFacts): string | null {
    if (f.asn !== undefined && this.numbers.has(f.asn)) return `AS${f.asn}`;
    if (f.org !== undefined) for (const p of this.patterns) if (p.test(f.org)) return p.text;
    return null;
  }
}

/**
 * Order, most specific first:
 *  1. deny_asns      a denied network is refused even inside an allowed country
 *  2. allow_asns     an allowed network (a partner's provider) passes even from a denied country
 *  3. deny_countries
 *  4. allow_countries / allow_asns not empty: what they do not name is out of place; an address
 *     the databases do not place follows `unknown`
 */
export class OriginJudge {
  private readonly allowCountries: Set<string>;
  private readonly denyCountries: Set<string>;
  private readonly allowAsns: AsnList;
  private readonly denyAsns: AsnList;

  constructor(private readonly config: DirectionConfig) {
    this.allowCountries = new Set(config.allow_countries);
    this.denyCountries = new Set(config.deny_countries);
    this.allowAsns = new AsnList(config.allow_asns);
    this.denyAsns = new AsnList(config.deny_asns);
  }

  /** False when the lists are all empty: nothing to judge. */
  get active(): boolean {
    return this.allowCountries.size + this.denyCountries.size + this.allowAsns.size + this.denyAsns.size > 0;
  }

  judge(f: OriginFacts): Judgement {
    const denyAs = this.denyAsns.match(f);
    if (denyAs) return { outOfPlace: true, because: `deny_asns: ${denyAs}` };
    const allowAs = this.allowAsns.match(f);
    if (allowAs) return { outOfPlace: false, because: `allow_asns: ${allowAs}` };
    if (f.country !== undefined && this.denyCountries.has(f.country))
      return { outOfPlace: true, because: `deny_countries: ${f.country}` };
    const allowLists = this.allowCountries.size + this.allowAsns.size > 0;
    if (!allowLists) return { outOfPlace: false, because: 'not denied' };
    if (f.country !== undefined && this.allowCountries.has(f.country))
      return { outOfPlace: false, because: `allow_countries: ${f.country}` };
    // "Unknown" relative to the lists in use: without a country, allow_countries cannot say.
    const placed = this.allowCountries.size > 0 ? f.country !== undefined : f.asn !== undefined || f.org !== undefined;
    if (!placed) return { outOfPlace: this.config.unknown === 'deny', because: `unknown: ${this.config.unknown}` };
    return { outOfPlace: true, because: 'not on the allow lists' };
  }
}

/** "DE AS3320 (Deutsche Telekom AG)", "unknown" when the databases know nothing. */
export function describeOrigin(f: OriginFacts): string {
  const parts: string[] = [];
  if (f.country) parts.push(f.country);
  if (f.asn !== undefined) parts.push(`AS${f.asn}`);
  if (f.org) parts.push(`(${f.org})`);
  return parts.length ? parts.join(' ') : 'unknown';
}
