// HTML without the elements a reader does not see: an element with the `hidden` attribute or a
// style that hides it (display:none, visibility:hidden, font-size:0, opacity:0, zero width or
// height with overflow hidden...) is removed with everything inside it. A marker split by a
// hidden span ("CONFIDENTIAL<span style=display:none>x</span> - INTERNAL ONLY") reads whole
// again. The content rules search both this and the full text (hidden text may carry the leak).
// Linear: each hidden element is skipped once, by counting its own tag name's opens and closes.
import { asciiLowerCase } from '../../mime/html-text.js';

/** Elements that have no end tag: hiding one hides nothing after it. */
const VOID = new Set([
  'area',
  'base',
  'br',
  'col',
  'embed',
  'hr',
  'img',
  'input',
  'link',
  'meta',
  'source',
  'track',
  'wbr',
]);

/** A style (or attribute) that keeps the element's text from being seen. */
const HIDING_STYLE =
  /display\s*:\s*none|visibility\s*:\s*(hidden|collapse)|font-size\s*:\s*0*\.?0+(px|pt|em|rem|%)?\s*(;|!|"|'|$)|opacity\s*:\s*0*\.?0+\s*(;|!|"|'|$)|(^|[\s;"'])(max-)?(height|width)\s*:\s*0+(px)?\s*(;|!|"|'|$)|mso-hide\s*:\s*all/;
const HIDDEN_ATTRIBUTE = /\shidden(\s|=|\/?$)|aria-hidden\s*=\s*["']?true/;

export function withoutHiddenElements(html: string): string {
  const lower = asciiLowerCase(html);
  const out: string[] = [];
  let i = 0;
  for (;;) {
    const lt = lower.indexOf('<', i);
    if (lt < 0) break;
    const m = /^<([a-z][a-z0-9]*)/.exec(lower.slice(lt, lt + 20));
    if (!m) {
      out.push(html.slice(i, lt + 1));
      i = lt + 1;
      continue;
    }
    const gt = lower.indexOf('>', lt);
    if (gt < 0) break;
    const name = m[1]!;
    const attrs = lower.slice(lt + 1 + name.length, gt);
    if (VOID.has(name) || attrs.endsWith('/') || !(HIDING_STYLE.test(attrs) || HIDDEN_ATTRIBUTE.test(attrs))) {
      out.push(html.slice(i, gt + 1));
      i = gt + 1;
      continue;
    }
    out.push(html.slice(i, lt));
    i = endOfElement(lower, name, gt + 1);
  }
  out.push(html.slice(i));
  return out.join('');
}

/**
 * Index just past the end tag that closes an element opened before `from` (the end when
 * unclosed). The next open and close tags are each searched once and the search moves only
 * forward, so nested tags cost linear time (a cached position is reused until passed).
 */
function endOfElement(lower: string, name: string, from: number): number {
  const open = `<${name}`;
  const close = `</${name}`;
  const isNameEnd = (at: number) => !/[a-z0-9]/.test(lower[at] ?? '');
  let depth = 1;
  let i = from;
  let o = -2;
  let c = -2;
  while (depth > 0) {
    if (o !== -1 && o < i) o = lower.indexOf(open, i);
    if (c < i) c = lower.indexOf(close, i);
    if (c < 0) return lower.length;
    if (o >= 0 && o < c) {
      if (isNameEnd(o + open.length)) depth++; // else another element whose name starts the same ("<spanx")
      i = o + open.length;
      continue;
    }
    i = c + close.length;
    if (!isNameEnd(i)) continue;
    depth--;
    const gt = lower.indexOf('>', i);
    i = gt < 0 ? lower.length : gt + 1;
  }
  return i;
}
