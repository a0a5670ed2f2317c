// Which parts of a message get the disclaimer, or why none does. The parts are the ones a
// reader sees as "the message": the text and the HTML leaf of a multipart/alternative group
// (once per group), the root part of a multipart/related, the first body of a multipart/mixed.
// Never attachments, never the inside of an attached message, and nothing at all when the
// message is signed or encrypted, or when the disclaimer is already there.
import { classifyCharset, declaredCharset, decodeText, encodeIfRepresentable, isSupported } from '../charset.js';
import type { MimeParse, MimePart } from '../parse/types.js';
import { findInlinePgp, isProtectedType } from '../signed.js';
import { htmlToText } from '../text-match.js';
import type { TargetKind } from './append.js';

export interface Target {
  part: MimePart;
  kind: TargetKind;
}

export type SkipCode = 'signed' | 'inline-pgp' | 'already-present' | 'too-large' | 'charset' | 'limit' | 'encoding';

export type Plan =
  | { kind: 'rewrite'; targets: Target[] }
  /** Nothing a reader would see as text (e.g. only attachments). */
  | { kind: 'nothing'; reason: string }
  | { kind: 'skip'; code: SkipCode; reason: string; details: Record<string, unknown> };

export interface PlanInput {
  /** The disclaimer as plain text. */
  text: string;
  /** Does a part's visible text already show the disclaimer (index.ts, textFacts)? */
  present: (visibleText: string) => boolean;
  /** Largest decoded text part that may be rewritten. */
  maxPartBytes: number;
}

const TEXT_TYPES = new Set(['text/plain', 'text/html']);

/** A leaf a reader sees as message text (not an attachment). */
export function isInlineText(p: MimePart): boolean {
  return p.kind === 'leaf' && TEXT_TYPES.has(p.contentType) && p.disposition !== 'attachment' && !p.filename;
}

/** Parts of the message itself: not inside an attached message. */
export function ownParts(parse: MimeParse): MimePart[] {
  const inside = new Set<number>();
  for (const p of parse.parts) {
    const parent = p.parent === null ? null : parse.parts[p.parent]!;
    if (parent && (parent.kind === 'message' || inside.has(parent.index))) inside.add(p.index);
  }
  return parse.parts.filter((p) => !inside.has(p.index));
}

/** `texts`: the decoded content of the inline text leaves that were read (see index.ts). */
export function planDisclaimer(
  parse: MimeParse,
  texts: ReadonlyMap<number, Buffer>,
  truncated: ReadonlySet<number>,
  input: PlanInput,
): Plan {
  const root = parse.parts[0];
  if (!root) return { kind: 'nothing', reason: 'empty message' };
  const own = ownParts(parse);
  for (const p of own) {
    if (isProtectedType(p.contentType)) {
      return skip('signed', `signed or encrypted content (${p.contentType} in part ${label(p)})`, {
        part: label(p),
        contentType: p.contentType,
      });
    }
  }
  for (const p of own) {
    const text = texts.get(p.index);
    const armour = text && findInlinePgp(text);
    if (armour) return skip('inline-pgp', `inline PGP (${armour} in part ${label(p)})`, { part: label(p) });
  }
  for (const p of own) {
    const text = texts.get(p.index);
    if (text && input.present(visibleText(p, text)))
      return skip('already-present', `disclaimer already present in part ${label(p)}`, { part: label(p) });
  }

  const chosen = bodyLeaves(parse, root);
  if (chosen.length === 0) return { kind: 'nothing', reason: 'no text part a reader would see' };
  for (const p of chosen) {
    if (truncated.has(p.index) || (texts.get(p.index)?.length ?? 0) > input.maxPartBytes) {
      return skip('too-large', `text part ${label(p)} larger than ${input.maxPartBytes} bytes`, {
        part: label(p),
        bytes: p.bodyEnd - p.bodyStart,
      });
    }
    const charset = declaredCharset(p.charset);
    const convertible = classifyCharset(charset) !== 'iso-2022-jp';
    if (
      !isSupported(charset) ||
      (!convertible && p.contentType !== 'text/html' && !encodeIfRepresentable(input.text, charset))
    ) {
      return skip('charset', `cannot add the disclaimer to charset "${p.charset}" in part ${label(p)}`, {
        part: label(p),
        charset: p.charset,
      });
    }
  }
  return {
    kind: 'rewrite',
    targets: chosen.map((p) => ({ part: p, kind: p.contentType === 'text/html' ? 'html' : 'plain' })),
  };
}

function label(p: MimePart): string {
  return p.path || 'TEXT';
}

function skip(code: SkipCode, reason: string, details: Record<string, unknown>): Plan {
  return { kind: 'skip', code, reason, details };
}

function visibleText(p: MimePart, text: Buffer): string {
  const s = decodeText(text, declaredCharset(p.charset));
  return p.contentType === 'text/html' ? htmlToText(s) : s;
}

/** The leaves of `node` a reader sees as the message body, in document order. */
function bodyLeaves(parse: MimeParse, node: MimePart): MimePart[] {
  const children = () => node.children.map((i) => parse.parts[i]!);
  if (node.kind !== 'multipart') return isInlineText(node) ? [node] : [];
  if (node.disposition === 'attachment' || node.noParts) return [];
  switch (node.contentType) {
    case 'multipart/alternative': {
      // One text and one HTML version per group: the last of each (the preferred one).
      let plain: MimePart | undefined;
      let html: MimePart | undefined;
      for (const child of children()) {
        for (const leaf of bodyLeaves(parse, child)) {
          if (leaf.contentType === 'text/html') html = leaf;
          else plain = leaf;
        }
      }
      return [plain, html].filter((n): n is MimePart => !!n).sort((a, b) => a.index - b.index);
    }
    case 'multipart/related': {
      // The first part is the document; the others are its images.
      const first = children()[0];
      return first ? bodyLeaves(parse, first) : [];
    }
    case 'multipart/digest':
      return [];
    default:
      // mixed and anything unknown: the first part that has a body to show.
      for (const child of children()) {
        const found = bodyLeaves(parse, child);
        if (found.length) return found;
      }
      return [];
  }
}
