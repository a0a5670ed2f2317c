// One RFC 2046 parse of a message, streaming, that records where every part's header block and
// body lie instead of copying them. It reads the structure the way mail clients and the
// independent parsers we compare with (Python's email package, Perl's MIME::Parser) do on the
// hard cases, because any part a client shows and we do not see is a way past the filters:
// - a delimiter line is "--" boundary, optionally "--", then any blanks (RFC 2046 5.1.1
//   transport padding) before the line break;
// - every open multipart's boundary is looked for on every line, outermost first: an enclosing
//   delimiter closes unterminated inner multiparts (and ends an embedded message);
// - the line break in front of a delimiter belongs to the delimiter, also after an empty part;
// - a multipart without a close delimiter ends at the enclosing delimiter or the end; one without
//   any delimiter has no parts (its body is all preamble);
// - after the close delimiter only enclosing boundaries count (the rest is epilogue);
// - consecutive delimiter lines make no empty parts between them;
// - a line in a header block that is not a field ends the block (it is body), or is skipped:
//   readers differ, so it is reported as an ambiguity along with duplicate content fields.
// Lines that cannot be delimiters are skipped with one indexOf per run, not looked at one by one.
import { partFacts, headerField } from './fields.js';
import {
  DEFAULT_READING,
  type Ambiguity,
  type LimitKind,
  type MimeParse,
  type MimePart,
  type ParseLimits,
  type Reading,
} from './types.js';

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
const NL_DASH = Buffer.from('\n-');
/** Bytes of a possible delimiter line kept for matching; past it only "all blanks?" is tracked. */
const DELIMITER_LINE_KEEP = 4096;
/** Header field name characters (RFC 5322 ftext), then the colon. */
const FIELD_START = /^[\x21-\x39\x3b-\x7e]*:/;

const DEFAULT_PARSE_LIMITS: ParseLimits = { maxParts: 10_000, maxDepth: 64, maxHeaderBytes: 256 * 1024 };

interface Frame {
  /** "--" + boundary. */
  dashBoundary: Buffer;
  state: 'preamble' | 'parts' | 'epilogue';
}

interface Open {
  part: MimePart;
  /** Set for a multipart that has a boundary. */
  frame?: Frame;
  /** Still reading its header block: the raw lines of the field being read, and the fields so far. */
  header?: { bytes: number; field: string | null; sawLine: boolean };
}

class LimitReached extends Error {
  constructor(
    readonly kind: LimitKind,
    message: string,
  ) {
    super(message);
  }
}

export class MimeParser {
  private readonly parts: MimePart[] = [];
  private readonly stack: Open[] = [];
  private readonly noted = new Set<Ambiguity>();
  private readonly limits: ParseLimits;
  private readonly reading: Reading;
  private frames = 0;
  private pos = 0;
  private lineStart = 0;
  /** Length of the line break just before lineStart (0 at the start of the message). */
  private eolBefore = 0;
  private prev1 = -1;
  private prev2 = -1;
  /** How the current line is read: null at a line start, 'keep' (collect it) or 'skip'. */
  private mode: 'keep' | 'skip' | null = null;
  private kept: Buffer[] = [];
  private keptBytes = 0;
  /** Bytes past DELIMITER_LINE_KEEP of a kept body line are all blanks so far. */
  private tailBlank = true;
  private lineBreak: '\r\n' | '\n' | null = null;
  private limit: MimeParse['limit'];

  constructor(opts: { limits?: Partial<ParseLimits>; reading?: Reading } = {}) {
    this.limits = { ...DEFAULT_PARSE_LIMITS, ...opts.limits };
    this.reading = opts.reading ?? DEFAULT_READING;
    this.open(null, 0);
  }

  write(chunk: Buffer): void {
    if (this.limit) return;
    try {
      this.consume(chunk);
    } catch (err) {
      if (!(err instanceof LimitReached)) throw err;
      this.limit = { kind: err.kind, detail: err.message };
    }
  }

  end(): MimeParse {
    if (!this.limit) {
      try {
        if (this.mode === 'keep' && this.keptBytes) this.finishLine(this.pos);
        this.closeAllAtEnd();
      } catch (err) {
        if (!(err instanceof LimitReached)) throw err;
        this.limit = { kind: err.kind, detail: err.message };
      }
    }
    if (this.limit) this.closeAllAtEnd();
    return {
      parts: this.parts,
      size: this.pos,
      lineBreak: this.lineBreak ?? '\r\n',
      ambiguities: [...this.noted],
      ...(this.limit ? { limit: this.limit } : {}),
      reading: this.reading,
    };
  }

  // ------------------------------------------------------------------ lines

  private consume(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.mode === null) {
        const top = this.top();
        if (top?.header || chunk[i] === DASH) this.mode = 'keep';
        else if (!this.frames) {
          // A body with no multipart around it: nothing but the end can end it.
          this.advance(chunk, i, n);
          this.mode = chunk[n - 1] === LF ? null : 'skip';
          this.markLineStart();
          return;
        } else this.mode = 'skip';
      }
      if (this.mode === 'skip') {
        // Runs of lines that cannot be delimiters: jump to the next line starting with "-".
        const j = chunk.indexOf(NL_DASH, i);
        if (j >= 0) {
          this.advance(chunk, i, j + 1);
          i = j + 1;
          this.mode = null;
          this.markLineStart();
          continue;
        }
        this.advance(chunk, i, n);
        if (chunk[n - 1] === LF) {
          this.mode = null;
          this.markLineStart();
        }
        return;
      }
      const lf = chunk.indexOf(LF, i);
      const end = lf >= 0 ? lf + 1 : n;
      this.keepPiece(chunk.subarray(i, end));
      this.advance(chunk, i, end);
      i = end;
      if (lf >= 0) {
        this.finishLine(this.pos);
        this.mode = null;
        this.markLineStart();
      }
    }
  }

  private advance(chunk: Buffer, from: number, to: number): void {
    if (to <= from) return;
    if (this.lineBreak === null) {
      const lf = chunk.indexOf(LF, from);
      if (lf >= 0 && lf < to) this.lineBreak = (lf > from ? chunk[lf - 1] : this.prev1) === CR ? '\r\n' : '\n';
    }
    this.prev2 = to - from >= 2 ? chunk[to - 2]! : this.prev1;
    this.prev1 = chunk[to - 1]!;
    this.pos += to - from;
  }

  private markLineStart(): void {
    this.lineStart = this.pos;
    this.eolBefore = this.prev1 === LF ? (this.prev2 === CR ? 2 : 1) : 0;
  }

  private keepPiece(piece: Buffer): void {
    const inHeader = !!this.top()?.header;
    if (inHeader) {
      const h = this.top()!.header!;
      if (h.bytes + this.keptBytes + piece.length > this.limits.maxHeaderBytes) {
        throw new LimitReached('header', `a MIME part header larger than ${this.limits.maxHeaderBytes} bytes`);
      }
    } else if (this.keptBytes + piece.length > DELIMITER_LINE_KEEP) {
      const room = Math.max(0, DELIMITER_LINE_KEEP - this.keptBytes);
      if (room) this.kept.push(piece.subarray(0, room));
      for (let k = room; k < piece.length && this.tailBlank; k++) {
        const c = piece[k]!;
        if (c !== 0x20 && c !== 0x09 && c !== CR && c !== LF) this.tailBlank = false;
      }
      this.keptBytes += piece.length;
      return;
    }
    this.kept.push(piece);
    this.keptBytes += piece.length;
  }

  /** The current line is complete (it ended at `lineEnd`): act on it. */
  private finishLine(lineEnd: number): void {
    const whole = this.kept.length === 1 ? this.kept[0]! : Buffer.concat(this.kept);
    const truncated = this.keptBytes > whole.length;
    const tailBlank = this.tailBlank;
    this.kept = [];
    this.keptBytes = 0;
    this.tailBlank = true;
    let content = whole;
    if (!truncated) {
      let e = content.length;
      if (e && content[e - 1] === LF) e--;
      if (e && content[e - 1] === CR) e--;
      content = content.subarray(0, e);
    }
    if (content.length >= 2 && content[0] === DASH && content[1] === DASH && this.frames && (!truncated || tailBlank)) {
      if (this.delimiter(content, lineEnd)) return;
    }
    const top = this.top();
    if (top?.header) this.headerLine(top, content, lineEnd);
  }

  // ------------------------------------------------------------------ delimiters

  /**
   * Is `content` a delimiter of an open multipart? If so, act on it. When it is one of two
   * (nested multiparts with the same boundary, which real mail has), readers differ: Python's
   * email package gives it to the outer one, MIME::Parser to the inner one; the Reading decides
   * and the ambiguity is reported.
   */
  private delimiter(content: Buffer, lineEnd: number): boolean {
    let found = -1;
    let close = false;
    for (let k = 0; k < this.stack.length; k++) {
      const frame = this.stack[k]!.frame;
      if (!frame || frame.state === 'epilogue') continue;
      const c = matchDelimiter(content, frame.dashBoundary);
      if (c === null) continue;
      if (found >= 0) this.noted.add('shared-boundary');
      if (found < 0 || this.reading.sharedBoundary === 'inner') {
        found = k;
        close = c;
      }
      if (this.reading.sharedBoundary === 'outer' && this.noted.has('shared-boundary')) break;
    }
    if (found < 0) return false;
    this.onDelimiter(found, close, lineEnd);
    return true;
  }

  private onDelimiter(k: number, close: boolean, lineEnd: number): void {
    const end = this.lineStart - this.eolBefore;
    // Everything opened inside the multipart at k ends here.
    let dropped: MimePart | null = null;
    while (this.stack.length - 1 > k) {
      const o = this.stack.pop()!;
      if (o.frame) this.frames--;
      // Two delimiter lines in a row: no part between them.
      if (
        o.header &&
        !o.header.sawLine &&
        o.part.headerStart === this.lineStart &&
        !close &&
        this.stack.length - 1 === k
      )
        dropped = o.part;
      this.closePart(o, end, this.lineStart);
    }
    const m = this.stack[k]!;
    if (dropped) this.dropLast(m.part, dropped);
    if (m.frame!.state === 'preamble') {
      // A close delimiter before any other: no parts (the rest is epilogue), and the preamble
      // keeps its last line break (it is the body of a part-less multipart).
      m.part.preambleEnd = close ? this.lineStart : Math.max(m.part.bodyStart, end);
      if (close) m.part.noParts = true;
    }
    if (close) {
      m.frame!.state = 'epilogue';
      m.part.terminated = true;
      return;
    }
    m.frame!.state = 'parts';
    this.open(m.part, lineEnd);
  }

  private dropLast(parent: MimePart, part: MimePart): void {
    if (this.parts[this.parts.length - 1] !== part) return;
    this.parts.pop();
    parent.children.pop();
  }

  // ------------------------------------------------------------------ header blocks

  private headerLine(o: Open, content: Buffer, lineEnd: number): void {
    const h = o.header!;
    const first = !h.sawLine;
    h.sawLine = true;
    const lineBytes = lineEnd - this.lineStart;
    h.bytes += lineBytes;
    if (content.length === 0) {
      this.flushField(o);
      this.endHeader(o, lineEnd, true);
      return;
    }
    const c0 = content[0]!;
    if (c0 === 0x20 || c0 === 0x09) {
      // Folded: part of the field before it (a fold with nothing before it is dropped).
      if (h.field !== null) h.field += '\n' + content.toString('utf8');
      return;
    }
    const text = content.toString('utf8');
    if (text.startsWith('From ')) {
      // An mbox separator line (first line) or a misplaced one: not a field.
      if (!first) this.noted.add('stray-header-line');
      h.bytes -= lineBytes;
      return;
    }
    if (FIELD_START.test(text)) {
      this.flushField(o);
      h.field = text;
      return;
    }
    this.noted.add('stray-header-line');
    if (this.reading.strayHeaderLine === 'skipped') {
      // A skipped line is not kept, so it does not count towards the header size limit (a
      // base64-encoded attached message read as it is would otherwise be nothing but such lines).
      h.bytes -= lineBytes;
      return;
    }
    // The block ends here and this line is the first of the body: it may be the first delimiter
    // of the multipart whose header block just ended, or begin an embedded message's header block.
    this.flushField(o);
    this.endHeader(o, this.lineStart, false);
    if (
      content.length >= 2 &&
      content[0] === DASH &&
      content[1] === DASH &&
      this.frames &&
      this.delimiter(content, lineEnd)
    )
      return;
    const next = this.top();
    if (next?.header) this.headerLine(next, content, lineEnd);
  }

  private flushField(o: Open): void {
    const h = o.header!;
    if (h.field === null) return;
    o.part.headers.push(headerField(h.field));
    h.field = null;
  }

  private endHeader(o: Open, bodyStart: number, complete: boolean): void {
    const part = o.part;
    part.headerBytes = o.header!.bytes;
    delete o.header;
    part.headerComplete = complete;
    part.bodyStart = bodyStart;
    part.bodyEnd = bodyStart;
    const parentType = part.parent === null ? null : this.parts[part.parent]!.contentType;
    Object.assign(part, partFacts(part.headers, parentType, this.reading, this.noted));
    if (part.kind === 'multipart') {
      if (part.boundary) {
        o.frame = { dashBoundary: Buffer.from('--' + part.boundary, 'utf8'), state: 'preamble' };
        this.frames++;
      } else part.noParts = true;
    } else if (part.kind === 'message') {
      this.open(part, bodyStart);
    }
  }

  // ------------------------------------------------------------------ parts

  private open(parent: MimePart | null, at: number): void {
    const index = this.parts.length;
    if (index >= this.limits.maxParts) throw new LimitReached('parts', `more than ${this.limits.maxParts} MIME parts`);
    const depth = parent ? parent.depth + 1 : 0;
    if (depth > this.limits.maxDepth)
      throw new LimitReached('depth', `MIME nesting deeper than ${this.limits.maxDepth}`);
    let path = '';
    if (parent) {
      if (parent.kind === 'message') path = parent.path;
      else path = parent.path ? `${parent.path}.${parent.children.length + 1}` : `${parent.children.length + 1}`;
    }
    const part: MimePart = {
      index,
      parent: parent ? parent.index : null,
      children: [],
      depth,
      path,
      kind: 'leaf',
      contentType: 'text/plain',
      params: {},
      charset: '',
      encoding: '',
      disposition: '',
      filename: null,
      names: [],
      flowed: false,
      delsp: false,
      headerStart: at,
      headerBytes: 0,
      bodyStart: at,
      bodyEnd: at,
      headerComplete: false,
      delimiterAtEnd: false,
      terminated: false,
      noParts: false,
      preambleEnd: at,
      headers: [],
    };
    this.parts.push(part);
    parent?.children.push(index);
    this.stack.push({ part, header: { bytes: 0, field: null, sawLine: false } });
  }

  /** The part ends where the line break in front of a delimiter begins (never before its body starts). */
  private closePart(o: Open, end: number, wholeEnd = end): void {
    const part = o.part;
    if (o.header) {
      this.flushField(o);
      this.endHeader(o, Math.max(part.headerStart, end), false);
      // endHeader may have opened an embedded message's root: it ends here too.
      const child = this.stack[this.stack.length - 1];
      if (child && child !== o && child.part.parent === part.index) {
        this.stack.pop();
        this.closePart(child, end, wholeEnd);
      }
    }
    part.bodyEnd = Math.max(part.bodyStart, end);
    if (o.frame?.state === 'preamble' || (part.kind === 'multipart' && !o.frame)) {
      // No delimiter came: the body is all preamble, up to what ended it (its line break included).
      part.noParts = true;
      part.preambleEnd = Math.max(part.bodyStart, wholeEnd);
    } else if (!o.frame) part.preambleEnd = part.bodyEnd;
    part.delimiterAtEnd = part.bodyEnd === this.lineStart && this.pos > this.lineStart;
  }

  /** The end of the message closes everything; inside a multipart the last line break is not content. */
  private closeAllAtEnd(): void {
    while (this.stack.length) {
      const o = this.stack.pop()!;
      if (o.frame) this.frames--;
      const insideMultipart = this.stack.some((s) => s.frame);
      const end = insideMultipart ? this.pos - this.eolAtEnd() : this.pos;
      this.closePart(o, end, this.pos);
      o.part.delimiterAtEnd = false;
    }
  }

  private eolAtEnd(): number {
    if (this.prev1 !== LF) return 0;
    return this.prev2 === CR ? 2 : 1;
  }

  private top(): Open | undefined {
    return this.stack[this.stack.length - 1];
  }
}

/**
 * null when `content` is not a delimiter line of the boundary, else whether it is the close
 * delimiter. After "--boundary" (and "--" for the close delimiter) only blanks may follow.
 */
function matchDelimiter(content: Buffer, dashBoundary: Buffer): boolean | null {
  const b = dashBoundary.length;
  if (content.length < b || content.compare(dashBoundary, 0, b, 0, b) !== 0) return null;
  let i = b;
  let close = false;
  if (content[i] === DASH && content[i + 1] === DASH) {
    close = true;
    i += 2;
  }
  for (; i < content.length; i++) {
    const c = content[i];
    if (c !== 0x20 && c !== 0x09 && c !== CR && c !== LF) return null;
  }
  return close;
}

/** Parses a message held in memory. */
export function parseMessage(
  message: Buffer,
  opts: { limits?: Partial<ParseLimits>; reading?: Reading } = {},
): MimeParse {
  const p = new MimeParser(opts);
  p.write(message);
  return p.end();
}
