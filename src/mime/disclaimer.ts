// Adds a disclaimer to a message without building it in memory: the message is split by
// mailsplit's parser (sync-splitter.ts), the chosen parts are rewritten, and the result goes
// into a RewrittenBody (memory up to a limit, an unlinked temporary file above it). The rewrite
// runs as plain function calls (disclaimer-fast.ts), or through mailsplit's Rewriter and Joiner
// streams (below) in the cases whose bytes could depend on the stream's chunking. A message
// within the memory limit is split once: the rewrite replays the scan's chunks. Two passes:
//   1. scan the tree (guarded against huge lines and part bombs) and plan which parts change;
//   2. rewrite only those parts, every other byte passes through untouched, and record the tree
//      of what goes to the Joiner (TreeRecorder): sizes, bytes (or hashes) and order of the untouched
//      stretches. Only the rewritten parts are parsed again, each on its own; then everything is
//      checked against the original (invariants.ts).
// The top-level header block is not part of the new body: when a single-part message's own
// Content-Type or Content-Transfer-Encoding changed, that comes back as header modifications.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Joiner, Rewriter, Splitter, type MimeNode, type RewriteTarget, type SplitterChunk } from 'mailsplit';
import type { Modification } from '../policy/types.js';
import { insertDisclaimer, type DisclaimerTexts } from './disclaimer-insert.js';
import { NeedsStreamRewrite, rewriteFast, type HeaderLine, type Written } from './disclaimer-fast.js';
import { planDisclaimer, type SkipCode, type Target } from './disclaimer-plan.js';
import { checkInvariants, newDelimiters, type RewrittenPart } from './invariants.js';
import { scanBuffer, scanTree, SplitReplay, splitterOptions, TreeLimitError, TreeRecorder, type MimeTree, type TreeScanOptions } from './mime-tree.js';
import { WholeLines } from './line-guard.js';
import { RewrittenBody } from './rewritten-body.js';
import { htmlToText } from './text-match.js';

export interface DisclaimerLimits {
  /** Largest decoded text part that is rewritten; a larger one means no disclaimer. */
  maxPartBytes: number;
  /** Longest line before parsing is refused (mailsplit is quadratic on long lines). */
  maxLineLength: number;
  /** Most MIME parts. */
  maxParts: number;
  /** Largest header block of one part. */
  maxHeaderBytes: number;
}

export interface DisclaimerJob extends DisclaimerLimits {
  texts: DisclaimerTexts;
  /** Where the rewritten body is spooled when it is larger than memoryBytes. */
  spoolDir: string;
  /** Largest rewritten body kept in memory (server.body_memory_bytes); default 1 MiB. */
  memoryBytes?: number;
  /** A fresh stream of the whole message (header block, blank line, body) per call. */
  message: () => Readable;
  signal: AbortSignal;
}

export type DisclaimerResult =
  | {
      kind: 'rewritten';
      /** The new body (everything after the top-level header block). */
      body: RewrittenBody;
      /** Top-level header edits that go with the new body (single-part messages). */
      headerMods: Modification[];
      parts: string[];
      /** Parts converted to UTF-8 because their charset could not carry the disclaimer. */
      converted: string[];
    }
  | { kind: 'unchanged'; reason: string }
  | { kind: 'skipped'; code: SkipCode | 'invariants'; reason: string; details: Record<string, unknown> };

/** Room for the disclaimer itself when a rewritten part is read back. */
const READBACK_SLACK = 256 * 1024;
/** A part converted to UTF-8 grows: up to 3 bytes for each byte of a single-byte charset. */
const UTF8_GROWTH = 3;
/**
 * Decoded text kept from one message, in text parts of max_part_size: the plan needs the
 * parts a reader sees (the first ones) whole; later ones are searched as far as this goes.
 */
const TEXT_BUDGET_PARTS = 4;
/** Top-level headers a rewrite of a single-part message can change. */
const CONTENT_HEADERS = ['content-type', 'content-transfer-encoding'];
/** The default of server.body_memory_bytes. */
const DEFAULT_MEMORY_BYTES = 1024 * 1024;
/** Reported when a rewritten part would add a MIME delimiter (the wording of invariants.ts). */
const NEW_DELIMITER = 'delimiters, preamble or epilogue changed';

export async function addDisclaimer(job: DisclaimerJob): Promise<DisclaimerResult> {
  const scanOpts: TreeScanOptions = {
    maxParts: job.maxParts,
    maxHeaderBytes: job.maxHeaderBytes,
    maxLineLength: job.maxLineLength,
    keepText: job.maxPartBytes,
    keepTotal: TEXT_BUDGET_PARTS * job.maxPartBytes,
    keepBytes: job.memoryBytes ?? DEFAULT_MEMORY_BYTES,
  };
  // A small message is split once: the rewrite replays the scan's chunks.
  const replay = new SplitReplay(job.memoryBytes ?? DEFAULT_MEMORY_BYTES);
  let tree: MimeTree;
  try {
    tree = await scanTree(job.message(), scanOpts, job.signal, replay);
  } catch (err) {
    if (err instanceof TreeLimitError) return { kind: 'skipped', code: 'limit', reason: `not parsed: ${err.message}`, details: { limit: err.limit } };
    throw err;
  }
  const htmlText = htmlToText(job.texts.html);
  const plan = planDisclaimer(tree, { text: job.texts.text, htmlText, maxPartBytes: job.maxPartBytes });
  if (plan.kind === 'nothing') return { kind: 'unchanged', reason: plan.reason };
  if (plan.kind === 'skip') return { kind: 'skipped', code: plan.code, reason: plan.reason, details: plan.details };

  const newBody = () => new RewrittenBody(job.spoolDir, job.memoryBytes ?? DEFAULT_MEMORY_BYTES);
  let body = newBody();
  try {
    let written: Written;
    try {
      written = await rewriteFast(replay.chunks() ?? job.message(), { ...job, maxDecodedBytes: job.maxPartBytes + READBACK_SLACK }, plan.targets, body);
    } catch (err) {
      if (!(err instanceof NeedsStreamRewrite)) throw err;
      // The few parts whose result could depend on how the stream version chunks them.
      body.dispose();
      body = newBody();
      written = await rewriteStream(job, plan.targets, body);
    }
    const readBackText = UTF8_GROWTH * job.maxPartBytes + READBACK_SLACK;
    const problems: string[] = [];
    const after = written.after;
    for (const t of plan.targets) {
      const raw = written.rawPart(t.ordinal);
      const node = after.nodes[t.ordinal];
      if (!raw || !node) continue; // the part count check reports it
      if (newDelimiters(raw, tree)) {
        problems.push(NEW_DELIMITER);
        continue;
      }
      // The rewritten part alone (header block and new body) is a message of its own: parse it
      // to see what a reader's parser sees, type, charset and text.
      const alone = scanBuffer(raw, { ...scanOpts, maxLineLength: undefined, keepText: readBackText, keepTotal: readBackText });
      const read = alone.nodes[0];
      if (!read || alone.nodes.length !== 1) {
        problems.push(`part ${t.partNr} reads back as ${alone.nodes.length} parts`);
        continue;
      }
      Object.assign(node, { contentType: read.contentType, multipart: read.multipart, charset: read.charset, text: read.text, textTruncated: read.textTruncated });
    }
    const expected = new Map<number, RewrittenPart>(plan.targets.map((t) => [t.ordinal, { kind: t.kind, needle: t.kind === 'html' ? htmlText : job.texts.text }]));
    problems.push(...checkInvariants(tree, after, expected));
    if (problems.length) {
      body.dispose();
      return { kind: 'skipped', code: 'invariants', reason: `rewritten message failed its checks: ${problems.join('; ')}`, details: { problems } };
    }
    return {
      kind: 'rewritten',
      body,
      headerMods: headerMods(written.rootBefore, written.rootAfter),
      parts: plan.targets.map((t) => t.partNr),
      converted: written.converted,
    };
  } catch (err) {
    body.dispose();
    throw err;
  }
}

/** The stream version of the rewrite pass (see disclaimer-fast.ts for the one that runs first). */
export async function rewriteStream(job: DisclaimerJob, targets: Target[], body: RewrittenBody): Promise<Written> {
  const byOrdinal = new Map(targets.map((t) => [t.ordinal, t]));
  const ordinals = new WeakMap<MimeNode, number>();
  const converted: string[] = [];
  let rootBefore: HeaderLine[] = [];
  let seen = 0;

  // Numbers the nodes in document order (the plan's identity) and remembers the top-level
  // headers before the Rewriter changes them.
  const tagger = objectTransform((chunk, push) => {
    if (chunk.type === 'node') {
      const node = chunk as MimeNode;
      if (seen === 0) rootBefore = node.headers.getList().map((h) => ({ key: h.key, line: h.line }));
      ordinals.set(node, seen++);
    }
    push(chunk);
  });

  const rewriter = new Rewriter((node) => byOrdinal.has(ordinals.get(node) ?? -1));
  rewriter.on('node', (t: RewriteTarget) => {
    const target = byOrdinal.get(ordinals.get(t.node) ?? -1)!;
    const chunks: Buffer[] = [];
    let size = 0;
    t.decoder.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > job.maxPartBytes + READBACK_SLACK) rewriter.destroy(new Error(`part ${target.partNr} grew past the size limit while decoding`));
    });
    t.decoder.on('error', (err: Error) => rewriter.destroy(err));
    t.decoder.on('end', () => {
      try {
        const out = insertDisclaimer(Buffer.concat(chunks, size), target.kind, t.node.charset, job.texts);
        if (out.charset) {
          t.node.setCharset(out.charset);
          converted.push(target.partNr);
        }
        t.encoder.end(out.bytes);
      } catch (err) {
        rewriter.destroy(err as Error);
      }
    });
  });

  // The Rewriter ends a re-encoded part that lacks a final line break with a bare LF. Inside a
  // multipart the next delimiter begins with CRLF already, so the LF goes; at the end of a
  // single-part message it becomes a proper CRLF.
  const lastByte = new WeakMap<MimeNode, number>();
  const lineEnds = objectTransform((chunk, push) => {
    if (chunk.type === 'body' && byOrdinal.has(ordinals.get(chunk.node) ?? -1)) {
      const v = chunk.value;
      if (v.length === 1 && v[0] === 0x0a && lastByte.get(chunk.node) !== 0x0d) {
        if (chunk.node.parentNode) return;
        chunk = { ...chunk, value: Buffer.from('\r\n') };
      }
      if (chunk.value.length) lastByte.set(chunk.node, chunk.value[chunk.value.length - 1]!);
    }
    push(chunk);
  });

  // Everything the Joiner gets, the top-level header block included (the new message as a
  // reader would parse it), recorded for the checks. Untouched parts are only digested.
  const recorder = new TreeRecorder({ keepText: 0, keepTotal: 0, keepOnly: new Set() }, new Set(byOrdinal.keys()));
  const record = objectTransform((chunk, push) => {
    recorder.add(chunk);
    push(chunk);
  });

  // The new body starts after the top-level header block: keep that block out of the body.
  let rootAfter: HeaderLine[] = [];
  const cutRoot = objectTransform((chunk, push) => {
    if (chunk.type === 'node' && (chunk as MimeNode).root) {
      const node = chunk as MimeNode;
      rootAfter = node.headers.getList().map((h) => ({ key: h.key, line: h.line }));
      return;
    }
    push(chunk);
  });

  const out = body.writer();
  await pipeline([job.message(), new WholeLines(), new Splitter(splitterOptions(job)), tagger, rewriter, lineEnds, record, cutRoot, new Joiner(), out], { signal: job.signal });
  return { after: recorder.finish(), rawPart: (o) => recorder.rawPart(o), rootBefore, rootAfter, converted };
}

function objectTransform(fn: (chunk: SplitterChunk, push: (c: SplitterChunk) => void) => void): Transform {
  return new Transform({
    objectMode: true,
    transform(chunk: SplitterChunk, _enc: BufferEncoding, done: TransformCallback) {
      fn(chunk, (c) => this.push(c));
      done();
    },
  });
}

/** The value of a raw header line: after the colon, unfolded. */
function valueOf(line: string): string {
  return line
    .slice(line.indexOf(':') + 1)
    .replace(/\r?\n(?=[ \t])/g, '')
    .trim();
}

function nameOf(line: string, fallback: string): string {
  const colon = line.indexOf(':');
  return colon > 0 ? line.slice(0, colon).trim() : fallback;
}

/** Header modifications that turn the old top-level content headers into the new ones. */
export function headerMods(before: HeaderLine[], after: HeaderLine[]): Modification[] {
  const mods: Modification[] = [];
  let changed = false;
  for (const key of CONTENT_HEADERS) {
    const was = before.filter((h) => h.key === key);
    const now = after.filter((h) => h.key === key);
    const wasValues = was.map((h) => valueOf(h.line));
    const nowValues = now.map((h) => valueOf(h.line));
    if (wasValues.join('\n') === nowValues.join('\n')) continue;
    changed = true;
    const name = nameOf(now[0]?.line ?? was[0]?.line ?? '', key);
    nowValues.forEach((value, i) => {
      if (i < wasValues.length) {
        if (wasValues[i] !== value) mods.push({ type: 'changeHeader', name, index: i + 1, value });
      } else mods.push({ type: 'addHeader', name, value });
    });
    // Surplus old copies go, last first so the indexes stay valid.
    for (let i = wasValues.length; i > nowValues.length; i--) mods.push({ type: 'changeHeader', name, index: i, value: '' });
  }
  // A Content-Transfer-Encoding means nothing to a reader without MIME-Version.
  if (changed && !before.some((h) => h.key === 'mime-version')) mods.push({ type: 'addHeader', name: 'MIME-Version', value: '1.0' });
  return mods;
}
