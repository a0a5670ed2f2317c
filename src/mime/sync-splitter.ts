// A synchronous front end for mailsplit's MIME parser. The stock Splitter is a stream that
// yields to the event loop after every line; for a 5 KB letter that is about a hundred turns of
// the loop per pass, and the disclaimer and the content rule each paid it. Here the message is
// cut into lines with Buffer.indexOf and each line goes straight to the Splitter's own line
// parser (processLine: boundaries, header blocks, MimeNode, the part and header limits), so the
// MIME structure is the parser's and nothing of it is decided here.
//
// What this file decides is only how the parser's per-line results become chunks:
// - consecutive lines of the same kind (body or data) and node are joined into one chunk, except
//   a delimiter that starts a new part, which the parser marks to be handed on by itself;
// - the line break before a delimiter belongs to the delimiter (RFC 2046 5.1.1), so a body inside
//   a multipart never ends with it: it is held back and goes in front of whatever comes next (the
//   delimiter line, or more of the same body when that was not the end);
// - everything a write brought is handed on before write returns (bar that held-back line break),
//   so a large part is never collected whole.
// The joined bytes of all chunks are exactly the input. test/unit/sync-splitter.test.ts checks
// the result against the stock Splitter: the same nodes, and the same bytes per node and kind.
import { Splitter, type MimeNode, type SplitterChunk, type SplitterOptions } from 'mailsplit';
import { firstLongLine, LineTooLongError } from './line-guard.js';

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

/** What the parser reports for one line; a falsy value when the line only fed a header block. */
type LineResult = SplitterChunk | false | undefined;
type LineCallback = (err: Error | null, data?: LineResult, flush?: boolean) => void;

/** The part of mailsplit's Splitter this file drives (mailsplit ships no typings for it). */
interface LineParser {
  processLine(line: Buffer | false, final: boolean, next: LineCallback): void;
  push(chunk: unknown): boolean;
  /** The node being parsed, and whether its header block is over (PARSER_IN_BODY). */
  node: MimeNode;
  state: number;
}
/** mailsplit's value of `state` once a node's header block has ended (lib/message-splitter.js). */
const PARSER_IN_BODY = 0x02;
/** A delimiter line starts with "--", after at most two line-break bytes (how the parser checks). */
const DASHES = Buffer.from('--');
const MAX_DASHES_OFFSET = 2;

/** Lines of one kind and node, not yet handed on. */
interface Run {
  type: 'body' | 'data';
  node: MimeNode;
  lines: Buffer[];
}

export class LineSplitter {
  private readonly parser: LineParser;
  /** Where the parser's own pushes (a node closed by a delimiter) and our chunks go, in order. */
  private emit: (c: SplitterChunk) => void = () => undefined;
  private run: Run | null = null;
  /** The unfinished last line of the input so far, in pieces. */
  private partial: Buffer[] = [];
  private partialBytes = 0;

  constructor(
    options: SplitterOptions,
    private readonly maxLineLength = Number.POSITIVE_INFINITY,
  ) {
    this.parser = new Splitter(options) as unknown as LineParser;
    // The parser pushes some nodes itself; they must come out in order with everything else.
    this.parser.push = (chunk) => {
      if (chunk !== null) this.take(chunk as SplitterChunk, false);
      return true;
    };
  }

  /** Parses `chunk`, handing every finished chunk to `emit` in order; throws a limit or parse error. */
  write(chunk: Buffer, emit: (c: SplitterChunk) => void): void {
    this.emit = emit;
    const tooLong = firstLongLine(chunk, this.partialBytes, this.maxLineLength);
    if (tooLong) throw tooLong;
    const wholeEnd = chunk.lastIndexOf(LF) + 1;
    let start = 0;
    while (start < wholeEnd) {
      if (!this.partialBytes) {
        // Inside the body of a leaf part, a line without "--" at its start can only be more of
        // that body: hand those on in one piece instead of line by line.
        const plain = this.leafBodyLinesEnd(chunk, start, wholeEnd);
        if (plain > start) {
          this.take({ type: 'body', node: this.parser.node, value: chunk.subarray(start, plain) } as SplitterChunk, false);
          start = plain;
          continue;
        }
      }
      const lf = chunk.indexOf(LF, start);
      let line = chunk.subarray(start, lf + 1);
      if (this.partialBytes) {
        line = Buffer.concat([...this.partial, line], this.partialBytes + line.length);
        this.partial = [];
        this.partialBytes = 0;
      }
      this.parseLine(line, false);
      start = lf + 1;
    }
    if (start < chunk.length) {
      this.partial.push(chunk.subarray(start));
      this.partialBytes += chunk.length - start;
    }
    this.handOnRun(true);
  }

  /** The end of the message: the unfinished last line (or nothing) as the parser's final line. */
  end(emit: (c: SplitterChunk) => void): void {
    this.emit = emit;
    const last = this.partialBytes ? Buffer.concat(this.partial, this.partialBytes) : false;
    this.partial = [];
    this.partialBytes = 0;
    this.parseLine(last, true);
    this.handOnRun(false);
  }

  /**
   * Where the run of whole lines from `start` (before `end`) that cannot be delimiters ends,
   * when the parser is in the body of a part that is not a multipart; else `start`.
   */
  private leafBodyLinesEnd(chunk: Buffer, start: number, end: number): number {
    const p = this.parser;
    if (p.state !== PARSER_IN_BODY || p.node.multipart) return start;
    for (let from = start; ; ) {
      const dashes = chunk.indexOf(DASHES, from);
      if (dashes < 0 || dashes >= end) return end;
      // (lastIndexOf with a negative offset would count from the end: the chunk's start is a line start)
      const lineStart = dashes > start ? Math.max(chunk.lastIndexOf(LF, dashes - 1) + 1, start) : start;
      if (dashes - lineStart <= MAX_DASHES_OFFSET) return lineStart;
      from = chunk.indexOf(LF, dashes) + 1;
      if (from === 0 || from >= end) return end;
    }
  }

  private parseLine(line: Buffer | false, final: boolean): void {
    let failure: Error | null = null;
    let result: LineResult;
    let alone = false;
    this.parser.processLine(line, final, (err, data, flush) => {
      failure = err;
      result = data;
      alone = flush === true;
    });
    if (failure) throw failure;
    if (result) this.take(result, alone);
  }

  /** One result of the parser; `alone`: a delimiter that opens a part, never joined with others. */
  private take(item: SplitterChunk, alone: boolean): void {
    if (item.type === 'node') {
      this.closeRun(null);
      this.handOn(item);
      return;
    }
    const value = item.value ?? EMPTY;
    const run = this.run;
    // Joined only within one node, so that which node a delimiter or epilogue line is given to
    // never depends on where the input was cut.
    if (!alone && run && run.type === item.type && run.node === item.node) {
      run.lines.push(value);
      return;
    }
    const carried = this.closeRun(item);
    const lines = carried ? [carried, value] : [value];
    if (alone) {
      for (const v of views(lines)) this.handOn({ ...item, value: v } as SplitterChunk);
      return;
    }
    this.run = { type: item.type as Run['type'], node: item.node as MimeNode, lines }; // the parser gives body and data their node
  }

  /**
   * Hands on the current run before `next` (null: a node). A body inside a multipart gives up
   * its last line break, which is returned to go in front of `next`.
   */
  private closeRun(next: SplitterChunk | null): Buffer | null {
    const run = this.run;
    this.run = null;
    return run ? this.handOnLines(run, next !== null && next.type !== 'node') : null;
  }

  /**
   * Hands on what the run holds. With `holdBreak`, a body inside a multipart keeps its last line
   * break back: the next line decides whether it ends the body.
   */
  private handOnRun(holdBreak: boolean): void {
    const run = this.run;
    if (!run) return;
    const held = this.handOnLines(run, holdBreak);
    this.run = held ? { ...run, lines: [held] } : null;
  }

  /**
   * Hands on a run's lines, as few chunks as there are stretches of contiguous input (no copies).
   * With `cutBreak`, a body inside a multipart keeps its last line break, which is returned.
   */
  private handOnLines(run: Run, cutBreak: boolean): Buffer | null {
    const parts = views(run.lines);
    let cut: Buffer | null = null;
    if (cutBreak && run.type === 'body' && run.node.parentNode) {
      const last = parts.pop()!;
      const keep = last.length - lineBreakLength(last);
      if (keep > 0) parts.push(last.subarray(0, keep));
      if (keep < last.length) cut = last.subarray(keep);
    }
    for (const v of parts) this.handOn({ type: run.type, node: run.node, value: v } as SplitterChunk);
    return cut;
  }

  private handOn(chunk: SplitterChunk): void {
    this.emit(chunk);
  }
}

/**
 * The lines as few buffers as possible without copying: lines that follow each other in one
 * input chunk become one view of it (a body is mostly such lines). Empty lines are dropped.
 */
function views(lines: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let first: Buffer | null = null;
  let end = 0;
  for (const l of lines) {
    if (!l.length) continue;
    if (first && l.buffer === first.buffer && l.byteOffset === end) {
      end += l.length;
      continue;
    }
    if (first) out.push(Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset));
    first = l;
    end = l.byteOffset + l.length;
  }
  if (first) out.push(Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset));
  return out;
}

/** Bytes of the line break at the end of `b`: CRLF 2, LF or CR 1, none 0. */
function lineBreakLength(b: Buffer): number {
  const last = b[b.length - 1];
  if (last === LF) return b.length > 1 && b[b.length - 2] === CR ? 2 : 1;
  return last === CR ? 1 : 0;
}

/** A chunk of a message stream as bytes: a string chunk is UTF-8, as a byte stream would take it. */
export function asBuffer(chunk: Buffer | string): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
}

export { LineTooLongError };
export type { MimeNode };
