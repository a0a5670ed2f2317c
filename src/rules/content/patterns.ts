// The matchers of content rules: fixed phrases, regular expressions and detectors. Regular
// expressions are compiled with RE2, which runs in time linear in the input whatever the
// pattern, so a policy author cannot create a ReDoS by accident; the price is that RE2 has no
// backreferences and no lookaround, and such patterns are refused when the policy is loaded.
import type RE2 from 're2';
import { findCardNumbers } from './detectors/luhn.js';
import { foldForMatch } from './fold.js';
import { loadOnFirstUse } from '../../primitives/first-use.js';

export const DETECTORS = ['payment_card'] as const;
export type DetectorName = (typeof DETECTORS)[number];

/** What one matcher found, safe to show: never the matched data itself for detectors. */
export interface Hit {
  /** "phrase", "regex" or the detector name. */
  kind: string;
  /** Short description for replies and the trace, e.g. "payment card number ************1111". */
  what: string;
  count: number;
}

export interface Matcher {
  kind: string;
  /** Search normalised text (see text.ts); null when nothing was found. */
  match(text: string, lowerText: () => string): Hit | null;
}

/** RE2 is a native addon, loaded on the first pattern: the CLI's start-up snapshot
 *  (src/cli/snapshot-entry.ts) can hold only JavaScript. */
const re2 = loadOnFirstUse<typeof RE2>(import.meta.url, 're2');

/** Compiles a pattern for the policy; throws an Error with a message fit for `relayguard validate`. */
export function compileRegex(source: string, caseSensitive: boolean): RE2 {
  // Outside the try: an addon that cannot load is not a fault of the pattern.
  const Re2 = re2();
  try {
    return new Re2(source, caseSensitive ? 'u' : 'iu');
  } catch (err) {
    const why = (err as Error).message;
    const hint = /\\[1-9]|\(\?[=!<]/.test(source) ? ' (RE2 has no backreferences or lookaround)' : '';
    throw new Error(`invalid regular expression /${source}/: ${why}${hint}`, { cause: err });
  }
}

export function phraseMatcher(phrases: string[], caseSensitive: boolean): Matcher {
  // Phrases are normalised like the text they are searched in, and folded like its second
  // reading (fold.ts): a phrase typed with an en dash matches a text with a hyphen and back.
  const wanted = phrases.map((p) => {
    const norm = p.replace(/\s+/g, ' ').trim();
    return [...new Set([norm, foldForMatch(norm)])].map((v) => (caseSensitive ? v : v.toLowerCase()));
  });
  return {
    kind: 'phrase',
    match(text, lowerText) {
      const hay = caseSensitive ? text : lowerText();
      const index = wanted.findIndex((forms) => forms.some((p) => hay.includes(p)));
      return index < 0
        ? null
        : { kind: 'phrase', what: phrases.length > 1 ? `phrase #${index + 1}` : 'phrase', count: 1 };
    },
  };
}

export function regexMatcher(sources: string[], caseSensitive: boolean): Matcher {
  const compiled = sources.map((s) => compileRegex(s, caseSensitive));
  return {
    kind: 'regex',
    match(text) {
      const index = compiled.findIndex((re) => re.test(text));
      return index < 0
        ? null
        : { kind: 'regex', what: sources.length > 1 ? `pattern #${index + 1}` : 'pattern', count: 1 };
    },
  };
}

/** Card numbers reported per part: enough to say "N numbers", without collecting a leak. */
const MAX_CARDS_REPORTED = 10;

export function detectorMatcher(name: DetectorName): Matcher {
  switch (name) {
    case 'payment_card':
      return {
        kind: name,
        match(text) {
          const cards = findCardNumbers(text, MAX_CARDS_REPORTED);
          if (cards.length === 0) return null;
          const first = cards[0]!.masked;
          const what =
            cards.length === 1
              ? `payment card number ${first}`
              : `${cards.length}${cards.length >= MAX_CARDS_REPORTED ? '+' : ''} payment card numbers (first ${first})`;
          return { kind: name, what, count: cards.length };
        },
      };
  }
}
