// Walks a message's MIME tree as it streams by (mailsplit's Splitter) and hands every leaf part's
// transfer-decoded bytes to a visitor, under limits on nesting depth, part count and part header
// size, so that a MIME bomb is refused instead of parsed forever. Nothing here buffers the
// message; what a visitor keeps is its own business.
import { addAbortSignal, type Readable } from 'node:stream';
import type { MimeNode, SplitterChunk } from 'mailsplit';
import { asBuffer, LineSplitter } from './sync-splitter.js';
import { transferDecoder, type TransferDecoder } from './transfer-decode.js';

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

export type LimitKind = 'depth' | 'parts' | 'header';

export type WalkResult =
  | { status: 'complete'; parts: number }
  | { status: 'stopped'; parts: number }
  | { status: 'limit'; limit: LimitKind; parts: number; detail: string };

const MAILSPLIT_LIMIT = 'EMAXLEN';
/** Encoded bytes of a body piece decoded before its sink is asked again whether it wants more. */
const PROBE_BYTES = 4096;

class LimitExceeded extends Error {
  constructor(
    readonly limit: LimitKind,
    message: string,
  ) {
    super(message);
  }
}

class Stop extends Error {}

export async function walkMime(source: Readable, limits: MimeLimits, visitor: PartVisitor, signal: AbortSignal): Promise<WalkResult> {
  // Whole lines only (mailsplit's Splitter can lose bytes when a chunk ends inside a line),
  // split synchronously (sync-splitter.ts).
  const splitter = new LineSplitter({
    maxHeadSize: limits.maxHeaderBytes,
    // Our own count trips first; this is the backstop inside the splitter.
    maxChildNodes: limits.maxParts + 1,
    // Also look into forwarded messages (message/rfc822) attached as files.
    defaultInlineEmbedded: true,
  });

  let parts = 0;
  /** What the sink of the current leaf still needs: its decoded bytes, only their count, or nothing. */
  type Need = 'content' | 'size' | 'nothing';
  let leaf: { node: MimeNode; decoder: TransferDecoder; sink: PartSink; need: Need } | null = null;
  const closeLeaf = () => {
    if (!leaf) return;
    if (leaf.need === 'content') {
      const rest = leaf.decoder.end();
      if (rest.length) leaf.sink.write(rest);
    } else if (leaf.need === 'size') {
      const rest = leaf.decoder.measureEnd();
      if (rest) leaf.sink.skip!(rest);
    }
    leaf.sink.end();
    leaf = null;
  };
  const feed = (part: NonNullable<typeof leaf>, bytes: Buffer) => {
    // Decoding is most of the cost of a big attachment: skip it when only the size counts, and
    // measuring is still a pass over every byte: skip that too when not even the size counts.
    if (part.need === 'content' && part.sink.wantsContent === false && part.sink.skip) part.need = 'size';
    if (part.need === 'size' && part.sink.wantsSize === false) part.need = 'nothing';
    if (part.need === 'size') {
      const size = part.decoder.measure(bytes);
      if (size) part.sink.skip!(size);
    } else if (part.need === 'content') {
      const decoded = part.decoder.write(bytes);
      if (decoded.length) part.sink.write(decoded);
    }
  };
  const onChunk = (chunk: SplitterChunk) => {
    if (chunk.type === 'node') {
      closeLeaf();
      const node = chunk as MimeNode;
      parts++;
      if (parts > limits.maxParts) throw new LimitExceeded('parts', `more than ${limits.maxParts} MIME parts`);
      const depth = depthOf(node);
      if (depth > limits.maxDepth) throw new LimitExceeded('depth', `MIME nesting deeper than ${limits.maxDepth}`);
      if (node.root) visitor.onHeaders?.(decodeHeaders(node));
      if (!node.multipart && !node.messageNode) {
        const sink = visitor.onPart(partInfo(node, depth));
        if (sink) leaf = { node, decoder: transferDecoder(node.encoding), sink, need: 'content' };
      }
    } else if (chunk.type === 'body' && leaf && chunk.node === leaf.node) {
      // A sink often knows from the first bytes that it needs only the size (a part that is not
      // a zip): decode a small head first and ask again before the rest, which with whole-line
      // splitting is often the whole part. The decoders carry state across pieces, so the bytes
      // and sizes a sink sees are the same however the body is cut.
      const v = chunk.value;
      if (v.length > PROBE_BYTES && leaf.need === 'content' && leaf.sink.skip) {
        feed(leaf, v.subarray(0, PROBE_BYTES));
        feed(leaf, v.subarray(PROBE_BYTES));
      } else feed(leaf, v);
    }
    if (visitor.done) throw new Stop();
  };

  try {
    addAbortSignal(signal, source);
    // Leaving the loop early (a limit, a final verdict) stops reading the rest of the message.
    for await (const chunk of source as AsyncIterable<Buffer | string>) splitter.write(asBuffer(chunk), onChunk);
    splitter.end(onChunk);
    closeLeaf();
    return { status: 'complete', parts };
  } catch (err) {
    if (err instanceof Stop) {
      closeLeaf();
      return { status: 'stopped', parts };
    }
    if (err instanceof LimitExceeded) return { status: 'limit', limit: err.limit, parts, detail: err.message };
    if ((err as NodeJS.ErrnoException).code === MAILSPLIT_LIMIT) {
      const header = /header/i.test((err as Error).message);
      return header
        ? { status: 'limit', limit: 'header', parts, detail: `a MIME part header larger than ${limits.maxHeaderBytes} bytes` }
        : { status: 'limit', limit: 'parts', parts, detail: `more than ${limits.maxParts} MIME parts` };
    }
    throw err;
  }
}

/** Containers above this node: every multipart and every embedded message counts one level. */
function depthOf(node: MimeNode): number {
  let depth = 0;
  for (let p = node.parentNode; p; p = p.parentNode) depth++;
  return depth;
}

function partInfo(node: MimeNode, depth: number): PartInfo {
  const info: PartInfo = {
    id: (node.partNr || ['TEXT']).join('.'),
    depth,
    contentType: node.contentType || 'text/plain',
    names: fileNames(node),
  };
  if (node.charset) info.charset = node.charset;
  if (node.disposition) info.disposition = node.disposition;
  return info;
}

/** Both declared names: a mail client may show one and save under the other. */
function fileNames(node: MimeNode): string[] {
  const names = new Set<string>();
  if (node.filename) names.add(node.filename);
  const raw = [
    node.libmime.parseHeaderValue(node.headers.getFirst('Content-Disposition')).params.filename,
    node.libmime.parseHeaderValue(node.headers.getFirst('Content-Type')).params.name,
  ];
  for (const value of raw) {
    if (!value) continue;
    names.add(decodeWords(node, value));
  }
  return [...names];
}

function decodeWords(node: MimeNode, value: string): string {
  try {
    return node.libmime.decodeWords(value);
  } catch {
    // An unknown charset in an encoded word: keep it as written.
    return value;
  }
}

function decodeHeaders(node: MimeNode): DecodedHeader[] {
  return node.headers.getList().map(({ line }) => {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : line.trim();
    const value = colon > 0 ? line.slice(colon + 1).replace(/\r?\n[ \t]+/g, ' ').trim() : '';
    return { name, value: decodeWords(node, value) };
  });
}
