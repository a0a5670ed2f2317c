// Payment card numbers in text, for outbound data-leak rules. A hit must look like a card number
// a person would write, not merely be a long digit run that happens to pass the Luhn check
// (one in ten random numbers does):
//   - 13 to 19 digits, standing alone: no letter, digit or digit separator right before or after
//     (so parts of 20+ digit tracking numbers, IBANs and order ids do not count);
//   - written without separators, or in groups split by ONE kind of separator (all spaces or all
//     dashes) in a layout card issuers print: 4-4-4-4(-3), 4-6-5 (Amex), 4-6-4 (Diners), or
//     groups of four with a shorter last group;
//   - an issuer prefix of a card network (major industry identifier 2 to 6);
//   - not a single repeated digit;
//   - and the Luhn check digit is right.

const MIN_CARD_DIGITS = 13;
const MAX_CARD_DIGITS = 19;
/** Digits shown when a number is named in a reply or log: the last four (as on receipts). */
const VISIBLE_DIGITS = 4;

export interface CardMatch {
  /** The number with everything but the last four digits masked: "************1111". */
  masked: string;
  /** Offset in the searched text. */
  index: number;
}

/** The Luhn (mod 10) check over a string of digits. */
export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 0x30;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

export function maskCard(digits: string): string {
  return '*'.repeat(Math.max(0, digits.length - VISIBLE_DIGITS)) + digits.slice(-VISIBLE_DIGITS);
}

/**
 * A maximal run of digits joined by single separators of one kind (all spaces or all dashes).
 * Linear: digits and separators are disjoint, so there is nothing to backtrack over.
 */
const DIGIT_RUN = /\d+(?:([ -])\d+(?:\1\d+)*)?/g;

/** Card layouts as group lengths; the last group of the "fours" layout may be shorter. */
const FIXED_LAYOUTS = ['4,4,4,4', '4,4,4,4,3', '4,6,5', '4,6,4'];
/** Groups this short next to a card number are something else: a quantity, an expiry month. */
const MAX_STRAY_GROUP = 3;

function plausibleGrouping(groups: string[]): boolean {
  if (groups.length === 1) return true;
  const lengths = groups.map((g) => g.length);
  if (FIXED_LAYOUTS.includes(lengths.join(','))) return true;
  const last = lengths[lengths.length - 1]!;
  return lengths.slice(0, -1).every((l) => l === 4) && last >= 1 && last <= 4;
}

function plausibleNumber(digits: string): boolean {
  if (digits.length < MIN_CARD_DIGITS || digits.length > MAX_CARD_DIGITS) return false;
  const mii = digits.charCodeAt(0) - 0x30;
  if (mii < 2 || mii > 6) return false;
  if (/^(\d)\1*$/.test(digits)) return false;
  return luhnValid(digits);
}

/** The card number in these groups, if they (or they without short stray groups at the ends) are one. */
function cardIn(groups: string[], separator: string | undefined): string | null {
  if (plausibleGrouping(groups) && plausibleNumber(groups.join(''))) return groups.join('');
  // "qty 2 4111 1111 1111 1111" or "4111 1111 1111 1111 12/27": words, not part of the number.
  if (separator !== ' ') return null;
  let from = 0;
  let to = groups.length;
  while (from < to && groups[from]!.length <= MAX_STRAY_GROUP) from++;
  while (to > from && groups[to - 1]!.length <= MAX_STRAY_GROUP) to--;
  if (from === 0 && to === groups.length) return null;
  const core = groups.slice(from, to);
  return core.length && plausibleGrouping(core) && plausibleNumber(core.join('')) ? core.join('') : null;
}

/** Letters, digits and "_" glue to a number: it is then part of a longer token. */
const isGlue = (ch: string | undefined) => ch !== undefined && /[\p{L}\p{N}_]/u.test(ch);
const isDigit = (ch: string | undefined) => ch !== undefined && ch >= '0' && ch <= '9';

export function findCardNumbers(text: string, limit = Number.POSITIVE_INFINITY): CardMatch[] {
  const found: CardMatch[] = [];
  for (const m of text.matchAll(DIGIT_RUN)) {
    if (found.length >= limit) break;
    const run = m[0];
    const index = m.index;
    const before = text[index - 1];
    const after = text[index + run.length];
    if (isGlue(before) || isGlue(after)) continue;
    // "2024-4111..." or "...-0042": the run is one piece of a longer dashed identifier.
    if ((before === '-' && isDigit(text[index - 2])) || (after === '-' && isDigit(text[index + run.length + 1])))
      continue;
    const digits = cardIn(run.split(/[ -]/), m[1]);
    if (digits) found.push({ masked: maskCard(digits), index });
  }
  return found;
}
