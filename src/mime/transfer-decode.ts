// Incremental Content-Transfer-Encoding decoders for scanning. The MIME splitter hands out a
// part's body in pieces that may end anywhere (inside a base64 quantum or an "=XX" escape), so
// each decoder keeps the unfinished tail for the next piece. Synchronous on purpose: the
// scanner processes one splitter event at a time and needs the decoded bytes right away.

export interface TransferDecoder {
  write(chunk: Buffer): Buffer;
  end(): Buffer;
  /**
   * How many bytes write() would have returned, without producing them (a scanner that needs
   * only the decoded size of an attachment). Once measure() is called, write() is not called
   * again for this part; the part ends with measureEnd() instead of end().
   */
  measure(chunk: Buffer): number;
  measureEnd(): number;
}

const EMPTY = Buffer.alloc(0);

/** Longest run of whitespace after "=" we wait for before deciding it is not a soft break. */
const MAX_QP_CARRY = 256;

export function transferDecoder(encoding: string | false | undefined): TransferDecoder {
  switch ((encoding || '').toLowerCase().trim()) {
    case 'base64':
      return new Base64Decoder();
    case 'quoted-printable':
      return new QuotedPrintableDecoder();
    case 'x-uuencode':
    case 'uuencode':
    case 'x-uue':
    case 'uue':
      return new UudecodeDecoder();
    default:
      return { write: (chunk) => chunk, end: () => EMPTY, measure: (chunk) => chunk.length, measureEnd: () => 0 };
  }
}

/**
 * 1 for the bytes Base64Decoder keeps, 0 for the rest. The standard alphabet only: mail readers
 * skip "-" and "_" like any other byte outside it, so decoding them as URL-safe base64 would
 * show the filters bytes no reader sees (and hide the ones it does).
 */
const BASE64_ALPHABET = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')
  BASE64_ALPHABET[c.charCodeAt(0)] = 1;

/**
 * BASE64_ALPHABET for two bytes at once, indexed by a 16-bit word (a sum, so the byte order
 * does not matter): measuring a large attachment takes half the lookups. 64 KiB, built on first use.
 */
let pairTable: Uint8Array | null = null;
function base64Pairs(): Uint8Array {
  if (pairTable) return pairTable;
  const t = new Uint8Array(65536);
  for (let lo = 0; lo < 256; lo++)
    for (let hi = 0; hi < 256; hi++) t[lo | (hi << 8)] = BASE64_ALPHABET[lo]! + BASE64_ALPHABET[hi]!;
  return (pairTable = t);
}

/** How many bytes of `b` are in the base64 alphabet. */
export function countBase64Chars(b: Buffer): number {
  let n = 0;
  let i = 0;
  // A Uint16Array view needs an even offset: count a first byte at an odd one by itself.
  if (b.byteOffset & 1 && b.length) n += BASE64_ALPHABET[b[i++]!]!;
  const pairs = (b.length - i) >> 1;
  if (pairs > 0) {
    const table = base64Pairs();
    const words = new Uint16Array(b.buffer, b.byteOffset + i, pairs);
    for (let k = 0; k < pairs; k++) n += table[words[k]!]!;
    i += pairs * 2;
  }
  if (i < b.length) n += BASE64_ALPHABET[b[i]!]!;
  return n;
}

/** Anything outside the standard alphabet and the pad: line breaks, garbage. */
const NOT_BASE64 = /[^A-Za-z0-9+/=]+/g;

/** Ignores line breaks and garbage, decodes whole 4-character groups, keeps the rest. */
class Base64Decoder implements TransferDecoder {
  private carry = '';
  /** Measuring: characters of an unfinished group (the carry, counted instead of kept). */
  private pending = 0;

  measure(chunk: Buffer): number {
    let n = this.pending + this.carry.length;
    this.carry = '';
    n += countBase64Chars(chunk);
    this.pending = n % 4;
    return ((n - this.pending) / 4) * 3;
  }

  /** As end(): a last group of 2 or 3 characters still gives 1 or 2 bytes. */
  measureEnd(): number {
    const rest = this.pending + this.carry.length;
    this.pending = 0;
    this.carry = '';
    return rest > 1 ? rest - 1 : 0;
  }

  /** Pads that complete a group were seen: the data is over (readers decode nothing after them). */
  private done = false;

  write(chunk: Buffer): Buffer {
    if (this.done) return EMPTY;
    const s = this.carry + chunk.toString('latin1').replace(NOT_BASE64, '');
    const { data, undecided } = s.includes('=') ? this.untilPad(s) : { data: s, undecided: '' };
    const whole = this.done ? data.length : data.length - (data.length % 4);
    this.carry = data.slice(whole) + undecided;
    return whole ? decodeGroups(data.slice(0, whole)) : EMPTY;
  }

  end(): Buffer {
    // A "=" still undecided ends the data here, as it would have.
    const rest = this.carry.replace('=', '');
    this.carry = '';
    return rest.length > 1 ? decodeGroups(rest) : EMPTY;
  }

  /**
   * The characters up to the pads that end the data, pads removed. As Python's decoder (binascii,
   * not strict) and Perl's MIME::Parser read it: pads end the data only when they complete a
   * group (one "=" after three characters, two after two); any other "=" is skipped and the data
   * goes on, so text after a stray "=" is text a reader sees. A "=" after two characters at the
   * end of `s` waits in `undecided` for the next piece to say whether a second one follows.
   */
  private untilPad(s: string): { data: string; undecided: string } {
    let out = '';
    let from = 0;
    for (let at = s.indexOf('='); at >= 0; at = s.indexOf('=', from)) {
      out += s.slice(from, at);
      from = at + 1;
      const inGroup = out.length % 4;
      if (inGroup === 3 || (inGroup === 2 && s[at + 1] === '=')) {
        this.done = true;
        return { data: out, undecided: '' };
      }
      if (inGroup === 2 && from === s.length) return { data: out, undecided: '=' };
    }
    return { data: out + s.slice(from), undecided: '' };
  }
}

/** Whole groups (and, at the end, a last group of 2 or 3 characters) of the standard alphabet. */
function decodeGroups(s: string): Buffer {
  return Buffer.from(s, 'base64');
}

const hexValue = (c: number): number => {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
};

const CR = 0x0d;
const LF = 0x0a;
const EQ = 0x3d;

/** A decoder whose output is small next to its input: measuring is decoding and counting. */
abstract class CountingDecoder implements TransferDecoder {
  abstract write(chunk: Buffer): Buffer;
  abstract end(): Buffer;

  measure(chunk: Buffer): number {
    return this.write(chunk).length;
  }

  measureEnd(): number {
    return this.end().length;
  }
}

/** RFC 2045 quoted-printable, lenient: invalid escapes are kept as they are. */
class QuotedPrintableDecoder extends CountingDecoder {
  private carry: Buffer = EMPTY;

  write(chunk: Buffer): Buffer {
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = EMPTY;
    const out = Buffer.allocUnsafe(data.length);
    let o = 0;
    let i = 0;
    const n = data.length;
    while (i < n) {
      const b = data[i]!;
      if (b !== EQ) {
        out[o++] = b;
        i++;
        continue;
      }
      // "=" then: two hex digits, a line break (soft break, maybe after padding blanks), or junk.
      let j = i + 1;
      while (j < n && (data[j] === 0x20 || data[j] === 0x09)) j++;
      if (j >= n) {
        if (n - i <= MAX_QP_CARRY) {
          this.carry = Buffer.from(data.subarray(i));
          break;
        }
        out[o++] = b;
        i++;
        continue;
      }
      const c1 = data[j]!;
      if (c1 === LF) {
        i = j + 1;
        continue;
      }
      if (c1 === CR) {
        if (j + 1 >= n) {
          this.carry = Buffer.from(data.subarray(i));
          break;
        }
        i = data[j + 1] === LF ? j + 2 : j + 1;
        continue;
      }
      if (j === i + 1 && hexValue(c1) >= 0) {
        if (i + 2 >= n) {
          this.carry = Buffer.from(data.subarray(i));
          break;
        }
        const lo = hexValue(data[i + 2]!);
        if (lo >= 0) {
          out[o++] = (hexValue(c1) << 4) | lo;
          i += 3;
          continue;
        }
      }
      out[o++] = b;
      i++;
    }
    return out.subarray(0, o);
  }

  end(): Buffer {
    const rest = this.carry;
    this.carry = EMPTY;
    // A lone "=" or "=A" at the very end: keep it literally.
    return rest;
  }
}

/** The uuencode alphabet: each character stands for (c - 32) & 63; "`" is 0. */
const uuValue = (c: number): number => (c - 0x20) & 0x3f;
/** Longest line kept while waiting for its end; a longer one is decoded as far as it goes. */
const MAX_UU_LINE = 64 * 1024;

/**
 * x-uuencode bodies, as mail readers decode them: everything before a "begin MODE NAME" line is
 * skipped; each line then starts with its byte count; "end" (or the end of the part) stops it.
 */
class UudecodeDecoder extends CountingDecoder {
  private state: 'before' | 'data' | 'after' = 'before';
  private carry: Buffer = EMPTY;

  write(chunk: Buffer): Buffer {
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const out: Buffer[] = [];
    let start = 0;
    for (let lf = data.indexOf(LF, start); lf >= 0; lf = data.indexOf(LF, start)) {
      this.line(data.subarray(start, lf), out);
      start = lf + 1;
    }
    let rest = data.subarray(start);
    if (rest.length > MAX_UU_LINE) {
      this.line(rest, out);
      rest = EMPTY;
    }
    this.carry = Buffer.from(rest);
    return out.length ? Buffer.concat(out) : EMPTY;
  }

  end(): Buffer {
    const out: Buffer[] = [];
    if (this.carry.length) this.line(this.carry, out);
    this.carry = EMPTY;
    return out.length ? Buffer.concat(out) : EMPTY;
  }

  private line(raw: Buffer, out: Buffer[]): void {
    let e = raw.length;
    if (e && raw[e - 1] === CR) e--;
    const line = raw.subarray(0, e);
    if (this.state === 'before') {
      if (/^begin [0-7]+ /.test(line.toString('latin1'))) this.state = 'data';
      return;
    }
    if (this.state === 'after') return;
    const text = line.toString('latin1');
    if (text.trim() === 'end' || line.length === 0) {
      this.state = 'after';
      return;
    }
    const count = uuValue(line[0]!);
    const bytes = Buffer.allocUnsafe(count);
    let o = 0;
    for (let i = 1; o < count; i += 4) {
      const c = [0, 1, 2, 3].map((k) => (i + k < line.length ? uuValue(line[i + k]!) : 0));
      const triple = [(c[0]! << 2) | (c[1]! >> 4), ((c[1]! & 0x0f) << 4) | (c[2]! >> 2), ((c[2]! & 0x03) << 6) | c[3]!];
      for (const b of triple) if (o < count) bytes[o++] = b & 0xff;
    }
    out.push(bytes);
  }
}
