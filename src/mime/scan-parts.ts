// Walks a message's MIME tree as it streams by (mailsplit's Splitter) and hands every leaf part's
// transfer-decoded bytes to a visitor, under limits on nesting depth, part count and part header
// size, so that a MIME bomb is refused instead of parsed forever. Nothing here buffers the
// message; what a visitor keeps is its own business.
import { addAbortSignal, pipeline, type Readable } from 'node:stream';
import { Splitter, type MimeNode, type SplitterChunk } from 'mailsplit';
import { WholeLines } from './line-guard.js';
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
  const splitter = new Splitter({
    maxHeadSize: limits.maxHeaderBytes,
    // Our own count trips first; this is the backstop inside the splitter.
    maxChildNodes: limits.maxParts + 1,
    // Also look into forwarded messages (message/rfc822) attached as files.
    defaultInlineEmbedded: true,
  });
  addAbortSignal(signal, splitter);
  // Whole lines only: mailsplit's Splitter can lose bytes when a chunk ends inside a line.
  const objects = pipeline(source, new WholeLines(), splitter, () => {
    /* errors surface through the iteration below */
  });

  let parts = 0;
  let leaf: { node: MimeNode; decoder: TransferDecoder; sink: PartSink; measuring: boolean } | null = null;
  const closeLeaf = () => {
    if (!leaf) return;
    if (leaf.measuring) {
      const rest = leaf.decoder.measureEnd();
      if (rest) leaf.sink.skip!(rest);
    } else {
      const rest = leaf.decoder.end();
      if (rest.length) leaf.sink.write(rest);
    }
    leaf.sink.end();
    leaf = null;
  };

  try {
    for await (const chunk of objects as AsyncIterable<SplitterChunk>) {
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
          if (sink) leaf = { node, decoder: transferDecoder(node.encoding), sink, measuring: false };
        }
      } else if (chunk.type === 'body' && leaf && chunk.node === leaf.node) {
        // Decoding is most of the cost of a big attachment: skip it when only the size counts.
        if (!leaf.measuring && leaf.sink.wantsContent === false && leaf.sink.skip) leaf.measuring = true;
        if (leaf.measuring) {
          const size = leaf.decoder.measure(chunk.value);
          if (size) leaf.sink.skip!(size);
        } else {
          const decoded = leaf.decoder.write(chunk.value);
          if (decoded.length) leaf.sink.write(decoded);
        }
      }
      if (visitor.done) throw new Stop();
    }
    closeLeaf();
    return { status: 'complete', parts };
  } catch (err) {
    // Stop reading the rest of the message.
    objects.destroy();
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
