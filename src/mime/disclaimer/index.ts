// Adds a disclaimer to a message by appending, never by rewriting: one shared parse (parse/)
// says where the text parts lie, the parts a reader sees are chosen (plan.ts), each gets an
// edit that leaves its bytes as they are and adds the disclaimer in its own charset and
// transfer encoding (append.ts), and the new body is the original with those edits spliced
// in (spliced-body.ts). Before it is used, the new message is parsed again and checked
// (verify.ts); when that fails the original is delivered.
import type { Modification } from '../../policy/types.js';
import { decodedBody } from '../parse/decode.js';
import { messagePieces, readRanges, type Pieces } from '../parse/ranges.js';
import { sharedParse, type ParseSource } from '../parse/shared.js';
import { containsAnyText, htmlToText } from '../text-match.js';
import { editPart, type DisclaimerTexts, type PartEdit } from './append.js';
import { isInlineText, ownParts, planDisclaimer, type SkipCode } from './plan.js';
import { SplicedBody } from './spliced-body.js';
import { verifyEdits } from './verify.js';

export interface DisclaimerLimits {
  /** Largest decoded text part that is rewritten; a larger one means no disclaimer. */
  maxPartBytes: number;
  /** A target part with a longer line is not rewritten. */
  maxLineLength: number;
  /** Most MIME parts. */
  maxParts: number;
}

export interface DisclaimerJob extends DisclaimerLimits {
  texts: DisclaimerTexts;
  /** The whole message (header block, blank line, body) and the per-message state for the shared parse. */
  source: ParseSource;
  /** The top-level header block (with its blank line) and the body alone. */
  headerBlock: Buffer;
  body: () => Pieces;
  signal: AbortSignal;
}

export type DisclaimerResult =
  | {
      kind: 'rewritten';
      body: SplicedBody;
      headerMods: Modification[];
      parts: string[];
      bytesAdded: number;
      asciiForm: string[];
    }
  | { kind: 'unchanged'; reason: string }
  | { kind: 'skipped'; code: SkipCode | 'invariants'; reason: string; details: Record<string, unknown> };

/** What is derived from a disclaimer's texts alone. */
export interface TextFacts {
  /** The visible text of the HTML version. */
  htmlText: string;
  /** Does a text part already show the disclaimer (plain or HTML version, however re-wrapped)? */
  present: (visibleText: string) => boolean;
}

// A policy's texts are made once, when it is compiled, and live as long as it does: what follows
// from them alone is worked out once per texts object, not for every message.
const factsOf = new WeakMap<DisclaimerTexts, TextFacts>();

export function textFacts(texts: DisclaimerTexts): TextFacts {
  let facts = factsOf.get(texts);
  if (!facts) {
    const htmlText = htmlToText(texts.html);
    facts = { htmlText, present: containsAnyText(htmlText ? [texts.text, htmlText] : [texts.text]) };
    factsOf.set(texts, facts);
  }
  return facts;
}

/** Encoded bytes of text parts kept for the plan, in multiples of max_part_size (base64 is 4/3 larger). */
const RAW_PER_PART = 2;
const TEXT_BUDGET_PARTS = 4;

export async function addDisclaimer(job: DisclaimerJob): Promise<DisclaimerResult> {
  const parse = await sharedParse(job.source, job.signal);
  if (parse.limit)
    return {
      kind: 'skipped',
      code: 'limit',
      reason: `not parsed: ${parse.limit.detail}`,
      details: { limit: parse.limit.kind },
    };
  if (parse.parts.length > job.maxParts) {
    return {
      kind: 'skipped',
      code: 'limit',
      reason: `not parsed: more than ${job.maxParts} MIME parts`,
      details: { limit: 'parts' },
    };
  }

  // The encoded bytes of the text a reader sees (bounded), read in one pass.
  const raws = new Map<number, Buffer>();
  const truncated = new Set<number>();
  const perPart = RAW_PER_PART * job.maxPartBytes;
  let budget = TEXT_BUDGET_PARTS * perPart;
  const readers = ownParts(parse)
    .filter(isInlineText)
    .map((p) => {
      const size = p.bodyEnd - p.bodyStart;
      const keep = size <= perPart && size <= budget;
      if (keep) budget -= size;
      else truncated.add(p.index);
      const pieces: Buffer[] = [];
      return {
        start: p.bodyStart,
        end: p.bodyEnd,
        data: (b: Buffer) => (keep ? void pieces.push(Buffer.from(b)) : false),
        done: () => keep && raws.set(p.index, Buffer.concat(pieces)),
      };
    });
  await readRanges(messagePieces(job.source), readers);
  const texts = new Map<number, Buffer>();
  for (const [i, raw] of raws)
    texts.set(i, decodedBody(raw, { bodyStart: 0, bodyEnd: raw.length, encoding: parse.parts[i]!.encoding }));

  const { htmlText, present } = textFacts(job.texts);
  const plan = planDisclaimer(parse, texts, truncated, {
    text: job.texts.text,
    present,
    maxPartBytes: job.maxPartBytes,
  });
  if (plan.kind === 'nothing') return { kind: 'unchanged', reason: plan.reason };
  if (plan.kind === 'skip') return { kind: 'skipped', code: plan.code, reason: plan.reason, details: plan.details };

  const edits: PartEdit[] = [];
  for (const t of plan.targets) {
    const raw = raws.get(t.part.index)!;
    if (longestLine(raw) > job.maxLineLength) {
      return {
        kind: 'skipped',
        code: 'limit',
        reason: `a line longer than ${job.maxLineLength} bytes in part ${t.part.path || 'TEXT'}`,
        details: { limit: 'line' },
      };
    }
    const out = editPart(t.part, raw, texts.get(t.part.index)!, t.kind, job.texts, parse.lineBreak);
    if (!out.ok)
      return { kind: 'skipped', code: out.code, reason: out.reason, details: { part: t.part.path || 'TEXT' } };
    edits.push(out.edit);
  }
  edits.sort((a, b) => a.from - b.from);
  const body = new SplicedBody(
    job.body,
    parse.size - job.headerBlock.length,
    edits.map((e) => ({ from: e.from - job.headerBlock.length, to: e.to - job.headerBlock.length, bytes: e.bytes })),
  );
  const problems = await verifyEdits({
    parse,
    edits,
    texts: job.texts,
    htmlText,
    headerBlock: job.headerBlock,
    body,
    signal: job.signal,
  });
  if (problems.length) {
    body.dispose();
    return {
      kind: 'skipped',
      code: 'invariants',
      reason: `disclaimer verify failed: ${problems.join('; ')}`,
      details: { problems },
    };
  }
  return {
    kind: 'rewritten',
    body,
    headerMods: [],
    parts: plan.targets.map((t) => t.part.path || 'TEXT'),
    bytesAdded: body.size - (parse.size - job.headerBlock.length),
    /** Parts whose charset could not carry the text: it went in as its ASCII form. */
    asciiForm: edits.filter((e) => e.ascii).map((e) => e.part.path || 'TEXT'),
  };
}

function longestLine(b: Buffer): number {
  let longest = 0;
  let start = 0;
  for (let lf = b.indexOf(0x0a); lf >= 0; lf = b.indexOf(0x0a, start)) {
    longest = Math.max(longest, lf - start);
    start = lf + 1;
  }
  return Math.max(longest, b.length - start);
}
