// One streaming pass over a message that records its MIME tree: every node's type, disposition,
// charset and transfer encoding, a hash of its header block and (for leaves) of its raw body,
// a hash of everything between the parts (preamble, delimiters, epilogue), and the decoded
// content of the inline text parts, and the layout (which stretch of bytes is which). The
// disclaimer uses it twice: to plan the rewrite, and (recorded from the rewrite's own output,
// see TreeRecorder) to check the rewritten message against the original (same tree, same bytes
// where untouched).
// Attached messages (message/rfc822) are leaves: what is inside them is never looked at.
import { createHash, type Hash } from 'node:crypto';
import { addAbortSignal, pipeline, type Readable } from 'node:stream';
import { Splitter, type MimeNode, type SplitterChunk, type SplitterOptions } from 'mailsplit';
import { LINE_TOO_LONG, WholeLines } from './line-guard.js';
import { transferDecoder, type TransferDecoder } from './transfer-decode.js';

export interface TreeNode {
  /** Position in document order, 0 = the message itself. */
  ordinal: number;
  parent: number | null;
  children: number[];
  /** IMAP-style part number ("1.2"; "TEXT" for the message itself). */
  partNr: string;
  contentType: string;
  /** Multipart subtype ("alternative") or null for a leaf. */
  multipart: string | null;
  disposition: string;
  filename: string;
  encoding: string;
  /** As declared, or "" when the part has none. */
  charset: string;
  flowed: boolean;
  headerHash: string;
  /** sha256 of the raw (still transfer-encoded) body of a leaf. */
  bodyHash: string;
  bodyBytes: number;
  /** Transfer-decoded content of an inline text leaf, up to the scan's keepText bytes. */
  text?: Buffer;
  textTruncated?: boolean;
  /** A multipart's delimiter (without the leading "--"), as the Splitter matches it. */
  boundary?: string;
}

/**
 * A stretch of the message in document order: a part's header block, its body, or bytes
 * between parts (preamble, delimiters, epilogue; ordinal -1). Consecutive chunks of the same
 * stretch are one run, so two passes over the same bytes give the same runs however the
 * input was chunked.
 */
export interface LayoutRun {
  kind: 'head' | 'body' | 'between';
  ordinal: number;
  bytes: number;
}

export interface MimeTree {
  nodes: TreeNode[];
  /** sha256 of everything that is not a part header or a leaf body, in order. */
  structureHash: string;
  layout: LayoutRun[];
}

export interface TreeScanOptions {
  maxParts: number;
  maxHeaderBytes: number;
  /** Refuse lines longer than this before they reach the Splitter (see line-guard.ts); default: no limit. */
  maxLineLength?: number;
  /** Decoded bytes kept per inline text leaf. */
  keepText: number;
  /** Decoded bytes kept for all leaves together; leaves past it keep nothing (textTruncated). */
  keepTotal: number;
  /** Keep the text of these leaves (by ordinal) only; default: every inline text leaf. */
  keepOnly?: ReadonlySet<number>;
}

export type TreeLimit = 'line' | 'parts' | 'header';

export class TreeLimitError extends Error {
  constructor(
    readonly limit: TreeLimit,
    message: string,
  ) {
    super(message);
  }
}

const MAILSPLIT_LIMIT = 'EMAXLEN';
const TEXT_TYPES = new Set(['text/plain', 'text/html']);

/** The Splitter settings every pass must share, or the trees would not be comparable. */
export function splitterOptions(opts: Pick<TreeScanOptions, 'maxParts' | 'maxHeaderBytes'>): SplitterOptions {
  // ignoreEmbedded: an attached message is one opaque leaf; its own parts are not ours to change.
  return { ignoreEmbedded: true, maxChildNodes: opts.maxParts, maxHeadSize: opts.maxHeaderBytes };
}

/** A leaf a reader sees as message text (not an attachment). */
export function isInlineText(n: Pick<TreeNode, 'contentType' | 'multipart' | 'disposition' | 'filename'>): boolean {
  return !n.multipart && TEXT_TYPES.has(n.contentType) && n.disposition !== 'attachment' && !n.filename;
}

export async function scanTree(source: Readable, opts: TreeScanOptions, signal: AbortSignal): Promise<MimeTree> {
  const splitter = new Splitter(splitterOptions(opts));
  addAbortSignal(signal, splitter);
  const objects = pipeline([source, new WholeLines(opts.maxLineLength), splitter], () => {
    /* errors surface through the iteration below */
  }) as unknown as AsyncIterable<SplitterChunk>;

  const recorder = new TreeRecorder(opts);
  try {
    for await (const chunk of objects) recorder.add(chunk);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === LINE_TOO_LONG) throw new TreeLimitError('line', (err as Error).message);
    if (code === MAILSPLIT_LIMIT) {
      const header = /header/i.test((err as Error).message);
      throw header
        ? new TreeLimitError('header', `a MIME part header larger than ${opts.maxHeaderBytes} bytes`)
        : new TreeLimitError('parts', `more than ${opts.maxParts} MIME parts`);
    }
    throw err;
  }
  return recorder.finish();
}

/**
 * Builds a MimeTree from the Splitter's chunks as they pass, whoever produced them: scanTree
 * feeds it a parse of the original, the disclaimer's rewrite feeds it what goes to the Joiner
 * (the chunks the Joiner turns into bytes one to one), so the rewritten message is checked
 * without being parsed again. Parts in `capture` are kept raw (header block and encoded body)
 * instead of hashed, for a separate look at the bytes that did change.
 */
export class TreeRecorder {
  private readonly nodes: TreeNode[] = [];
  private readonly ordinals = new Map<MimeNode, number>();
  private readonly structure = createHash('sha256');
  private readonly layout: LayoutRun[] = [];
  private readonly raw = new Map<number, Buffer[]>();
  private leaf: { node: TreeNode; hash: Hash | null; decoder: TransferDecoder | null; kept: Buffer[]; keptBytes: number } | null = null;
  private keptTotal = 0;

  constructor(
    private readonly opts: Pick<TreeScanOptions, 'keepText' | 'keepTotal' | 'keepOnly'>,
    private readonly capture: ReadonlySet<number> = new Set(),
  ) {}

  add(chunk: SplitterChunk): void {
    if (chunk.type === 'node') {
      this.closeLeaf();
      const mn = chunk as MimeNode;
      const ordinal = this.nodes.length;
      const headers = mn.getHeaders();
      const captured = this.capture.has(ordinal);
      const node = describe(mn, ordinal, mn.parentNode ? (this.ordinals.get(mn.parentNode) ?? null) : null, captured ? '' : hashOf(headers));
      this.ordinals.set(mn, ordinal);
      this.nodes.push(node);
      this.run('head', ordinal, headers.length);
      if (captured) this.raw.set(ordinal, [headers]);
      if (node.parent !== null) this.nodes[node.parent]!.children.push(ordinal);
      if (!node.multipart) {
        const wanted = isInlineText(node) && (!this.opts.keepOnly || this.opts.keepOnly.has(ordinal));
        const decoder = wanted ? transferDecoder(node.encoding) : null;
        this.leaf = { node, hash: captured ? null : createHash('sha256'), decoder, kept: [], keptBytes: 0 };
      }
    } else if (chunk.type === 'body' && this.leaf) {
      const leaf = this.leaf;
      this.run('body', leaf.node.ordinal, chunk.value.length);
      leaf.hash?.update(chunk.value);
      this.raw.get(leaf.node.ordinal)?.push(chunk.value);
      leaf.node.bodyBytes += chunk.value.length;
      if (leaf.decoder) this.keep(leaf.decoder.write(chunk.value));
    } else if (chunk.value) {
      this.run('between', -1, chunk.value.length);
      this.structure.update(chunk.value);
    }
  }

  finish(): MimeTree {
    this.closeLeaf();
    return { nodes: this.nodes, structureHash: this.structure.digest('hex'), layout: this.layout };
  }

  /** The raw bytes (header block and body as written) of a captured part. */
  rawPart(ordinal: number): Buffer | null {
    const pieces = this.raw.get(ordinal);
    return pieces ? Buffer.concat(pieces) : null;
  }

  private run(kind: LayoutRun['kind'], ordinal: number, bytes: number): void {
    const last = this.layout[this.layout.length - 1];
    if (last && last.kind === kind && last.ordinal === ordinal) last.bytes += bytes;
    else this.layout.push({ kind, ordinal, bytes });
  }

  private keep(decoded: Buffer): void {
    const leaf = this.leaf;
    if (!leaf || !decoded.length) return;
    const room = Math.min(this.opts.keepText - leaf.keptBytes, this.opts.keepTotal - this.keptTotal);
    if (decoded.length > room) leaf.node.textTruncated = true;
    if (room <= 0) return;
    const piece = decoded.length > room ? decoded.subarray(0, room) : decoded;
    leaf.kept.push(Buffer.from(piece));
    leaf.keptBytes += piece.length;
    this.keptTotal += piece.length;
  }

  private closeLeaf(): void {
    const leaf = this.leaf;
    if (!leaf) return;
    if (leaf.decoder) this.keep(leaf.decoder.end());
    leaf.node.bodyHash = leaf.hash ? leaf.hash.digest('hex') : '';
    if (leaf.decoder) leaf.node.text = Buffer.concat(leaf.kept, leaf.keptBytes);
    this.leaf = null;
  }
}

function hashOf(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function describe(mn: MimeNode, ordinal: number, parent: number | null, headerHash: string): TreeNode {
  // The Splitter's own copy of the boundary (the parameter as parsed from Content-Type): the
  // one it matches delimiter lines against.
  const boundary = (mn as unknown as { _boundary?: Buffer | false })._boundary;
  return {
    ordinal,
    parent,
    children: [],
    partNr: (mn.partNr || ['TEXT']).join('.'),
    contentType: mn.contentType || 'text/plain',
    multipart: mn.multipart || null,
    disposition: mn.disposition || '',
    filename: mn.filename || '',
    encoding: mn.encoding || '',
    charset: mn.charset || '',
    flowed: !!mn.flowed,
    headerHash,
    bodyHash: '',
    bodyBytes: 0,
    ...(mn.multipart && boundary ? { boundary: boundary.toString('latin1') } : {}),
  };
}
