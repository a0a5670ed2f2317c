// Which parts of a message get the disclaimer, or why none does. The parts are the ones a
// reader sees as "the message": the text and the HTML leaf of a multipart/alternative group
// (once per group), the root part of a multipart/related, the first body of a multipart/mixed.
// Never attachments, never the inside of an attached message, and nothing at all when the
// message is signed or encrypted, or when the disclaimer is already there.
import { classifyCharset, declaredCharset, decodeText, encodeIfRepresentable, isSupported } from './charset.js';
import { isInlineText, type MimeTree, type TreeNode } from './mime-tree.js';
import { findInlinePgp, isProtectedType } from './signed.js';
import { containsAnyText, htmlToText } from './text-match.js';

export type TargetKind = 'plain' | 'html';

export interface Target {
  ordinal: number;
  kind: TargetKind;
  partNr: string;
}

export type SkipCode = 'signed' | 'inline-pgp' | 'already-present' | 'too-large' | 'charset' | 'limit';

export type Plan =
  | { kind: 'rewrite'; targets: Target[] }
  /** Nothing a reader would see as text (e.g. only attachments). */
  | { kind: 'nothing'; reason: string }
  | { kind: 'skip'; code: SkipCode; reason: string; details: Record<string, unknown> };

export interface PlanInput {
  /** The disclaimer as plain text, and the visible text of its HTML version. */
  text: string;
  htmlText: string;
  /** Largest decoded text part that may be rewritten. */
  maxPartBytes: number;
}

export function planDisclaimer(tree: MimeTree, input: PlanInput): Plan {
  const root = tree.nodes[0];
  if (!root) return { kind: 'nothing', reason: 'empty message' };

  for (const n of tree.nodes) {
    if (isProtectedType(n.contentType)) {
      return skip('signed', `signed or encrypted content (${n.contentType} in part ${n.partNr})`, { part: n.partNr, contentType: n.contentType });
    }
  }
  for (const n of tree.nodes) {
    if (!n.text) continue;
    const armour = findInlinePgp(n.text);
    if (armour) return skip('inline-pgp', `inline PGP (${armour} in part ${n.partNr})`, { part: n.partNr });
  }
  const present = containsAnyText(input.htmlText ? [input.text, input.htmlText] : [input.text]);
  for (const n of tree.nodes) {
    if (!n.text) continue;
    if (present(visibleText(n))) {
      return skip('already-present', `disclaimer already present in part ${n.partNr}`, { part: n.partNr });
    }
  }

  const chosen = bodyLeaves(tree, root);
  if (chosen.length === 0) return { kind: 'nothing', reason: 'no text part a reader would see' };
  for (const n of chosen) {
    if (n.textTruncated || (n.text?.length ?? 0) > input.maxPartBytes) {
      return skip('too-large', `text part ${n.partNr} larger than ${input.maxPartBytes} bytes`, { part: n.partNr, bytes: n.bodyBytes });
    }
    const charset = declaredCharset(n.charset);
    const convertible = classifyCharset(charset) !== 'iso-2022-jp';
    if (!isSupported(charset) || (!convertible && n.contentType !== 'text/html' && !encodeIfRepresentable(input.text, charset))) {
      return skip('charset', `cannot add the disclaimer to charset "${n.charset}" in part ${n.partNr}`, { part: n.partNr, charset: n.charset });
    }
  }
  return {
    kind: 'rewrite',
    targets: chosen.map((n) => ({ ordinal: n.ordinal, kind: n.contentType === 'text/html' ? 'html' : 'plain', partNr: n.partNr })),
  };
}

function skip(code: SkipCode, reason: string, details: Record<string, unknown>): Plan {
  return { kind: 'skip', code, reason, details };
}

function visibleText(n: TreeNode): string {
  const s = decodeText(n.text!, declaredCharset(n.charset));
  return n.contentType === 'text/html' ? htmlToText(s) : s;
}

/** The leaves of `node` a reader sees as the message body, in document order. */
function bodyLeaves(tree: MimeTree, node: TreeNode): TreeNode[] {
  const children = () => node.children.map((i) => tree.nodes[i]!);
  if (!node.multipart) return isInlineText(node) ? [node] : [];
  if (node.disposition === 'attachment') return [];
  switch (node.multipart) {
    case 'alternative': {
      // One text and one HTML version per group: the last of each (the preferred one).
      let plain: TreeNode | undefined;
      let html: TreeNode | undefined;
      for (const child of children()) {
        for (const leaf of bodyLeaves(tree, child)) {
          if (leaf.contentType === 'text/html') html = leaf;
          else plain = leaf;
        }
      }
      return [plain, html].filter((n): n is TreeNode => !!n).sort((a, b) => a.ordinal - b.ordinal);
    }
    case 'related': {
      // The first part is the document; the others are its images.
      const first = children()[0];
      return first ? bodyLeaves(tree, first) : [];
    }
    case 'digest':
      return [];
    default:
      // mixed and anything unknown: the first part that has a body to show.
      for (const child of children()) {
        const found = bodyLeaves(tree, child);
        if (found.length) return found;
      }
      return [];
  }
}
