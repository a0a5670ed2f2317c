// Lists the member names of a zip archive held in memory, so attachment rules can look inside
// zips without a library and without extracting anything (except, on request, one level of
// nested zip, inflated under a hard output cap).
//
// Names come from three places and all of them are reported, because they can disagree on
// purpose: the central directory (what Windows Explorer shows), the local file headers (what
// streaming extractors use) and the Info-ZIP Unicode Path extra field (what 7-Zip prefers).
import type Iconv from 'iconv-lite';
import { loadOnFirstUse } from '../primitives/first-use.js';

// Loaded on first use, not by the commands that only read the policy (start-up time), nor by a
// daemon that has not yet met a nested zip (node:zlib: about 0.5 MiB, bench/RESULTS.md "Issue 22,
// fifth pass").
const iconv = loadOnFirstUse<typeof Iconv>(import.meta.url, 'iconv-lite');
const zlib = loadOnFirstUse<typeof import('node:zlib')>(import.meta.url, 'node:zlib');

export interface ZipListOptions {
  /** Stop after this many names (all sources together). */
  maxEntries: number;
  /** Also list the members of zips inside the zip (one level). */
  nested: boolean;
  /** Largest inflated size of a nested zip we are willing to hold. */
  maxNestedBytes: number;
}

export interface ZipMember {
  name: string;
  /** Name of the nested zip this member is in, when it is not at the top level. */
  container?: string;
  encrypted: boolean;
}

export interface ZipListing {
  members: ZipMember[];
  /** Not everything could be looked into: more than maxEntries, a broken structure, encrypted
   *  entries, a zip nested deeper than is opened, a nested zip too large to inflate. */
  incomplete: boolean;
  /** Why the listing is incomplete (for the trace). */
  problems: string[];
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const EOCD_SIZE = 22;
const CENTRAL_HEADER_SIZE = 46;
const LOCAL_HEADER_SIZE = 30;
const ZIP64_LOCATOR_SIZE = 20;
const MAX_COMMENT = 0xffff;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_UTF8 = 0x0800;
const EXTRA_UNICODE_PATH = 0x7075;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
const U32_MAX = 0xffffffff;
/** A member named like a zip (also with trailing dots or spaces, which Windows drops). */
const NESTED_ZIP_NAME = /\.zip[.\s]*$/i;

const LOCAL_MAGIC = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const EMPTY_MAGIC = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
const SPANNED_MAGIC = Buffer.from([0x50, 0x4b, 0x07, 0x08]);

/** True when the first bytes look like a zip (also empty and spanned archives). */
export function looksLikeZip(head: Buffer): boolean {
  if (head.length < 4) return false;
  const first = head.subarray(0, 4);
  return first.equals(LOCAL_MAGIC) || first.equals(EMPTY_MAGIC) || first.equals(SPANNED_MAGIC);
}

interface CentralEntry {
  name: string;
  flags: number;
  method: number;
  compressedSize: number;
  localOffset: number;
}

export function listZip(buf: Buffer, opts: ZipListOptions): ZipListing {
  const listing: ZipListing = { members: [], incomplete: false, problems: [] };
  const seen = new Set<string>();
  const add = (m: ZipMember): boolean => {
    const key = `${m.container ?? ''}\0${m.name}`;
    if (seen.has(key)) return true;
    if (listing.members.length >= opts.maxEntries) {
      noteProblem(listing, `more than ${opts.maxEntries} entries`);
      return false;
    }
    seen.add(key);
    listing.members.push(m);
    return true;
  };

  const central = readCentralDirectory(buf, opts.maxEntries, listing);
  for (const e of central.entries) {
    if (!add({ name: e.name, encrypted: (e.flags & FLAG_ENCRYPTED) !== 0 })) break;
  }
  for (const name of central.unicodeNames) if (!add({ name, encrypted: false })) break;
  for (const m of readLocalHeaders(buf, opts.maxEntries)) if (!add(m)) break;
  // What cannot be looked into makes the listing incomplete (the caller fails closed): an
  // encrypted member (neither we nor the virus scanner can read it) and a zip one level deeper
  // than we open.
  for (const m of listing.members) {
    if (m.encrypted) noteProblem(listing, 'encrypted entries');
    if (!opts.nested && NESTED_ZIP_NAME.test(m.name)) noteProblem(listing, 'a zip nested deeper than is opened');
  }

  if (opts.nested) {
    for (const e of central.entries) {
      if (!NESTED_ZIP_NAME.test(e.name)) continue;
      const inner = extractMember(buf, e, central.base, opts.maxNestedBytes);
      if (typeof inner === 'string') {
        noteProblem(listing, `${e.name}: ${inner}`);
        continue;
      }
      if (!looksLikeZip(inner)) continue;
      const sub = listZip(inner, { ...opts, nested: false, maxEntries: opts.maxEntries - listing.members.length });
      for (const m of sub.members) if (!add({ ...m, container: e.name })) break;
      for (const p of sub.problems) noteProblem(listing, `${e.name}: ${p}`);
    }
  }
  return listing;
}

function noteProblem(listing: ZipListing, problem: string): void {
  listing.incomplete = true;
  if (!listing.problems.includes(problem)) listing.problems.push(problem);
}

function findEocd(buf: Buffer): number {
  const lowest = Math.max(0, buf.length - EOCD_SIZE - MAX_COMMENT);
  for (let i = buf.length - EOCD_SIZE; i >= lowest; i--) {
    if (buf.readUInt32LE(i) === SIG_EOCD) return i;
  }
  return -1;
}

interface CentralDirectory {
  entries: CentralEntry[];
  unicodeNames: string[];
  /** Offset to add to recorded offsets (data prepended to the archive, e.g. self-extractors). */
  base: number;
}

function readCentralDirectory(buf: Buffer, maxEntries: number, listing: ZipListing): CentralDirectory {
  const result: CentralDirectory = { entries: [], unicodeNames: [], base: 0 };
  const eocd = buf.length >= EOCD_SIZE ? findEocd(buf) : -1;
  if (eocd < 0) {
    noteProblem(listing, 'no central directory');
    return result;
  }
  let cdSize = buf.readUInt32LE(eocd + 12);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  let cdEnd = eocd;
  if (cdSize === U32_MAX || cdOffset === U32_MAX) {
    const loc = eocd - ZIP64_LOCATOR_SIZE;
    if (loc < 0 || buf.readUInt32LE(loc) !== SIG_ZIP64_LOCATOR) {
      noteProblem(listing, 'broken zip64 directory');
      return result;
    }
    const z64 = Number(buf.readBigUInt64LE(loc + 8));
    if (z64 + 56 > buf.length || buf.readUInt32LE(z64) !== SIG_ZIP64_EOCD) {
      noteProblem(listing, 'broken zip64 directory');
      return result;
    }
    cdSize = Number(buf.readBigUInt64LE(z64 + 40));
    cdOffset = Number(buf.readBigUInt64LE(z64 + 48));
    cdEnd = z64;
  }
  // Where the directory really starts: right before its end record, whatever the offsets say.
  let start = cdEnd - cdSize;
  if (start < 0 || start + 4 > buf.length || buf.readUInt32LE(start) !== SIG_CENTRAL) start = cdOffset;
  result.base = start - cdOffset;
  let pos = start;
  while (pos + CENTRAL_HEADER_SIZE <= buf.length && buf.readUInt32LE(pos) === SIG_CENTRAL) {
    if (result.entries.length >= maxEntries) {
      noteProblem(listing, `more than ${maxEntries} entries`);
      break;
    }
    const flags = buf.readUInt16LE(pos + 8);
    const nameLen = buf.readUInt16LE(pos + 28);
    const extraLen = buf.readUInt16LE(pos + 30);
    const commentLen = buf.readUInt16LE(pos + 32);
    const nameEnd = pos + CENTRAL_HEADER_SIZE + nameLen;
    if (nameEnd + extraLen > buf.length) {
      noteProblem(listing, 'truncated central directory');
      break;
    }
    result.entries.push({
      name: decodeName(buf.subarray(pos + CENTRAL_HEADER_SIZE, nameEnd), flags),
      flags,
      method: buf.readUInt16LE(pos + 10),
      compressedSize: buf.readUInt32LE(pos + 20),
      localOffset: buf.readUInt32LE(pos + 42),
    });
    const unicode = unicodePath(buf.subarray(nameEnd, nameEnd + extraLen));
    if (unicode !== null) result.unicodeNames.push(unicode);
    pos = nameEnd + extraLen + commentLen;
  }
  if (result.entries.length === 0 && buf.readUInt16LE(eocd + 10) > 0)
    noteProblem(listing, 'unreadable central directory');
  return result;
}

/** Every local file header in the buffer, found by signature (sizes in them may be zero). */
function readLocalHeaders(buf: Buffer, maxEntries: number): ZipMember[] {
  const out: ZipMember[] = [];
  let pos = buf.indexOf(LOCAL_MAGIC);
  while (pos >= 0 && out.length < maxEntries && pos + LOCAL_HEADER_SIZE <= buf.length) {
    const flags = buf.readUInt16LE(pos + 6);
    const nameLen = buf.readUInt16LE(pos + 26);
    const extraLen = buf.readUInt16LE(pos + 28);
    const nameEnd = pos + LOCAL_HEADER_SIZE + nameLen;
    if (nameLen > 0 && nameEnd <= buf.length) {
      out.push({
        name: decodeName(buf.subarray(pos + LOCAL_HEADER_SIZE, nameEnd), flags),
        encrypted: (flags & FLAG_ENCRYPTED) !== 0,
      });
      const unicode = nameEnd + extraLen <= buf.length ? unicodePath(buf.subarray(nameEnd, nameEnd + extraLen)) : null;
      if (unicode !== null) out.push({ name: unicode, encrypted: (flags & FLAG_ENCRYPTED) !== 0 });
    }
    pos = buf.indexOf(LOCAL_MAGIC, pos + 4);
  }
  return out;
}

/** Names are UTF-8 when flag bit 11 is set, else IBM code page 437 (the zip default). */
function decodeName(raw: Buffer, flags: number): string {
  return flags & FLAG_UTF8 ? raw.toString('utf8') : iconv().decode(raw, 'cp437');
}

/** The Info-ZIP Unicode Path extra field (0x7075): version, CRC of the plain name, UTF-8 name. */
function unicodePath(extra: Buffer): string | null {
  let pos = 0;
  while (pos + 4 <= extra.length) {
    const id = extra.readUInt16LE(pos);
    const size = extra.readUInt16LE(pos + 2);
    const body = extra.subarray(pos + 4, pos + 4 + size);
    if (id === EXTRA_UNICODE_PATH && body.length > 5) return body.subarray(5).toString('utf8');
    pos += 4 + size;
  }
  return null;
}

/** The bytes of one member, or why they cannot be had. */
function extractMember(buf: Buffer, e: CentralEntry, base: number, maxBytes: number): Buffer | string {
  if (e.flags & FLAG_ENCRYPTED) return 'encrypted';
  if (e.compressedSize === U32_MAX || e.localOffset === U32_MAX) return 'zip64 member not extracted';
  const lh = e.localOffset + base;
  if (lh < 0 || lh + LOCAL_HEADER_SIZE > buf.length || buf.readUInt32LE(lh) !== SIG_LOCAL) return 'bad local header';
  const dataStart = lh + LOCAL_HEADER_SIZE + buf.readUInt16LE(lh + 26) + buf.readUInt16LE(lh + 28);
  const dataEnd = dataStart + e.compressedSize;
  if (dataEnd > buf.length) return 'truncated';
  const data = buf.subarray(dataStart, dataEnd);
  if (e.method === METHOD_STORED) return data.length > maxBytes ? 'too large to inspect' : data;
  if (e.method !== METHOD_DEFLATE) return `compression method ${e.method} not supported`;
  try {
    return zlib().inflateRawSync(data, { maxOutputLength: maxBytes });
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'too large to inspect' : 'cannot inflate';
  }
}
