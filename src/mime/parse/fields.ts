// What a part's header fields say about it: media type and parameters, transfer encoding,
// disposition and file names. Where a reader could pick one of several copies (two
// Content-Type fields), the Reading decides and the disagreement is reported.
import type LibMime from 'libmime';
import type { Ambiguity, HeaderField, MimePart, Reading } from './types.js';
import { loadOnFirstUse } from '../../primitives/first-use.js';

// Loaded on first use, not by the commands that only read the policy (start-up time).
const libmime = loadOnFirstUse<typeof LibMime>(import.meta.url, 'libmime');

export type PartFacts = Pick<
  MimePart,
  | 'kind'
  | 'contentType'
  | 'params'
  | 'boundary'
  | 'charset'
  | 'encoding'
  | 'disposition'
  | 'filename'
  | 'names'
  | 'flowed'
  | 'delsp'
>;

const DIGEST = 'multipart/digest';
/** message/* types that hold one message; these hold report fields, read as text (as clients and MIME::Parser do). */
const NOT_A_MESSAGE = new Set([
  'message/delivery-status',
  'message/disposition-notification',
  'message/rfc822-headers',
  'message/feedback-report',
]);

export function partFacts(
  headers: readonly HeaderField[],
  parentType: string | null,
  reading: Reading,
  noted: Set<Ambiguity>,
): PartFacts {
  const ctFields = headers.filter((h) => h.key === 'content-type');
  const cteFields = headers.filter((h) => h.key === 'content-transfer-encoding');
  if (differ(ctFields, (v) => v.replace(/\s+/g, '').toLowerCase())) noted.add('duplicate-content-type');
  if (differ(cteFields, (v) => v.trim().toLowerCase())) noted.add('duplicate-transfer-encoding');
  const ct = pick(ctFields, reading);
  const cte = pick(cteFields, reading);

  const parsed = ct ? parseValue(ct.value) : null;
  const contentType = ct ? mediaType(parsed!.value) : parentType === DIGEST ? 'message/rfc822' : 'text/plain';
  const params = parsed?.params ?? {};
  const cd = headers.find((h) => h.key === 'content-disposition');
  const cdParsed = cd ? parseValue(cd.value) : null;

  let kind: PartFacts['kind'] = 'leaf';
  if (contentType.startsWith('multipart/')) kind = 'multipart';
  else if (contentType.startsWith('message/') && !NOT_A_MESSAGE.has(contentType)) kind = 'message';
  const boundary = kind === 'multipart' ? (params.boundary ?? '').replace(/\s+$/, '') : '';

  const filename = cleanName(cdParsed?.params.filename) ?? cleanName(params.name);
  const names = new Set<string>();
  for (const h of headers) {
    if (h.key !== 'content-type' && h.key !== 'content-disposition') continue;
    const p = parseValue(h.value).params;
    for (const raw of [p.filename, p.name, ...tokenNames(h.value)]) {
      const n = cleanName(raw);
      if (n) names.add(n);
    }
  }
  const charset = (params.charset ?? '').trim();
  const flowed = contentType === 'text/plain' && (params.format ?? '').trim().toLowerCase() === 'flowed';
  return {
    kind,
    contentType,
    params,
    ...(kind === 'multipart' && boundary ? { boundary } : {}),
    charset,
    encoding: cte ? cte.value.trim().toLowerCase() : '',
    disposition: cdParsed ? cdParsed.value.trim().toLowerCase() : '',
    filename,
    names: [...names],
    flowed,
    delsp: flowed && (params.delsp ?? '').trim().toLowerCase() === 'yes',
  };
}

function pick(fields: HeaderField[], reading: Reading): HeaderField | undefined {
  return reading.duplicates === 'first' ? fields[0] : fields[fields.length - 1];
}

function differ(fields: HeaderField[], norm: (v: string) => string): boolean {
  return fields.length > 1 && new Set(fields.map((f) => norm(f.value))).size > 1;
}

/** RFC 2045 token characters. */
const MEDIA_TYPE = /^\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*\/\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]*)/;

/**
 * type/subtype, lower-case, from the start of the value (junk after it, such as parameters
 * without a ";", is ignored as MIME::Parser and mail clients do); text/plain when there is none
 * (RFC 2045 5.2). An empty subtype ("application/", a truncated field) is kept, as Python's
 * email package and MIME::Parser keep it.
 */
function mediaType(value: string): string {
  const m = MEDIA_TYPE.exec(value);
  return m ? `${m[1]}/${m[2]}`.toLowerCase() : 'text/plain';
}

/** An unquoted name= or filename= value, as written (up to the next ";"). */
const UNQUOTED_NAME = /;\s*(?:file)?name\s*=\s*([^"\s;][^;]*)/gi;
/** An RFC 2045 token: what a strict parser takes of an unquoted value. */
const TOKEN = /^[^\x00-\x20\x7f()<>@,;:\\"/[\]?=]+/;

/**
 * The names a strict reader takes from unquoted values that hold tspecials. RFC 2045 allows
 * only a token there: Perl's MIME::Parser reads `name=evil.exe(1).pdf` as "evil.exe" (the rest
 * is a comment and junk) where Python and most clients keep the whole value, so both are names
 * the filters must see.
 */
function tokenNames(value: string): string[] {
  const out: string[] = [];
  for (const m of value.matchAll(UNQUOTED_NAME)) {
    const whole = m[1]!.trim();
    const token = TOKEN.exec(whole)?.[0];
    if (token && token !== whole) out.push(token);
  }
  return out;
}

function parseValue(value: string): { value: string; params: Record<string, string> } {
  let parsed: { value: string; params: Record<string, string> };
  try {
    parsed = libmime().parseHeaderValue(value);
  } catch {
    return { value: value.split(';')[0] ?? '', params: {} };
  }
  for (const [k, v] of Object.entries(parsed.params)) {
    if (typeof v !== 'string') parsed.params[k] = String(v);
    else if (LEFT_ENCODED.test(v)) parsed.params[k] = undoLeftEncoded(v);
  }
  return parsed;
}

/**
 * libmime turns an RFC 2231 value (charset''percent-encoded) into an encoded word and decodes
 * that; with a charset it does not know (ansi-x3.4-1968 is seen in real mail) the encoded word
 * is left as it is. Its bytes are then read as UTF-8 (ASCII in practice).
 */
const LEFT_ENCODED = /^=\?[^?]*\?Q\?(.*)\?=$/s;

function undoLeftEncoded(v: string): string {
  const q = LEFT_ENCODED.exec(v)![1]!;
  const bytes: number[] = [];
  for (let i = 0; i < q.length; i++) {
    const c = q[i]!;
    if (c === '_') bytes.push(0x20);
    else if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(q.slice(i + 1, i + 3))) {
      bytes.push(parseInt(q.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c.charCodeAt(0) & 0xff);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** A declared file name, encoded words decoded, trimmed; null when there is none. */
function cleanName(raw: string | undefined): string | null {
  if (raw === undefined) return null;
  let name = raw;
  try {
    name = libmime().decodeWords(raw);
  } catch {
    // An unknown charset in an encoded word: keep it as written.
  }
  // A quote left unbalanced (a truncated or broken field) is no part of the name a client saves.
  name = name
    .trim()
    .replace(/^["']+|["']+$/g, '')
    .trim();
  return name ? name : null;
}

/** One header field from its raw lines: name, and value unfolded with leading blanks removed. */
export function headerField(raw: string): HeaderField {
  const colon = raw.indexOf(':');
  const name = raw.slice(0, colon).trim();
  const value = raw
    .slice(colon + 1)
    .replace(/\r?\n/g, '')
    .replace(/^[ \t]+/, '')
    .replace(/[ \t]+$/, '');
  return { name, key: name.toLowerCase(), value };
}
