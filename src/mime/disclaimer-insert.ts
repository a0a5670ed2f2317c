// Puts the disclaimer into one decoded text part. Plain text: appended after the last line.
// HTML: inserted before the last </body> (else before </html>, else at the end). Works on the
// part's bytes in its own charset, so nothing of the original content is re-encoded; only when
// the disclaimer cannot be written in that charset is the part converted to UTF-8.
import { asciiReturn, asciiView, classifyCharset, decodeText, declaredCharset, encodeIfRepresentable, htmlToAscii, isByteSafe, UTF8 } from './charset.js';
import type { TargetKind } from './disclaimer-plan.js';
import { asciiLowerCase } from './html-text.js';

const CRLF = '\r\n';

export interface DisclaimerTexts {
  /** Plain text, CRLF line ends, no trailing line break. */
  text: string;
  /** HTML fragment. */
  html: string;
}

export interface InsertResult {
  bytes: Buffer;
  /** Set when the part had to be converted: its new charset parameter. */
  charset?: string;
}

/** Plain text with CRLF line ends, surrounding blank lines removed. */
export function normalizeDisclaimerText(text: string): string {
  return text
    .replace(/\r\n?|\n/g, CRLF)
    .replace(/^(\s*\r\n)+/, '')
    .trimEnd();
}

/** An HTML version of a text-only disclaimer: escaped, line breaks kept. */
export function htmlFromText(text: string): string {
  const escaped = text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<p style="font-size:small;color:#555555">${escaped.split(CRLF).join(`<br>${CRLF}`)}</p>`;
}

export function insertDisclaimer(content: Buffer, kind: TargetKind, rawCharset: string | false, texts: DisclaimerTexts): InsertResult {
  const charset = declaredCharset(rawCharset);
  return kind === 'html' ? insertHtml(content, charset, texts.html) : appendPlain(content, charset, texts.text);
}

function appendPlain(content: Buffer, charset: string, text: string): InsertResult {
  // A part that ended with a line break ends with one again; one that did not (its last line
  // break belongs to the next MIME delimiter) does not get one either.
  const block = (hasText: boolean, tail: boolean) => `${hasText ? CRLF + CRLF : ''}${text}${tail ? CRLF : ''}`;
  if (isByteSafe(charset)) {
    const kept = content.subarray(0, trimmedEnd(content));
    const encoded = encodeIfRepresentable(block(kept.length > 0, endsWithLineBreak(content)), charset);
    if (encoded) return { bytes: Buffer.concat([kept, asciiReturn(kept, charset), encoded]) };
  }
  if (classifyCharset(charset) === 'iso-2022-jp') throw new Error('ISO-2022-JP text can only take an ASCII disclaimer');
  const decoded = decodeText(content, charset);
  // trimEnd, not /\s+$/: the regex retries every position of a long blank run (quadratic).
  const body = decoded.trimEnd();
  return { bytes: Buffer.from(body + block(body.length > 0, decoded.endsWith('\n')), 'utf8'), charset: UTF8 };
}

function insertHtml(content: Buffer, charset: string, html: string): InsertResult {
  // As character references the disclaimer is plain ASCII: no charset needs to change for it.
  const fragment = htmlToAscii(html);
  if (isByteSafe(charset)) {
    // One character per byte, so indexes found here are byte offsets.
    const at = insertionPoint(asciiView(content, charset));
    const before = content.subarray(0, at);
    const after = at === content.length ? (endsWithLineBreak(content) ? CRLF : '') : CRLF;
    const piece = placed(at === 0 || content[at - 1] === 0x0a, fragment, after);
    return { bytes: Buffer.concat([before, asciiReturn(before, charset), Buffer.from(piece, 'latin1'), content.subarray(at)]) };
  }
  const doc = withUtf8Meta(decodeText(content, charset));
  const at = insertionPoint(doc);
  const after = at === doc.length ? (doc.endsWith('\n') ? CRLF : '') : CRLF;
  const piece = placed(at === 0 || doc[at - 1] === '\n', fragment, after);
  return { bytes: Buffer.from(doc.slice(0, at) + piece + doc.slice(at), 'utf8'), charset: UTF8 };
}

/** The fragment on lines of its own, so the HTML source stays readable. */
function placed(lineStart: boolean, fragment: string, after: string): string {
  return `${lineStart ? '' : CRLF}${fragment}${after}`;
}

/** Offset of the last </body>, else the last </html>, else the end. */
function insertionPoint(doc: string): number {
  for (const tag of [/<\/body\s*>/gi, /<\/html\s*>/gi]) {
    let last = -1;
    for (const m of doc.matchAll(tag)) last = m.index;
    if (last >= 0) return last;
  }
  return doc.length;
}

/** The charset parameter inside one <meta ...> tag: what comes before its value, and the value. */
const META_CHARSET = /(\bcharset\s*=\s*["']?)([A-Za-z0-9_.:-]+)/i;

/**
 * A document converted to UTF-8 must not keep declaring its old charset in a <meta> tag. Tag by
 * tag (indexOf, then a regex on the tag alone): one regex over the document would rescan the
 * rest of it from every "<meta" that has no ">" (quadratic on hostile input).
 */
function withUtf8Meta(doc: string): string {
  const lower = asciiLowerCase(doc);
  const out: string[] = [];
  let from = 0;
  for (let at = lower.indexOf('<meta', 0); at >= 0; at = lower.indexOf('<meta', at + 1)) {
    if (/[a-z0-9_]/.test(lower[at + 5] ?? '')) continue; // <metadata> is not <meta>
    const gt = lower.indexOf('>', at);
    const end = gt < 0 ? doc.length : gt;
    const tag = doc.slice(at, end);
    const m = META_CHARSET.exec(tag);
    if (m) {
      const valueAt = at + m.index + m[1]!.length;
      out.push(doc.slice(from, valueAt), UTF8);
      from = valueAt + m[2]!.length;
    }
    if (gt < 0) break;
    at = gt;
  }
  out.push(doc.slice(from));
  return out.join('');
}

function endsWithLineBreak(b: Buffer): boolean {
  return b.length > 0 && b[b.length - 1] === 0x0a;
}

/** Length of `b` without trailing line breaks and blanks. */
function trimmedEnd(b: Buffer): number {
  let end = b.length;
  while (end > 0) {
    const c = b[end - 1];
    if (c !== 0x0a && c !== 0x0d && c !== 0x20 && c !== 0x09) break;
    end--;
  }
  return end;
}
