// The check that runs after every rewrite, on the tree recorded from the rewritten output: the
// same MIME tree (same parts, same order, same types), every part that was not rewritten
// byte-identical (header block and body, compared byte for byte or by hash: byte-digest.ts) and in the same place (layout), every
// delimiter, preamble and epilogue byte-identical, and the disclaimer readable in each rewritten
// part. The rewritten parts themselves are parsed again on their own (disclaimer.ts) and must
// not contain a line the Splitter would take for a delimiter (newDelimiters): with everything
// else byte-identical, that is what keeps a parse of the new message the same tree as before.
// Any violation means the original is delivered instead.
import { declaredCharset, decodeText } from './charset.js';
import type { ByteDigest } from './byte-digest.js';
import type { LayoutRun, MimeTree } from './mime-tree.js';
import type { TargetKind } from './disclaimer-plan.js';
import { containsText, htmlToText } from './text-match.js';

/** Enough to say what went wrong without flooding the log. */
const MAX_VIOLATIONS = 10;

export interface RewrittenPart {
  kind: TargetKind;
  /** The visible text that must now be found in the part. */
  needle: string;
}

export function checkInvariants(before: MimeTree, after: MimeTree, rewritten: ReadonlyMap<number, RewrittenPart>): string[] {
  const problems: string[] = [];
  const add = (p: string) => {
    if (problems.length < MAX_VIOLATIONS) problems.push(p);
  };
  if (before.nodes.length !== after.nodes.length) add(`part count changed from ${before.nodes.length} to ${after.nodes.length}`);
  if (!sameBytes(before.structure, after.structure)) add('delimiters, preamble or epilogue changed');
  if (before.layout && after.layout && !sameLayout(before.layout, after.layout, rewritten)) add('parts moved or changed size outside the rewritten ones');
  const n = Math.min(before.nodes.length, after.nodes.length);
  for (let i = 0; i < n; i++) {
    const a = before.nodes[i]!;
    const b = after.nodes[i]!;
    const where = `part ${a.partNr}`;
    if (a.partNr !== b.partNr || a.parent !== b.parent) add(`${where} moved in the tree (now ${b.partNr})`);
    if (a.contentType !== b.contentType || a.multipart !== b.multipart) add(`${where} changed type from ${a.contentType} to ${b.contentType}`);
    const target = rewritten.get(i);
    if (!target) {
      if (!sameBytes(a.header, b.header)) add(`${where} header changed`);
      if (!sameBytes(a.body, b.body)) add(`${where} body changed`);
      continue;
    }
    if (!b.text || b.textTruncated) {
      add(`${where} could not be read back`);
      continue;
    }
    const decoded = decodeText(b.text, declaredCharset(b.charset));
    const visible = target.kind === 'html' ? htmlToText(decoded) : decoded;
    if (!containsText(visible, target.needle)) add(`${where} does not contain the disclaimer`);
  }
  return problems;
}

/** Both absent (a multipart has no body of its own), or both there with the same bytes. */
function sameBytes(a: ByteDigest | null, b: ByteDigest | null): boolean {
  return a === null || b === null ? a === b : a.sameAs(b);
}

/**
 * Same runs in the same order with the same sizes, except the header blocks and bodies of
 * rewritten parts, which may change size (a body that was empty may appear, so they are left
 * out before the runs around them are joined).
 */
function sameLayout(a: readonly LayoutRun[], b: readonly LayoutRun[], rewritten: ReadonlyMap<number, unknown>): boolean {
  const x = normalizeLayout(a, rewritten);
  const y = normalizeLayout(b, rewritten);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p.kind !== q.kind || p.ordinal !== q.ordinal) return false;
    if (p.bytes !== q.bytes && !(p.kind === 'head' && rewritten.has(p.ordinal))) return false;
  }
  return true;
}

function normalizeLayout(runs: readonly LayoutRun[], rewritten: ReadonlyMap<number, unknown>): LayoutRun[] {
  const out: LayoutRun[] = [];
  for (const r of runs) {
    if (r.kind === 'body' && rewritten.has(r.ordinal)) continue;
    const last = out[out.length - 1];
    if (last && last.kind === r.kind && last.ordinal === r.ordinal) last.bytes += r.bytes;
    else out.push({ ...r });
  }
  return out;
}

/**
 * True when `part` (a rewritten part, header block and body) has a line the Splitter would
 * take for the delimiter of one of the message's multiparts: "--boundary" or "--boundary--",
 * nothing else on the line (mailsplit's compareBoundary). Every boundary of the message counts,
 * not only the enclosing ones: stricter than the Splitter, never looser.
 */
export function newDelimiters(part: Buffer, tree: MimeTree): boolean {
  const boundaries = tree.nodes.filter((n) => n.boundary).map((n) => Buffer.from(`--${n.boundary}`, 'latin1'));
  if (!boundaries.length) return false;
  let start = 0;
  while (start < part.length) {
    let end = part.indexOf(0x0a, start);
    if (end < 0) end = part.length;
    let from = start;
    let to = end;
    while (from < to && part[from] === 0x0d) from++;
    while (to > from && part[to - 1] === 0x0d) to--;
    if (to - from >= 2 && part[from] === 0x2d && part[from + 1] === 0x2d) {
      const line = part.subarray(from, to);
      for (const b of boundaries) {
        if (line.length !== b.length && line.length !== b.length + 2) continue;
        if (line.subarray(0, b.length).equals(b) && (line.length === b.length || (line[b.length] === 0x2d && line[b.length + 1] === 0x2d))) return true;
      }
    }
    start = end + 1;
  }
  return false;
}
