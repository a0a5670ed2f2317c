// Finding a disclaimer that is already in a message, however it was re-wrapped on the way: the
// text is compared after collapsing whitespace, dropping quote markers ("> ") of replies and,
// for HTML, removing tags and decoding character references. A copy in quoted text counts as
// present: the disclaimer is added to a thread once, not once per reply.
import { BASIC_ENTITIES, htmlToText as visibleText, type EntityTable } from './html-text.js';

/** The names a disclaimer's HTML is likely to use (letters as themselves: clients re-encode them). */
const NAMED_ENTITIES: EntityTable = new Map(
  Object.entries({
    ...BASIC_ENTITIES,
    ndash: '\u2013',
    mdash: '\u2014',
    hellip: '\u2026',
    copy: '\u00a9',
    reg: '\u00ae',
    euro: '\u20ac',
    laquo: '\u00ab',
    raquo: '\u00bb',
    auml: '\u00e4',
    ouml: '\u00f6',
    uuml: '\u00fc',
    Auml: '\u00c4',
    Ouml: '\u00d6',
    Uuml: '\u00dc',
    szlig: '\u00df',
    eacute: '\u00e9',
    egrave: '\u00e8',
    agrave: '\u00e0',
  }),
);

/** The visible text of an HTML fragment or document (good enough for matching, not rendering). */
export function htmlToText(html: string): string {
  return visibleText(html, NAMED_ENTITIES);
}

/**
 * Runs of white space (with NBSP and ZERO WIDTH SPACE) that are not already a single space:
 * replacing these with a space gives what replacing every run does, without rewriting the
 * hundreds of single spaces between words (which was most of the cost of normalising).
 */
const SPACE_RUNS_TO_COLLAPSE = /[\s\u00a0\u200b]{2,}|[^\S ]|\u200b/g;

/** Whitespace collapsed, reply quote markers dropped, case folded. */
export function normalizeForMatch(text: string): string {
  return text
    .replace(/^[ \t]*(>[ \t>]*)+/gm, '')
    .replace(SPACE_RUNS_TO_COLLAPSE, ' ')
    .trim()
    .toLowerCase();
}

/**
 * containsText for several needles against many haystacks: each needle is normalised once, each
 * haystack once per call (normalising is most of the cost of the plan's already-present check),
 * and only when a cheap test cannot rule the needles out (mayContain).
 */
export function containsAnyText(needles: readonly string[]): (haystack: string) => boolean {
  const normalized = needles.map(normalizeForMatch).filter((n) => n.length > 0);
  const keys = normalized.map(asciiKey);
  return (haystack) => {
    if (!normalized.length) return false;
    let lower: string | undefined;
    const candidates = normalized.filter((_, i) => mayContain((lower ??= haystack.toLowerCase()), keys[i]!));
    if (!candidates.length) return false;
    const h = normalizeForMatch(haystack);
    return candidates.some((n) => h.includes(n));
  };
}

/** The longest run of ASCII letters and digits in a normalised needle ("" if it has none). */
function asciiKey(normalizedNeedle: string): string {
  let best = '';
  for (const m of normalizedNeedle.matchAll(/[a-z0-9]+/g)) if (m[0].length > best.length) best = m[0];
  return best;
}

/**
 * False only when normalizeForMatch(haystack) cannot contain a needle with this key. Why that
 * is safe: the key is a run of ASCII letters and digits inside the normalised needle, so a match
 * puts it inside the normalised haystack, between no white space. Normalising only drops white
 * space and quote markers at line starts (which follow a line break or the start, never a key
 * character), so the key's characters are adjacent in the original haystack too; and lower-casing
 * maps a character the same way in both strings (the one exception, the Greek final sigma, never
 * lower-cases to ASCII). So the lower-cased original contains the key as well.
 */
function mayContain(lowerHaystack: string, key: string): boolean {
  return !key || lowerHaystack.includes(key);
}

/** Does `haystack` (plain text) contain `needle` (plain text), modulo the normalisation? */
export function containsText(haystack: string, needle: string): boolean {
  const n = normalizeForMatch(needle);
  return n.length > 0 && normalizeForMatch(haystack).includes(n);
}
