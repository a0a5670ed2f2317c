// Where and how the disclaimer goes into one text part, as an edit of the message's bytes: the
// part's own bytes stay as they are and the disclaimer follows them (plain text) or goes in
// before </body> (HTML), written in the part's charset and transfer encoding. Only what cannot
// be continued byte for byte is written anew: the last base64 group when it is padded, and for
// HTML in quoted-printable or base64 the lines from the insertion point to the end.
import { asciiReturn, asciiView, declaredCharset, encodeIfRepresentable, htmlToAscii, isByteSafe } from '../charset.js';
import type { MimePart } from '../parse/types.js';
import { transferDecoder } from '../transfer-decode.js';
import { BASE64_WIDTH, encodeBase64Lines, encodeQuotedPrintable } from './encode.js';
import { flowedLines } from './flowed.js';

export type TargetKind = 'plain' | 'html';

export interface DisclaimerTexts {
  /** Plain text, CRLF line ends, no trailing line break. */
  text: string;
  /** HTML fragment. */
  html: string;
}

/** Replace the message's bytes [from, to) with `bytes`. */
export interface PartEdit {
  part: MimePart;
  kind: TargetKind;
  from: number;
  to: number;
  bytes: Buffer;
  /** The decoded part afterwards is before + added + (line breaks) + after. */
  expect: { before: Buffer; added: Buffer; after: Buffer };
  /** The disclaimer text as written (its ASCII form when the charset could not carry the original). */
  text: string;
  /** The charset could not carry the disclaimer as configured: it was written in ASCII. */
  ascii: boolean;
}

export type EditOutcome = { ok: true; edit: PartEdit } | { ok: false; code: 'encoding' | 'charset'; reason: string };

const LF = 0x0a;
const CR = 0x0d;
const IDENTITY = new Set(['', '7bit', '8bit', 'binary']);
const UUENCODE = new Set(['x-uuencode', 'uuencode', 'x-uue', 'uue']);
const SEVEN_BIT = new Set(['', '7bit']);

/**
 * The edit that adds the disclaimer to `part`, whose encoded body is `raw` and decoded content
 * `decoded`. `messageBreak` is the message's line break, for a part that has none of its own.
 */
export function editPart(
  part: MimePart,
  raw: Buffer,
  decoded: Buffer,
  kind: TargetKind,
  texts: DisclaimerTexts,
  messageBreak: string,
): EditOutcome {
  const enc = part.encoding;
  const label = part.path || 'TEXT';
  if (UUENCODE.has(enc)) return { ok: false, code: 'encoding', reason: `part ${label} is uuencoded` };
  const charset = declaredCharset(part.charset);
  if (!isByteSafe(charset))
    return {
      ok: false,
      code: 'charset',
      reason: `cannot add the disclaimer to charset "${part.charset}" in part ${label}`,
    };
  const eol = lineBreakOf(raw) ?? messageBreak;

  const at = kind === 'html' ? htmlInsertionPoint(decoded, charset) : decoded.length;
  let text = texts.text;
  // A 7bit part (or one whose encoding name no reader knows) can take ASCII only.
  const sevenBit = SEVEN_BIT.has(enc) || !KNOWN.has(enc);
  const carries = sevenBit ? 'us-ascii' : charset;
  let added = kind === 'html' ? htmlBlock(decoded, at, texts.html, eol) : plainBlock(decoded, part, text, eol, carries);
  if (!added) {
    // The part's charset or 7bit encoding cannot carry the text (an en dash in ISO-8859-1): what
    // it cannot carry is written in its ASCII form rather than re-encoding the sender's text.
    text = [...text].map((ch) => (encodeIfRepresentable(ch, carries) ? ch : asciiForm(ch))).join('');
    added = plainBlock(decoded, part, text, eol, carries);
  }
  if (!added)
    return {
      ok: false,
      code: 'charset',
      reason: `the disclaimer cannot be written in charset "${part.charset}" (part ${label})`,
    };
  const ascii = text !== texts.text;
  const block = Buffer.concat([asciiReturn(decoded.subarray(0, at), charset), added]);
  const expect = { before: decoded.subarray(0, at), added: block, after: decoded.subarray(at) };

  if (IDENTITY.has(enc) || !KNOWN.has(enc)) {
    let bytes = block;
    if (at === decoded.length && part.delimiterAtEnd && !endsWithBreak(bytes))
      bytes = Buffer.concat([bytes, Buffer.from(eol)]);
    return {
      ok: true,
      edit: { part, kind, from: part.bodyStart + at, to: part.bodyStart + at, bytes, expect, text, ascii },
    };
  }
  const out =
    enc === 'quoted-printable'
      ? { ok: true as const, edit: quotedPrintableEdit(part, raw, decoded, at, block, eol, kind, expect) }
      : base64Edit(part, raw, decoded, at, block, eol, kind, expect);
  return out.ok ? { ok: true, edit: { ...out.edit, text, ascii } } : out;
}

/** Typographic characters as their ASCII look-alikes, accents dropped (NFKD); anything else as "?". */
function asciiForm(text: string): string {
  return text
    .replace(/[\u2010-\u2015\u2212]/g, '-')
    .replace(/[\u2018\u2019\u201a\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201e\u2033]/g, '"')
    .replace(/\u2026/g, '...')
    .replace(/[\u00a0\u2000-\u200b]/g, ' ')
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\x00-\x7f]/g, '?');
}

const KNOWN = new Set([...IDENTITY, 'quoted-printable', 'base64']);

function plainBlock(decoded: Buffer, part: MimePart, text: string, eol: string, charset: string): Buffer | null {
  let lines = text.split('\r\n');
  if (part.flowed) lines = flowedLines(lines);
  const endsWithEol = decoded.length > 0 && decoded[decoded.length - 1] === LF;
  const sep = decoded.length === 0 ? '' : endsWithEol ? eol : eol + eol;
  const block = `${sep}${lines.join(eol)}${endsWithEol ? eol : ''}`;
  return encodeIfRepresentable(block, charset);
}

function htmlBlock(decoded: Buffer, at: number, html: string, eol: string): Buffer {
  const fragment = htmlToAscii(html).replace(/\r\n/g, eol);
  const lineStart = at === 0 || decoded[at - 1] === LF;
  const atEnd = at === decoded.length;
  const tail = atEnd ? (decoded.length > 0 && decoded[decoded.length - 1] === LF ? eol : '') : eol;
  return Buffer.from(`${lineStart ? '' : eol}${fragment}${tail}`, 'latin1');
}

/** Offset of the last </body>, else the last </html>, else the end (byte offsets: byte-safe charsets only). */
function htmlInsertionPoint(decoded: Buffer, charset: string): number {
  const view = asciiView(decoded, charset);
  for (const tag of [/<\/body\s*>/gi, /<\/html\s*>/gi]) {
    let last = -1;
    for (const m of view.matchAll(tag)) last = m.index;
    if (last >= 0) return last;
  }
  return decoded.length;
}

function quotedPrintableEdit(
  part: MimePart,
  raw: Buffer,
  decoded: Buffer,
  at: number,
  block: Buffer,
  eol: string,
  kind: TargetKind,
  expect: PartEdit['expect'],
): Omit<PartEdit, 'text' | 'ascii'> {
  // Cut at the start of the encoded line that holds the insertion point (at the end: after the
  // last byte); everything from there is the decoded tail with the disclaimer, encoded anew.
  let rawCut = raw.length;
  let decodedCut = decoded.length;
  if (at < decoded.length) {
    for (const [r, d] of lineStarts(raw, 'qp')) {
      if (d > at) break;
      rawCut = r;
      decodedCut = d;
    }
  }
  const tail = Buffer.concat([decoded.subarray(decodedCut, at), block, decoded.subarray(at)]);
  let text = encodeQuotedPrintable(tail, eol);
  const rawEndsWithBreak = endsWithBreak(raw);
  // Appended after a last line with no line break of its own: a soft break ends that line
  // without adding anything to the decoded text.
  if (rawCut === raw.length && raw.length && !rawEndsWithBreak) text = `=${eol}${text}`;
  if ((rawEndsWithBreak || part.delimiterAtEnd) && !text.endsWith(eol)) text += eol;
  return { part, kind, from: part.bodyStart + rawCut, to: part.bodyEnd, bytes: Buffer.from(text, 'latin1'), expect };
}

function base64Edit(
  part: MimePart,
  raw: Buffer,
  decoded: Buffer,
  at: number,
  block: Buffer,
  eol: string,
  kind: TargetKind,
  expect: PartEdit['expect'],
): { ok: true; edit: Omit<PartEdit, 'text' | 'ascii'> } | { ok: false; code: 'encoding'; reason: string } {
  const label = part.path || 'TEXT';
  const scan = scanBase64(raw);
  // Readers disagree on what such a part says (some show it undecoded): leave it as it is.
  if (scan.afterPad) return { ok: false, code: 'encoding', reason: `part ${label} has data after its base64 padding` };
  if (scan.foreign || scan.chars % 4 === 1)
    return { ok: false, code: 'encoding', reason: `part ${label} is not valid base64` };
  let rawCut: number;
  let decodedCut: number;
  let used = 0;
  if (at === decoded.length) {
    if (scan.chars % 4 === 0 && !scan.padded) {
      rawCut = raw.length;
      decodedCut = decoded.length;
    } else {
      // The last group is padded or short: it is written again, with what follows.
      const groupStart = scan.chars - (scan.chars % 4 || 4);
      rawCut = scan.charOffset(groupStart);
      decodedCut = (groupStart / 4) * 3;
      used = rawCut - (raw.lastIndexOf(LF, rawCut - 1) + 1);
    }
  } else {
    rawCut = 0;
    decodedCut = 0;
    for (const [r, c] of lineStarts(raw, 'base64')) {
      if (c % 4 !== 0 || (c / 4) * 3 > at) continue;
      rawCut = r;
      decodedCut = (c / 4) * 3;
    }
  }
  const tail = Buffer.concat([decoded.subarray(decodedCut, at), block, decoded.subarray(at)]);
  const rawEndsWithBreak = endsWithBreak(raw);
  const lead = rawCut === raw.length && raw.length && !rawEndsWithBreak ? eol : '';
  let text = lead + encodeBase64Lines(tail, eol, scan.width, lead ? 0 : used);
  if ((rawEndsWithBreak || part.delimiterAtEnd) && !text.endsWith(eol)) text += eol;
  return {
    ok: true,
    edit: { part, kind, from: part.bodyStart + rawCut, to: part.bodyEnd, bytes: Buffer.from(text, 'latin1'), expect },
  };
}

const B64 = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') B64[c.charCodeAt(0)] = 1;

function scanBase64(raw: Buffer): {
  chars: number;
  padded: boolean;
  afterPad: boolean;
  foreign: boolean;
  width: number;
  charOffset: (n: number) => number;
} {
  const offsets: number[] = [];
  let padded = false;
  let afterPad = false;
  let foreign = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === 0x3d) padded = true;
    else if (B64[c]) {
      if (padded) afterPad = true;
      offsets.push(i);
    } else if (c !== CR && c !== LF && c !== 0x20 && c !== 0x09) foreign = true;
  }
  const firstBreak = raw.indexOf(LF);
  const firstLine = firstBreak < 0 ? raw.length : firstBreak - (raw[firstBreak - 1] === CR ? 1 : 0);
  const width =
    firstBreak > 0 && firstLine >= 4 && firstLine <= BASE64_WIDTH && firstLine % 4 === 0 ? firstLine : BASE64_WIDTH;
  return { chars: offsets.length, padded, afterPad, foreign, width, charOffset: (n) => offsets[n] ?? raw.length };
}

/** [raw offset, decoded offset] (qp) or [raw offset, alphabet characters before it] (base64) of each line start. */
function lineStarts(raw: Buffer, kind: 'qp' | 'base64'): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let count = 0;
  let start = 0;
  while (start <= raw.length) {
    out.push([start, count]);
    const lf = raw.indexOf(LF, start);
    const end = lf < 0 ? raw.length : lf + 1;
    const line = raw.subarray(start, end);
    if (kind === 'qp') {
      const d = transferDecoder('quoted-printable');
      count += d.write(line).length + d.end().length;
    } else for (const c of line) count += B64[c]!;
    if (lf < 0) break;
    start = end;
  }
  return out;
}

function endsWithBreak(b: Buffer): boolean {
  return b.length > 0 && b[b.length - 1] === LF;
}

/** The part's own line break: the first one in its body. */
function lineBreakOf(raw: Buffer): string | null {
  const lf = raw.indexOf(LF);
  if (lf < 0) return null;
  return lf > 0 && raw[lf - 1] === CR ? '\r\n' : '\n';
}
