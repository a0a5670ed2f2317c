// One streaming pass over a message that records its MIME tree: every node's type, disposition,
// charset and transfer encoding, the bytes (or, past a budget, a hash: byte-digest.ts) of its
// header block and (for leaves) of its raw body and of everything between the parts (preamble,
// delimiters, epilogue), and the decoded
// content of the inline text parts, and the layout (which stretch of bytes is which). The
// disclaimer uses it twice: to plan the rewrite, and (recorded from the rewrite's own output,
// see TreeRecorder) to check the rewritten message against the original (same tree, same bytes
// where untouched).
// Attached messages (message/rfc822) are leaves: what is inside them is never looked at.
import { ByteDigest, KeepBudget } from './byte-digest.js';
import { addAbortSignal, type Readable } from 'node:stream';
import type { MimeNode, SplitterChunk, SplitterOptions } from 'mailsplit';
import { LINE_TOO_LONG } from './line-guard.js';
import { asBuffer, LineSplitter } from './sync-splitter.js';
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
  /** The raw header block (byte-digest.ts); null for a part captured raw. */
  header: ByteDigest | null;
  /** The raw (still transfer-encoded) body of a leaf; null for a multipart or a captured part. */
  body: ByteDigest | null;
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
  /** Everything that is not a part header or a leaf body, in order. */
  structure: ByteDigest;
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
  /** Raw bytes kept for the byte-identity checks before everything is hashed instead (byte-digest.ts). */
  keepBytes?: number;
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
/** Default of TreeScanOptions.keepBytes: the default of server.body_memory_bytes. */
const DEFAULT_KEEP_BYTES = 1024 * 1024;
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

export async function scanTree(source: Readable, opts: TreeScanOptions, signal: AbortSignal, replay?: SplitReplay): Promise<MimeTree> {
  const scan = treeScan(opts, replay);
  addAbortSignal(signal, source);
  for await (const chunk of source as AsyncIterable<Buffer | string>) scan.write(asBuffer(chunk));
  return scan.finish();
}

/** The split and the recording of one scan, fed chunk by chunk; limits come out as TreeLimitError. */
function treeScan(opts: TreeScanOptions, replay?: SplitReplay): { write(chunk: Buffer): void; finish(): MimeTree } {
  const splitter = new LineSplitter(splitterOptions(opts), opts.maxLineLength);
  const recorder = new TreeRecorder(opts);
  const add = replay
    ? (chunk: SplitterChunk) => {
        recorder.add(chunk);
        replay.keep(chunk);
      }
    : (chunk: SplitterChunk) => recorder.add(chunk);
  const guarded = (step: () => void) => {
    try {
      step();
    } catch (err) {
      throw limitError(err, opts);
    }
  };
  return {
    write: (chunk) => guarded(() => splitter.write(chunk, add)),
    finish: () => {
      guarded(() => splitter.end(add));
      return recorder.finish();
    },
  };
}

/**
 * The Splitter's chunks of a scan, kept for a second pass over the same message (the
 * disclaimer's rewrite) while the message is small: the split is deterministic, so the second
 * pass gets what splitting the message again would give, without reading it again. Keeping
 * them costs no copies (the chunks are views and the nodes exist anyway); the nodes the scan
 * recorded are not changed by it. Past `limit` bytes nothing is kept (chunks() is null).
 */
export class SplitReplay {
  private list: SplitterChunk[] | null = [];
  private bytes = 0;

  constructor(private readonly limit: number) {}

  keep(chunk: SplitterChunk): void {
    if (!this.list) return;
    this.bytes += chunk.type === 'node' ? 0 : (chunk.value?.length ?? 0);
    if (this.bytes > this.limit) this.list = null;
    else this.list.push(chunk);
  }

  /** Every chunk of the scan in order, or null when the message was too large to keep. */
  chunks(): readonly SplitterChunk[] | null {
    return this.list;
  }
}

/** scanTree of a message already in memory: no stream, no waiting. */
export function scanBuffer(message: Buffer, opts: TreeScanOptions): MimeTree {
  const scan = treeScan(opts);
  scan.write(message);
  return scan.finish();
}

/** A parse error as a TreeLimitError when it is one of the limits, else as it was. */
function limitError(err: unknown, opts: Pick<TreeScanOptions, 'maxParts' | 'maxHeaderBytes'>): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === LINE_TOO_LONG) return new TreeLimitError('line', (err as Error).message);
  if (code === MAILSPLIT_LIMIT) {
    const header = /header/i.test((err as Error).message);
    return header
      ? new TreeLimitError('header', `a MIME part header larger than ${opts.maxHeaderBytes} bytes`)
      : new TreeLimitError('parts', `more than ${opts.maxParts} MIME parts`);
  }
  return err;
}

/**
 * Builds a MimeTree from the Splitter's chunks as they pass, whoever produced them: scanTree
 * feeds it a parse of the original, the disclaimer's rewrite feeds it what goes to the Joiner
 * (the chunks the Joiner turns into bytes one to one), so the rewritten message is checked
 * without being parsed again. Parts in `capture` are kept raw (header block and encoded body)
 * instead of digested, for a separate look at the bytes that did change.
 */
export class TreeRecorder {
  private readonly nodes: TreeNode[] = [];
  private readonly ordinals = new Map<MimeNode, number>();
  private readonly budget: KeepBudget;
  private readonly structure: ByteDigest;
  private readonly layout: LayoutRun[] = [];
  private readonly raw = new Map<number, Buffer[]>();
  private leaf: { node: TreeNode; decoder: TransferDecoder | null; kept: Buffer[]; keptBytes: number } | null = null;
  private keptTotal = 0;

  constructor(
    private readonly opts: Pick<TreeScanOptions, 'keepText' | 'keepTotal' | 'keepOnly' | 'keepBytes'>,
    private readonly capture: ReadonlySet<number> = new Set(),
  ) {
    this.budget = new KeepBudget(opts.keepBytes ?? DEFAULT_KEEP_BYTES);
    this.structure = new ByteDigest(this.budget);
  }

  add(chunk: SplitterChunk): void {
    if (chunk.type === 'node') {
      this.closeLeaf();
      const mn = chunk as MimeNode;
      const ordinal = this.nodes.length;
      const headers = mn.getHeaders();
      const captured = this.capture.has(ordinal);
      const node = describe(mn, ordinal, mn.parentNode ? (this.ordinals.get(mn.parentNode) ?? null) : null, captured ? null : this.digestOf(headers));
      this.ordinals.set(mn, ordinal);
      this.nodes.push(node);
      this.run('head', ordinal, headers.length);
      if (captured) this.raw.set(ordinal, [headers]);
      if (node.parent !== null) this.nodes[node.parent]!.children.push(ordinal);
      if (!node.multipart) {
        const wanted = isInlineText(node) && (!this.opts.keepOnly || this.opts.keepOnly.has(ordinal));
        const decoder = wanted ? transferDecoder(node.encoding) : null;
        if (!captured) node.body = new ByteDigest(this.budget);
        this.leaf = { node, decoder, kept: [], keptBytes: 0 };
      }
    } else if (chunk.type === 'body' && this.leaf) {
      const leaf = this.leaf;
      this.run('body', leaf.node.ordinal, chunk.value.length);
      leaf.node.body?.update(chunk.value);
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
    return { nodes: this.nodes, structure: this.structure, layout: this.layout };
  }

  /** The raw bytes (header block and body as written) of a captured part. */
  rawPart(ordinal: number): Buffer | null {
    const pieces = this.raw.get(ordinal);
    return pieces ? Buffer.concat(pieces) : null;
  }

  private digestOf(bytes: Buffer): ByteDigest {
    const d = new ByteDigest(this.budget);
    d.update(bytes);
    return d;
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
    if (leaf.decoder) leaf.node.text = Buffer.concat(leaf.kept, leaf.keptBytes);
    this.leaf = null;
  }
}


function describe(mn: MimeNode, ordinal: number, parent: number | null, header: ByteDigest | null): TreeNode {
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
    header,
    body: null,
    bodyBytes: 0,
    ...(mn.multipart && boundary ? { boundary: boundary.toString('latin1') } : {}),
  };
}
