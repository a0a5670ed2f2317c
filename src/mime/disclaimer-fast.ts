// The disclaimer's rewrite pass without a stream pipeline. disclaimer.ts's stream version runs
// the message through Splitter -> tagger -> Rewriter -> lineEnds -> recorder -> cutRoot ->
// Joiner, nine stream objects and an event-loop turn per line and per encoder chunk; here the
// same steps run as plain function calls on each chunk of the message, in the same order:
// - the split is LineSplitter (sync-splitter.ts: the Splitter's own line parser, no stream);
// - a rewritten part is decoded and encoded by the very decoder and encoder objects the Rewriter
//   would use (node.getDecoder()/getEncoder(), which also update its headers the same way),
//   run synchronously on the same chunks (sync-transform.ts);
// - the recorder, the header capture and the joining are the same code as in disclaimer.ts.
// What the stream version's chunk boundaries could change is decided up front: the Rewriter
// ends a part with a bare LF when the encoding did not end with one, and lineEnds turns a lone
// LF chunk into CRLF or drops it. With every LF of the encoded part preceded by CR (checked
// below), the only lone LF is that final one, and its fate depends on bytes alone. Anything
// else (a bare LF in the encoding, format=flowed, which the Rewriter decodes through a stream
// of its own) throws NeedsStreamRewrite, and disclaimer.ts runs the stream version instead.
import type { Readable } from 'node:stream';
import { addAbortSignal } from 'node:stream';
import type { MimeNode, SplitterChunk } from 'mailsplit';
import type { Target } from './disclaimer-plan.js';
import { insertDisclaimer, type DisclaimerTexts } from './disclaimer-insert.js';
import { splitterOptions, TreeRecorder, type MimeTree } from './mime-tree.js';
import type { RewrittenBody } from './rewritten-body.js';
import { asBuffer, LineSplitter } from './sync-splitter.js';
import { runTransform } from './sync-transform.js';

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from('\r\n');
/** Transfer encodings the Rewriter keeps; any other is re-encoded as quoted-printable. */
const KEPT_ENCODINGS = ['base64', 'quoted-printable'];
const REENCODING = 'quoted-printable';

export class NeedsStreamRewrite extends Error {}

export interface HeaderLine {
  key: string;
  line: string;
}

export interface Written {
  /** The tree of the new message, recorded on its way to the Joiner. */
  after: MimeTree;
  /** Header block and new body of a rewritten part. */
  rawPart: (ordinal: number) => Buffer | null;
  rootBefore: HeaderLine[];
  rootAfter: HeaderLine[];
  converted: string[];
}

export interface FastRewriteJob {
  maxParts: number;
  maxHeaderBytes: number;
  texts: DisclaimerTexts;
  /** Decoded bytes of one part past which the rewrite fails (as the stream version's). */
  maxDecodedBytes: number;
  signal: AbortSignal;
}

const headerLines = (node: MimeNode): HeaderLine[] => node.headers.getList().map((h) => ({ key: h.key, line: h.line }));

/**
 * `source` is a fresh stream of the message, or the chunks a scan of it kept (SplitReplay):
 * the same chunks either way, split with the same options (splitterOptions of the same limits).
 */
export async function rewriteFast(source: Readable | readonly SplitterChunk[], job: FastRewriteJob, targets: Target[], body: RewrittenBody): Promise<Written> {
  const byOrdinal = new Map(targets.map((t) => [t.ordinal, t]));
  const converted: string[] = [];
  const recorder = new TreeRecorder({ keepText: 0, keepTotal: 0, keepOnly: new Set() }, new Set(byOrdinal.keys()));
  let rootBefore: HeaderLine[] = [];
  let rootAfter: HeaderLine[] = [];
  let seen = 0;
  let out: Buffer[] = [];
  /** The part being rewritten: its body chunks are held until the part ends. */
  let current: { node: MimeNode; target: Target; chunks: Buffer[]; bytes: number } | null = null;

  // What lineEnds, the recorder, cutRoot and the Joiner do with each chunk the Rewriter passes on.
  const emit = (chunk: SplitterChunk) => {
    recorder.add(chunk);
    if (chunk.type === 'node') {
      const node = chunk as MimeNode;
      if (node.root) {
        rootAfter = headerLines(node);
        return;
      }
      out.push(node.getHeaders());
    } else if (chunk.value) out.push(chunk.value);
  };

  const finishPart = () => {
    const part = current!;
    current = null;
    const { node, target } = part;
    // The Rewriter's order: decoder, then encoder (which may rewrite Content-Transfer-Encoding).
    const decoder = node.getDecoder();
    const encoder = node.getEncoder(KEPT_ENCODINGS.includes(node.encoding || '') ? undefined : REENCODING);
    const decoded = runTransform(decoder, part.chunks);
    if (decoded.length > job.maxDecodedBytes) throw new Error(`part ${target.partNr} grew past the size limit while decoding`);
    const inserted = insertDisclaimer(decoded, target.kind, node.charset, job.texts);
    if (inserted.charset) {
      node.setCharset(inserted.charset);
      converted.push(target.partNr);
    }
    const encoded = runTransform(encoder, inserted.bytes.length ? [inserted.bytes] : []);
    if (hasBareLf(encoded)) throw new NeedsStreamRewrite('a bare LF in the re-encoded part');
    emit(node);
    if (encoded.length) emit({ type: 'body', node, value: encoded });
    // The Rewriter's closing LF when the part did not end with one, as lineEnds leaves it.
    if (encoded.length && encoded[encoded.length - 1] === LF) return;
    if (encoded.length && encoded[encoded.length - 1] === CR) emit({ type: 'body', node, value: Buffer.from([LF]) });
    else if (!node.parentNode) emit({ type: 'body', node, value: CRLF });
  };

  // The tagger and the Rewriter: number the nodes, hold the parts to rewrite, pass the rest.
  const onChunk = (chunk: SplitterChunk) => {
    if (current && chunk.type === 'body') {
      current.chunks.push(chunk.value);
      current.bytes += chunk.value.length;
      return;
    }
    if (current) finishPart();
    if (chunk.type === 'node') {
      const node = chunk as MimeNode;
      if (seen === 0) rootBefore = headerLines(node);
      const target = byOrdinal.get(seen++);
      if (target) {
        if (node.flowed && /^text\//.test(node.contentType || '')) throw new NeedsStreamRewrite('format=flowed');
        current = { node, target, chunks: [], bytes: 0 };
        return;
      }
    }
    emit(chunk);
  };

  if (Array.isArray(source)) {
    job.signal.throwIfAborted();
    for (const chunk of source as readonly SplitterChunk[]) onChunk(chunk);
  } else {
    const splitter = new LineSplitter(splitterOptions(job));
    const stream = source as Readable;
    addAbortSignal(job.signal, stream);
    for await (const chunk of stream as AsyncIterable<Buffer | string>) {
      splitter.write(asBuffer(chunk), onChunk);
      await flush();
    }
    splitter.end(onChunk);
  }
  if (current) finishPart();
  await flush();
  await body.close();
  return { after: recorder.finish(), rawPart: (o) => recorder.rawPart(o), rootBefore, rootAfter, converted };

  async function flush(): Promise<void> {
    const pending = out;
    out = [];
    for (const b of pending) {
      if (!b.length) continue; // the Joiner never passes an empty chunk on either
      const writing = body.add(b);
      if (writing) await writing;
    }
  }
}

/** An LF that does not follow a CR (the first byte counts as following nothing). */
function hasBareLf(b: Buffer): boolean {
  for (let i = b.indexOf(LF); i >= 0; i = b.indexOf(LF, i + 1)) if (i === 0 || b[i - 1] !== CR) return true;
  return false;
}
