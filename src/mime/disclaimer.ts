// Adds a disclaimer to a message without building it in memory: the message streams through
// mailsplit (Splitter -> Rewriter -> Joiner) into an unlinked temporary file. Three passes:
//   1. scan the tree (guarded against huge lines and part bombs) and plan which parts change;
//   2. rewrite only those parts, every other byte passes through untouched;
//   3. parse the result again and check it against the original (invariants.ts).
// The top-level header block is not part of the new body: when a single-part message's own
// Content-Type or Content-Transfer-Encoding changed, that comes back as header modifications.
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Joiner, Rewriter, Splitter, type MimeNode, type RewriteTarget, type SplitterChunk } from 'mailsplit';
import type { Modification } from '../policy/types.js';
import { insertDisclaimer, type DisclaimerTexts } from './disclaimer-insert.js';
import { planDisclaimer, type SkipCode, type Target } from './disclaimer-plan.js';
import { checkInvariants, type RewrittenPart } from './invariants.js';
import { scanTree, splitterOptions, TreeLimitError, type MimeTree, type TreeScanOptions } from './mime-tree.js';
import { WholeLines } from './line-guard.js';
import { TempBody } from './temp-body.js';
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
  /** Where the rewritten body is spooled. */
  spoolDir: string;
  /** A fresh stream of the whole message (header block, blank line, body) per call. */
  message: () => Readable;
  signal: AbortSignal;
}

export type DisclaimerResult =
  | {
      kind: 'rewritten';
      /** The new body (everything after the top-level header block). */
      body: TempBody;
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

export async function addDisclaimer(job: DisclaimerJob): Promise<DisclaimerResult> {
  const scanOpts: TreeScanOptions = {
    maxParts: job.maxParts,
    maxHeaderBytes: job.maxHeaderBytes,
    maxLineLength: job.maxLineLength,
    keepText: job.maxPartBytes,
    keepTotal: TEXT_BUDGET_PARTS * job.maxPartBytes,
  };
  let tree: MimeTree;
  try {
    tree = await scanTree(job.message(), scanOpts, job.signal);
  } catch (err) {
    if (err instanceof TreeLimitError) return { kind: 'skipped', code: 'limit', reason: `not parsed: ${err.message}`, details: { limit: err.limit } };
    throw err;
  }
  const htmlText = htmlToText(job.texts.html);
  const plan = planDisclaimer(tree, { text: job.texts.text, htmlText, maxPartBytes: job.maxPartBytes });
  if (plan.kind === 'nothing') return { kind: 'unchanged', reason: plan.reason };
  if (plan.kind === 'skip') return { kind: 'skipped', code: plan.code, reason: plan.reason, details: plan.details };

  const body = await TempBody.create(job.spoolDir);
  try {
    const written = await rewrite(job, plan.targets, body);
    const readBack = Readable.from(concat(written.rootHeaders, body.peek()));
    const readBackText = UTF8_GROWTH * job.maxPartBytes + READBACK_SLACK;
    const after = await scanTree(
      readBack,
      { ...scanOpts, maxLineLength: undefined, keepText: readBackText, keepTotal: plan.targets.length * readBackText, keepOnly: new Set(plan.targets.map((t) => t.ordinal)) },
      job.signal,
    );
    const expected = new Map<number, RewrittenPart>(plan.targets.map((t) => [t.ordinal, { kind: t.kind, needle: t.kind === 'html' ? htmlText : job.texts.text }]));
    const problems = checkInvariants(tree, after, expected);
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

interface HeaderLine {
  key: string;
  line: string;
}

interface Written {
  rootHeaders: Buffer;
  rootBefore: HeaderLine[];
  rootAfter: HeaderLine[];
  converted: string[];
}

async function rewrite(job: DisclaimerJob, targets: Target[], body: TempBody): Promise<Written> {
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

  // The new body starts after the top-level header block: keep that block out of the file.
  let rootHeaders: Buffer = Buffer.alloc(0);
  let rootAfter: HeaderLine[] = [];
  const cutRoot = objectTransform((chunk, push) => {
    if (chunk.type === 'node' && (chunk as MimeNode).root) {
      const node = chunk as MimeNode;
      rootHeaders = node.getHeaders();
      rootAfter = node.headers.getList().map((h) => ({ key: h.key, line: h.line }));
      return;
    }
    push(chunk);
  });

  const out = body.writer();
  await pipeline([job.message(), new WholeLines(), new Splitter(splitterOptions(job)), tagger, rewriter, lineEnds, cutRoot, new Joiner(), out], { signal: job.signal });
  body.size = out.bytesWritten;
  return { rootHeaders, rootBefore, rootAfter, converted };
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

async function* concat(head: Buffer, rest: Readable): AsyncGenerator<Buffer> {
  yield head;
  for await (const c of rest) yield c as Buffer;
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
