// A second reading of text for the content rules: what a person reads, whatever code points
// were used to write it. NFKC (full-width, mathematical and circled letters, ligatures become
// plain ones), Cyrillic, Greek and other letters that look like Latin ones made Latin, and
// every dash and minus made "-". A marker such as "CONFIDENTIAL - INTERNAL ONLY" written with
// an en dash or a Cyrillic "О" still matches. The rules search the text as written as well, so
// a pattern meant for Cyrillic or Greek text keeps working.

/** Letters that look like Latin ones (Unicode confusables for the Latin alphabet, the common part). */
const LOOKALIKES: Readonly<Record<string, string>> = {
  // Cyrillic capitals and small letters
  А: 'A',
  В: 'B',
  Е: 'E',
  К: 'K',
  М: 'M',
  Н: 'H',
  О: 'O',
  Р: 'P',
  С: 'C',
  Т: 'T',
  Х: 'X',
  У: 'Y',
  І: 'I',
  Ј: 'J',
  Ѕ: 'S',
  Ԁ: 'D',
  Ԛ: 'Q',
  Ԝ: 'W',
  Ү: 'Y',
  Һ: 'H',
  Ӏ: 'I',
  Ԍ: 'G',
  а: 'a',
  в: 'b',
  е: 'e',
  к: 'k',
  м: 'm',
  н: 'h',
  о: 'o',
  р: 'p',
  с: 'c',
  т: 't',
  х: 'x',
  у: 'y',
  і: 'i',
  ј: 'j',
  ѕ: 's',
  ԁ: 'd',
  ԛ: 'q',
  ԝ: 'w',
  ү: 'y',
  һ: 'h',
  ӏ: 'l',
  ɡ: 'g',
  ь: 'b',
  ԍ: 'g',
  // Greek capitals and small letters
  Α: 'A',
  Β: 'B',
  Ε: 'E',
  Ζ: 'Z',
  Η: 'H',
  Ι: 'I',
  Κ: 'K',
  Μ: 'M',
  Ν: 'N',
  Ο: 'O',
  Ρ: 'P',
  Τ: 'T',
  Υ: 'Y',
  Χ: 'X',
  Ϲ: 'C',
  Ϳ: 'J',
  α: 'a',
  ι: 'i',
  κ: 'k',
  ν: 'v',
  ο: 'o',
  ρ: 'p',
  τ: 't',
  υ: 'u',
  χ: 'x',
  ϲ: 'c',
  ϳ: 'j',
  // Armenian, Cherokee-free Latin look-alikes, IPA and dotless letters
  օ: 'o',
  ս: 'u',
  հ: 'h',
  ո: 'n',
  ց: 'g',
  ɑ: 'a',
  ı: 'i',
  ȷ: 'j',
  ɩ: 'i',
  ʏ: 'y',
  ᴄ: 'c',
  ᴏ: 'o',
  ᴠ: 'v',
  ᴡ: 'w',
  ᴢ: 'z',
  ℓ: 'l',
};
const LOOKALIKE_RE = new RegExp(`[${Object.keys(LOOKALIKES).join('')}]`, 'gu');

/** Every dash, hyphen and minus sign (Unicode Pd, the minus signs, the small and full-width forms). */
const DASHES = /[\p{Pd}\u2212\u2043\u02d7\u2796\ufe63\uff0d]/gu;

/** Quick test: only text with a non-ASCII character can read differently. */
const NON_ASCII = /[^\x00-\x7f]/;

/** The text as a reader sees its letters; the same string when it is plain ASCII. */
export function foldForMatch(text: string): string {
  if (!NON_ASCII.test(text)) return text;
  return text
    .normalize('NFKC')
    .replace(LOOKALIKE_RE, (c) => LOOKALIKES[c]!)
    .replace(DASHES, '-');
}

/** The readings to search: the text, and its folded form when that differs. */
export function readings(text: string): string[] {
  const folded = foldForMatch(text);
  return folded === text ? [text] : [text, folded];
}
