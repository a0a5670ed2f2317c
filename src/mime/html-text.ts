// HTML reduced to the text a reader sees, for matching (content rules, the disclaimer's "already
// there?" check), not for rendering. Hand-written scanners rather than regular expressions: the
// input is attacker-controlled and these stay linear on any input (an unclosed "<!--" or
// "<script" does not cause a rescan per position). A browser's reading where it matters: an
// unterminated comment or tag hides the rest of the document.

/** Named character references (without "&" and ";") and what they stand for. */
export type EntityTable = ReadonlyMap<string, string>;

/** The references every table knows: the five of XML and the no-break space (as a space). */
export const BASIC_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
};

/** ASCII letters lower-cased, nothing else: the same length, so indexes found in it fit `s`. */
export function asciiLowerCase(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** Elements whose content is not shown. */
const HIDDEN_ELEMENTS = ['script', 'style', 'head', 'title'];

/** Elements that start a new line or cell when shown; other tags (b, span, a...) join text. */
const BLOCK_ELEMENTS = new Set([
  'address',
  'article',
  'aside',
  'blockquote',
  'br',
  'dd',
  'div',
  'dl',
  'dt',
  'fieldset',
  'figcaption',
  'figure',
  'footer',
  'form',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'header',
  'hr',
  'li',
  'main',
  'nav',
  'ol',
  'p',
  'pre',
  'section',
  'table',
  'tbody',
  'td',
  'tfoot',
  'th',
  'thead',
  'tr',
  'ul',
  'body',
  'html',
  'img',
  'input',
  'option',
  'select',
  'textarea',
]);

/** Longest entity we try to decode ("&#x10FFFF;" is 10). */
const MAX_ENTITY_LENGTH = 12;

/**
 * The text a reader sees in an HTML fragment or document: comments, tags and the content of
 * script, style, head and title removed, a space where a block element breaks the line, entity
 * references decoded with `entities` (named ones) and numerically. Linear in the input.
 */
export function htmlToText(html: string, entities: EntityTable): string {
  const out: string[] = [];
  let i = 0;
  const n = html.length;
  // toLowerCase may change the length; indexes in `lower` must fit `html`.
  const lower = asciiLowerCase(html);
  while (i < n) {
    const lt = html.indexOf('<', i);
    if (lt < 0) {
      out.push(html.slice(i));
      break;
    }
    out.push(html.slice(i, lt));
    const next = html.charCodeAt(lt + 1);
    if (html.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      i = end < 0 ? n : end + 3;
    } else if (isTagStart(next)) {
      const gt = html.indexOf('>', lt + 1);
      if (gt < 0) break; // an unterminated tag hides the rest from a browser too
      const closing = next === 0x2f;
      const name = tagName(lower, closing ? lt + 2 : lt + 1, gt);
      i = gt + 1;
      if (!closing && HIDDEN_ELEMENTS.includes(name)) {
        const close = lower.indexOf(`</${name}`, i);
        i = close < 0 ? n : Math.max(i, lower.indexOf('>', close) + 1 || n);
      }
      if (BLOCK_ELEMENTS.has(name)) out.push(' ');
    } else {
      out.push('<');
      i = lt + 1;
    }
  }
  return decodeEntities(out.join(''), entities);
}

/** "<a", "</", "<!", "<?" open markup; "< 3" and "<=" do not. */
function isTagStart(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2f || c === 0x21 || c === 0x3f;
}

function tagName(lower: string, from: number, to: number): string {
  let end = from;
  while (end < to && /[a-z0-9]/.test(lower[end]!)) end++;
  return lower.slice(from, end);
}

/** Character references decoded: `&#233;`, `&#xE9;` and the names in `entities`; anything else stays. */
function decodeEntities(text: string, entities: EntityTable): string {
  if (!text.includes('&')) return text;
  const out: string[] = [];
  let i = 0;
  for (;;) {
    const amp = text.indexOf('&', i);
    if (amp < 0) {
      out.push(text.slice(i));
      break;
    }
    out.push(text.slice(i, amp));
    const semi = text.indexOf(';', amp + 1);
    const decoded = semi > amp && semi - amp <= MAX_ENTITY_LENGTH ? entity(text.slice(amp + 1, semi), entities) : null;
    if (decoded === null) {
      out.push('&');
      i = amp + 1;
    } else {
      out.push(decoded);
      i = semi + 1;
    }
  }
  return out.join('');
}

function entity(body: string, entities: EntityTable): string | null {
  if (body.startsWith('#')) {
    const hex = body[1] === 'x' || body[1] === 'X';
    const digits = body.slice(hex ? 2 : 1);
    if (!digits || !(hex ? /^[0-9a-f]+$/i : /^[0-9]+$/).test(digits)) return null;
    const cp = parseInt(digits, hex ? 16 : 10);
    return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : null;
  }
  // A Map: a name like "constructor" must not find something on an object's prototype.
  return entities.get(body) ?? entities.get(body.toLowerCase()) ?? null;
}
