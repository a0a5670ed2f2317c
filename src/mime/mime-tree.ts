// One streaming pass over a message that records its MIME tree: every node's type, disposition,
// charset and transfer encoding, a hash of its header block and (for leaves) of its raw body,
// a hash of everything between the parts (preamble, delimiters, epilogue), and the decoded
// content of the inline text parts. The disclaimer uses it twice: to plan the rewrite, and to
// check the rewritten message against the original (same tree, same bytes where untouched).
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
}

export interface MimeTree {
  nodes: TreeNode[];
  /** sha256 of everything that is not a part header or a leaf body, in order. */
  structureHash: string;
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

  const nodes: TreeNode[] = [];
  const ordinals = new Map<MimeNode, number>();
  const structure = createHash('sha256');
  let leaf: { node: TreeNode; hash: Hash; decoder: TransferDecoder | null; kept: Buffer[]; keptBytes: number } | null = null;

  let keptTotal = 0;
  const keep = (decoded: Buffer) => {
    if (!leaf || !decoded.length) return;
    const room = Math.min(opts.keepText - leaf.keptBytes, opts.keepTotal - keptTotal);
    if (decoded.length > room) leaf.node.textTruncated = true;
    if (room <= 0) return;
    const piece = decoded.length > room ? decoded.subarray(0, room) : decoded;
    leaf.kept.push(Buffer.from(piece));
    leaf.keptBytes += piece.length;
    keptTotal += piece.length;
  };
  const closeLeaf = () => {
    if (!leaf) return;
    if (leaf.decoder) keep(leaf.decoder.end());
    leaf.node.bodyHash = leaf.hash.digest('hex');
    if (leaf.decoder) leaf.node.text = Buffer.concat(leaf.kept, leaf.keptBytes);
    leaf = null;
  };

  try {
    for await (const chunk of objects) {
      if (chunk.type === 'node') {
        closeLeaf();
        const mn = chunk as MimeNode;
        const node = describe(mn, nodes.length, mn.parentNode ? (ordinals.get(mn.parentNode) ?? null) : null);
        ordinals.set(mn, node.ordinal);
        nodes.push(node);
        if (node.parent !== null) nodes[node.parent]!.children.push(node.ordinal);
        if (!node.multipart) {
          const wanted = isInlineText(node) && (!opts.keepOnly || opts.keepOnly.has(node.ordinal));
          const decoder = wanted ? transferDecoder(node.encoding) : null;
          leaf = { node, hash: createHash('sha256'), decoder, kept: [], keptBytes: 0 };
        }
      } else if (chunk.type === 'body' && leaf) {
        leaf.hash.update(chunk.value);
        leaf.node.bodyBytes += chunk.value.length;
        if (leaf.decoder) keep(leaf.decoder.write(chunk.value));
      } else if (chunk.value) {
        structure.update(chunk.value);
      }
    }
    closeLeaf();
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
  return { nodes, structureHash: structure.digest('hex') };
}

function describe(mn: MimeNode, ordinal: number, parent: number | null): TreeNode {
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
    headerHash: createHash('sha256').update(mn.getHeaders()).digest('hex'),
    bodyHash: '',
    bodyBytes: 0,
  };
}
