// Hands every leaf part of a message (as the shared parse, parse/, found them) to a visitor with
// its transfer-decoded bytes, in one pass over the message, under limits on nesting depth, part
// count and part header size, so that a MIME bomb is refused instead of scanned. Nothing here
// buffers the message; what a visitor keeps is its own business. A multipart without any parts
// is handed over as text: a client may show its body, so it is read.
//
// An attached message sent base64- or quoted-printable-encoded (invalid for message/rfc822, but
// some clients decode it and show its parts) is read both ways: as its bytes are, like Python's
// email package, and decoded, parsed and walked as a message of its own. The decoded copy is the
// one thing held in memory here, up to ENCODED_MESSAGE_MAX_BYTES.
import type LibMime from 'libmime';
import { nextReadings, parseStream } from './parse/shared.js';
import { readRanges, type Pieces, type RangeReader } from './parse/ranges.js';
import { partLabel, type MimeParse, type MimePart } from './parse/types.js';
import { transferDecoder, type TransferDecoder } from './transfer-decode.js';
import { loadOnFirstUse } from '../primitives/first-use.js';

// Loaded on first use, not by the commands that only read the policy (start-up time).
const libmime = loadOnFirstUse<typeof LibMime>(import.meta.url, 'libmime');

export interface MimeLimits {
  /** Deepest nesting of multiparts and embedded messages; the top-level message is depth 0. */
  maxDepth: number;
  /** Most MIME parts (every node, containers included). */
  maxParts: number;
  /** Largest header block of a single part, bytes. */
  maxHeaderBytes: number;
}

export interface DecodedHeader {
  /** As written in the message. */
  name: string;
  /** Unfolded, RFC 2047 encoded words decoded. */
  value: string;
}

export interface PartInfo {
  /** IMAP-style part number: "1", "2.1"; "TEXT" for a single-part message body. */
  id: string;
  depth: number;
  /** Lower-case media type; text/plain when the part has none. */
  contentType: string;
  charset?: string;
  disposition?: string;
  /** Every file name the part declares, decoded: Content-Disposition filename and Content-Type name. */
  names: string[];
}

/** Receives a leaf part's decoded bytes. */
export interface PartSink {
  write(decoded: Buffer): void;
  end(): void;
  /**
   * Checked before every piece of the part: false means the sink needs only the decoded size
   * from now on (a non-zip attachment, a text past what is searched), so the walker stops
   * decoding and calls skip(bytes) instead of write(). Once false, it stays false for the part.
   */
  readonly wantsContent?: boolean;
  skip?(decodedBytes: number): void;
  /**
   * Checked with wantsContent: false as well means not even the size matters any more (a
   * non-zip attachment when no attachment size limit applies), so the rest of the part is
   * neither decoded nor measured, and skip() is not called for it. Once false, it stays false.
   */
  readonly wantsSize?: boolean;
}

export interface PartVisitor {
  /** The top-level header block. */
  onHeaders?(headers: DecodedHeader[]): void;
  /** A leaf part begins. Return a sink for its content, or null to skip it. */
  onPart(part: PartInfo): PartSink | null;
  /** Checked after every event: true ends the walk early (e.g. the verdict is already final). */
  readonly done?: boolean;
}

export type LimitKind = 'depth' | 'parts' | 'header' | 'encoded-message';

/** Largest decoded attached message that was sent transfer-encoded (see above), bytes. */
export const ENCODED_MESSAGE_MAX_BYTES = 16 * 1024 * 1024;

const DECODED_MESSAGE_ENCODINGS = new Set(['base64', 'quoted-printable']);

export type WalkResult =
  | { status: 'complete'; parts: number }
  | { status: 'stopped'; parts: number }
  | { status: 'limit'; limit: LimitKind; parts: number; detail: string };

/** Encoded bytes of a body piece decoded before its sink is asked again whether it wants more. */
const PROBE_BYTES = 4096;

/**
 * Walks the parse of a message. `open` gives the whole message afresh (ranges.ts: its pieces in
 * memory, or a stream); `parse` is its shared parse (parse/shared.ts), or it is parsed here.
 */
export async function walkMime(
  open: () => Pieces,
  limits: MimeLimits,
  visitor: PartVisitor,
  signal: AbortSignal,
  parse?: MimeParse,
): Promise<WalkResult> {
  const tree = parse ?? (await parseStream(open(), signal));
  const over = overLimit(tree, limits);
  if (over) return { status: 'limit', ...over };
  const root = tree.parts[0];
  if (root) visitor.onHeaders?.(root.headers.map((h) => ({ name: h.name, value: decodeWords(h.value) })));
  if (visitor.done) return { status: 'stopped', parts: tree.parts.length };

  const readers: RangeReader[] = [];
  for (const part of tree.parts) {
    const asText = part.kind === 'multipart' && part.noParts;
    if (part.kind !== 'leaf' && !asText) continue;
    readers.push(leafReader(part, asText, visitor));
  }
  let stopped = false;
  await readRanges(open(), readers, () => {
    if (signal.aborted) throw signal.reason;
    return (stopped = visitor.done === true);
  });
  if (signal.aborted) throw signal.reason;
  if (stopped) return { status: 'stopped', parts: tree.parts.length };
  return walkEncodedMessages(open, tree, limits, visitor, signal);
}

/** Transfer-encoded attached messages, decoded and walked as messages (see the top of the file). */
async function walkEncodedMessages(
  open: () => Pieces,
  tree: MimeParse,
  limits: MimeLimits,
  visitor: PartVisitor,
  signal: AbortSignal,
): Promise<WalkResult> {
  let parts = tree.parts.length;
  const encoded = tree.parts.filter((p) => p.kind === 'message' && DECODED_MESSAGE_ENCODINGS.has(p.encoding));
  if (!encoded.length) return { status: 'complete', parts };
  // Nested encoded messages lie inside their parent's range: one pass each keeps ranges apart.
  for (const part of encoded) {
    const decoded = await decodeRange(open, part, signal);
    if (decoded === null) {
      return {
        status: 'limit',
        limit: 'encoded-message',
        parts,
        detail: `an encoded attached message larger than ${ENCODED_MESSAGE_MAX_BYTES} bytes decoded`,
      };
    }
    const inner: MimeLimits = {
      ...limits,
      maxDepth: limits.maxDepth - part.depth - 1,
      maxParts: limits.maxParts - parts,
    };
    const nested = prefixed(visitor, part);
    const first = await parseStream([decoded], signal);
    const readings = [first];
    for (let todo = nextReadings(readings); todo.length; todo = nextReadings(readings)) {
      for (const r of todo) readings.push(await parseStream([decoded], signal, r));
    }
    for (const reading of readings) {
      const result = await walkMime(() => [decoded], inner, nested, signal, reading);
      if (result.status === 'limit') return { ...result, parts: parts + result.parts };
      if (result.status === 'stopped') return { status: 'stopped', parts: parts + result.parts };
    }
    parts += first.parts.length;
  }
  return { status: 'complete', parts };
}

/** The transfer-decoded body of `part`, or null past ENCODED_MESSAGE_MAX_BYTES. */
async function decodeRange(open: () => Pieces, part: MimePart, signal: AbortSignal): Promise<Buffer | null> {
  const decoder = transferDecoder(part.encoding);
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  const keep = (b: Buffer) => {
    size += b.length;
    if (size > ENCODED_MESSAGE_MAX_BYTES) over = true;
    else if (b.length) chunks.push(b);
  };
  await readRanges(
    open(),
    [
      {
        start: part.bodyStart,
        end: part.bodyEnd,
        data: (v) => {
          keep(decoder.write(v));
          return !over;
        },
        done: () => {
          if (!over) keep(decoder.end());
        },
      },
    ],
    () => {
      if (signal.aborted) throw signal.reason;
      return over;
    },
  );
  if (signal.aborted) throw signal.reason;
  return over ? null : Buffer.concat(chunks, size);
}

/** The visitor as the parts of a decoded attached message reach it: numbered and placed under it. */
function prefixed(visitor: PartVisitor, message: MimePart): PartVisitor {
  const base = partLabel(message);
  return {
    onPart: (info) =>
      visitor.onPart({
        ...info,
        id: info.id === 'TEXT' ? base : `${base}.${info.id}`,
        depth: info.depth + message.depth + 1,
      }),
    get done() {
      return visitor.done;
    },
  };
}

function overLimit(tree: MimeParse, limits: MimeLimits): { limit: LimitKind; parts: number; detail: string } | null {
  const parts = tree.parts.length;
  if (tree.limit) return { limit: tree.limit.kind, parts, detail: tree.limit.detail };
  if (parts > limits.maxParts) return { limit: 'parts', parts, detail: `more than ${limits.maxParts} MIME parts` };
  for (const p of tree.parts) {
    if (p.depth > limits.maxDepth)
      return { limit: 'depth', parts, detail: `MIME nesting deeper than ${limits.maxDepth}` };
    if (p.headerBytes > limits.maxHeaderBytes)
      return { limit: 'header', parts, detail: `a MIME part header larger than ${limits.maxHeaderBytes} bytes` };
  }
  return null;
}

/** What the sink of a leaf still needs: its decoded bytes, only their count, or nothing. */
type Need = 'content' | 'size' | 'nothing';

function leafReader(part: MimePart, asText: boolean, visitor: PartVisitor): RangeReader {
  let sink: PartSink | null | undefined;
  let decoder: TransferDecoder;
  let need: Need = 'content';
  const feed = (bytes: Buffer) => {
    // Decoding is most of the cost of a big attachment: skip it when only the size counts, and
    // measuring is still a pass over every byte: skip that too when not even the size counts.
    if (need === 'content' && sink!.wantsContent === false && sink!.skip) need = 'size';
    if (need === 'size' && sink!.wantsSize === false) need = 'nothing';
    if (need === 'size') {
      const size = decoder.measure(bytes);
      if (size) sink!.skip!(size);
    } else if (need === 'content') {
      const decoded = decoder.write(bytes);
      if (decoded.length) sink!.write(decoded);
    }
  };
  const begin = () => {
    if (sink !== undefined) return;
    sink = visitor.onPart(partInfo(part, asText));
    decoder = transferDecoder(part.encoding);
  };
  return {
    start: part.bodyStart,
    end: part.bodyEnd,
    data(v) {
      begin();
      if (!sink) return false;
      // A sink often knows from the first bytes that it needs only the size (a part that is not
      // a zip): decode a small head first and ask again before the rest. The decoders carry
      // state across pieces, so what a sink sees does not depend on where the pieces are cut.
      if (v.length > PROBE_BYTES && need === 'content' && sink.skip) {
        feed(v.subarray(0, PROBE_BYTES));
        feed(v.subarray(PROBE_BYTES));
      } else feed(v);
      return need !== 'nothing';
    },
    done() {
      begin();
      if (!sink) return;
      if (need === 'content') {
        const rest = decoder.end();
        if (rest.length) sink.write(rest);
      } else if (need === 'size') {
        const rest = decoder.measureEnd();
        if (rest) sink.skip!(rest);
      }
      sink.end();
    },
  };
}

function partInfo(part: MimePart, asText: boolean): PartInfo {
  const info: PartInfo = {
    id: partLabel(part),
    depth: part.depth,
    contentType: asText ? 'text/plain' : part.contentType,
    names: part.names,
  };
  if (part.charset) info.charset = part.charset;
  if (part.disposition) info.disposition = part.disposition;
  return info;
}

function decodeWords(value: string): string {
  try {
    return libmime().decodeWords(value);
  } catch {
    // An unknown charset in an encoded word: keep it as written.
    return value;
  }
}
