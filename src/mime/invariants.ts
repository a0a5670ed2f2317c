// The check that runs after every rewrite, on the rewritten message parsed again from scratch:
// the same MIME tree (same parts, same order, same types), every part that was not rewritten
// byte-identical (header block and body, by hash), every delimiter, preamble and epilogue
// byte-identical, and the disclaimer readable in each rewritten part. Any violation means the
// original is delivered instead.
import { declaredCharset, decodeText } from './charset.js';
import type { MimeTree } from './mime-tree.js';
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
  if (before.structureHash !== after.structureHash) add('delimiters, preamble or epilogue changed');
  const n = Math.min(before.nodes.length, after.nodes.length);
  for (let i = 0; i < n; i++) {
    const a = before.nodes[i]!;
    const b = after.nodes[i]!;
    const where = `part ${a.partNr}`;
    if (a.partNr !== b.partNr || a.parent !== b.parent) add(`${where} moved in the tree (now ${b.partNr})`);
    if (a.contentType !== b.contentType || a.multipart !== b.multipart) add(`${where} changed type from ${a.contentType} to ${b.contentType}`);
    const target = rewritten.get(i);
    if (!target) {
      if (a.headerHash !== b.headerHash) add(`${where} header changed`);
      if (a.bodyHash !== b.bodyHash) add(`${where} body changed`);
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
