// Charsets of text parts that get a disclaimer. The part's own bytes are never changed: the
// disclaimer is encoded in the part's charset and appended byte-wise, which works in
// ASCII-compatible charsets (even bytes invalid in the declared charset survive untouched).
// ISO-2022-JP, which iconv-lite cannot convert, takes an ASCII disclaimer in its ASCII state;
// parts in charsets that are not ASCII-compatible (UTF-16, UTF-7) get none.
import { isAscii as isAsciiBuffer } from 'node:buffer';
import type Iconv from 'iconv-lite';
import { loadOnFirstUse } from '../primitives/first-use.js';

// Loaded on first use, not by the commands that only read the policy (start-up time).
const iconv = loadOnFirstUse<typeof Iconv>(import.meta.url, 'iconv-lite');

/** Names that mean plain ASCII (RFC 2046 default when a text part has no charset). */
const ASCII_NAMES = new Set(['us-ascii', 'ascii', 'ansi_x3.4-1968', 'iso646-us', 'us', 'iso-ir-6', 'cp367', 'ibm367']);

/**
 * Encodings where bytes below 0x80 are not always the ASCII characters they look like, or
 * that carry a shift state: appending or searching byte-wise is unsafe, so such parts are
 * decoded whole and rewritten as UTF-8.
 */
const NOT_ASCII_COMPATIBLE = /^(utf-?16|utf-?32|ucs-?2|ucs-?4|utf-?7|iso-2022|csiso2022|hz-gb-2312|hz$)/;

/** ISO-2022-JP (RFC 1468): 7-bit, shifts with escape sequences, every line ends in ASCII. */
const ISO_2022_JP = /^(iso-2022-jp|csiso2022jp)$/;

export type CharsetKind = 'ascii' | 'utf-8' | 'ascii-compatible' | 'iso-2022-jp' | 'stateful' | 'unknown';

/** The declared charset, lower-case, without quotes; "us-ascii" when none is declared. */
export function declaredCharset(raw: string | false | undefined): string {
  const cs = (raw || '')
    .trim()
    .replace(/^["']|["']$/g, '')
    .toLowerCase();
  return cs || 'us-ascii';
}

export function classifyCharset(charset: string): CharsetKind {
  if (ASCII_NAMES.has(charset)) return 'ascii';
  if (charset === 'utf-8' || charset === 'utf8') return 'utf-8';
  // iconv-lite cannot convert it, but ASCII can be added in its ASCII state.
  if (ISO_2022_JP.test(charset)) return 'iso-2022-jp';
  if (!iconv().encodingExists(charset)) return 'unknown';
  if (NOT_ASCII_COMPATIBLE.test(charset)) return 'stateful';
  return 'ascii-compatible';
}

const isAscii = (s: string): boolean => /^[\x00-\x7f]*$/.test(s);
/** No byte above 0x7f (node's native check: a per-byte callback cost more than the rest of the plan). */
const isAsciiBytes = (b: Buffer): boolean => isAsciiBuffer(b);

/** `text` in `charset`, or null when the charset cannot represent it. */
export function encodeIfRepresentable(text: string, charset: string): Buffer | null {
  switch (classifyCharset(charset)) {
    case 'ascii':
    case 'iso-2022-jp':
      return isAscii(text) ? Buffer.from(text, 'latin1') : null;
    case 'utf-8':
      return Buffer.from(text, 'utf8');
    case 'ascii-compatible': {
      const bytes = iconv().encode(text, charset);
      // iconv-lite replaces what it cannot encode with "?": a round trip tells.
      return iconv().decode(bytes, charset) === text ? bytes : null;
    }
    default:
      return null;
  }
}

/**
 * Decodes a part's bytes to text (to find the disclaimer, and to check it). A part that claims
 * ASCII but carries 8-bit bytes is read as UTF-8 when it is valid UTF-8, else as Windows-1252
 * (what such mail usually is).
 */
export function decodeText(bytes: Buffer, charset: string): string {
  const kind = classifyCharset(charset);
  if (kind === 'utf-8') return bytes.toString('utf8');
  if (kind === 'ascii' || kind === 'unknown' || kind === 'iso-2022-jp') {
    if (isAsciiBytes(bytes)) return bytes.toString('latin1');
    return isValidUtf8(bytes) ? bytes.toString('utf8') : iconv().decode(bytes, 'windows-1252');
  }
  return iconv().decode(bytes, charset);
}

function isValidUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Can byte-wise search and append be used on this charset (see asciiView for ISO-2022-JP)? */
export function isByteSafe(charset: string): boolean {
  const kind = classifyCharset(charset);
  return kind === 'ascii' || kind === 'utf-8' || kind === 'ascii-compatible' || kind === 'iso-2022-jp';
}

/** Can a part in this charset be changed at all? (Either byte-wise or by converting it.) */
export function isSupported(charset: string): boolean {
  return classifyCharset(charset) !== 'unknown';
}

const ESC = 0x1b;
/** ESC ( B and ESC ( J switch ISO-2022-JP back to (near-)ASCII. */
const isAsciiDesignation = (b: Buffer, i: number) => b[i + 1] === 0x28 && (b[i + 2] === 0x42 || b[i + 2] === 0x4a);

/**
 * The bytes as a latin1 string of the same length in which text in a shifted ISO-2022 state
 * is blanked out (NUL), so that searching for "</body>" finds only real ASCII markup. For
 * every other byte-safe charset it is the plain latin1 view.
 */
export function asciiView(bytes: Buffer, charset: string): string {
  if (classifyCharset(charset) !== 'iso-2022-jp' || !bytes.includes(ESC)) return bytes.toString('latin1');
  const out = Buffer.from(bytes);
  let ascii = true;
  for (let i = 0; i < out.length; i++) {
    if (out[i] === ESC) {
      ascii = isAsciiDesignation(bytes, i);
      continue;
    }
    if (!ascii) out[i] = 0;
  }
  return out.toString('latin1');
}

/** The escape sequence that returns an ISO-2022-JP text to ASCII, if it ends shifted. */
export function asciiReturn(bytes: Buffer, charset: string): Buffer {
  if (classifyCharset(charset) !== 'iso-2022-jp') return Buffer.alloc(0);
  const last = bytes.lastIndexOf(ESC);
  return last < 0 || isAsciiDesignation(bytes, last) ? Buffer.alloc(0) : Buffer.from([ESC, 0x28, 0x42]);
}

/** Non-ASCII characters as HTML numeric character references: valid in any HTML charset. */
export function htmlToAscii(html: string): string {
  let out = '';
  for (const ch of html) {
    const cp = ch.codePointAt(0)!;
    out += cp > 0x7f ? `&#${cp};` : ch;
  }
  return out;
}
