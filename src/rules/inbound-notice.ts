// How the inbound (external-sender) notice is shown, and what that does to the sender's DKIM
// signatures. `body` appends the text to the message (breaks every signature without l=),
// `subject` puts a tag in front of the Subject (breaks signatures that cover Subject, which is
// nearly all), `header` adds a banner header only (breaks only a signature that over-signs that
// header name), `auto` picks the most visible one that breaks no valid signature. Mail whose
// From domain publishes DMARC p=reject or p=quarantine is never changed in a way that breaks its
// valid aligned signature: it gets the banner header instead (the receiver would otherwise
// reject or junk it) unless rule authentication ARC-seals what relayguard changes.
import type LibMime from 'libmime';
import { z } from 'zod';
import type { Header, MessageContext, Modification } from '../policy/types.js';
import { authFacts, type AuthFacts } from './auth-facts.js';
import { loadOnFirstUse } from '../primitives/first-use.js';

// Loaded on first use, not by the commands that only read the policy (start-up time).
const libmime = loadOnFirstUse<typeof LibMime>(import.meta.url, 'libmime');

const NOTICE_MODES = ['body', 'subject', 'header', 'auto'] as const;
export type NoticeMode = (typeof NOTICE_MODES)[number];

const headerName = z.string().regex(/^[!-9;-~]+$/, 'not a header field name');

/** The inbound block's own settings (next to text and html). */
export const inboundNoticeFields = {
  /** body: the text in the message; subject: a tag in the Subject; header: a banner header only; auto: see docs. */
  notice: z.enum(NOTICE_MODES).default('body'),
  /** Put in front of the Subject in subject mode, once: a Subject that already has it is left alone. */
  subject_tag: z
    .string()
    .trim()
    .min(1)
    .max(64)
    .regex(/^[^\r\n]+$/, 'one line')
    .default('[EXTERNAL]'),
  /** The banner header of header mode (and of the DMARC fallback); its value is the notice text. */
  banner_header: headerName.default('X-External-Sender'),
};

export interface NoticeSettings {
  notice: NoticeMode;
  subject_tag: string;
  banner_header: string;
  /** The notice text (plain; lines are joined for the banner). */
  text: string;
}

export type NoticePlan =
  | { kind: 'body'; details: Record<string, unknown> }
  | { kind: 'headers'; mods: Modification[]; details: Record<string, unknown> }
  | { kind: 'skip'; reason: string; details: Record<string, unknown> };

/** What a verifier would see, from the authentication facts or, without them, the raw headers. */
interface SignatureView {
  /** Valid signatures (or, without facts, every DKIM-Signature header: we cannot tell). */
  valid: Array<{ domain: string; aligned: boolean; signedHeaders: string[] | null }>;
  /** The From domain asks receivers to reject or junk mail that fails DMARC. */
  strictDmarc: boolean;
  source: 'authentication' | 'headers';
  /** relayguard ARC-seals what it changes. */
  willSeal: boolean;
}

function signatureView(facts: AuthFacts | null, headers: readonly Header[]): SignatureView {
  if (facts) {
    return {
      valid: facts.dkim
        .filter((d) => d.result === 'pass')
        .map((d) => ({ domain: d.domain, aligned: d.aligned, signedHeaders: d.signedHeaders })),
      strictDmarc: facts.dmarc.policy === 'reject' || facts.dmarc.policy === 'quarantine',
      source: 'authentication',
      willSeal: facts.willSeal,
    };
  }
  // No check ran (rule `authentication` off): `auto` assumes every signature is valid and covers
  // every header, so it never breaks one that might matter. The DMARC policy is unknown: an
  // explicitly chosen mode is applied as configured.
  const sigs = headers.filter((h) => h.name.toLowerCase() === 'dkim-signature');
  return {
    valid: sigs.map(() => ({ domain: '', aligned: true, signedHeaders: null })),
    strictDmarc: false,
    source: 'headers',
    willSeal: false,
  };
}

const covers = (sig: { signedHeaders: string[] | null }, name: string) =>
  sig.signedHeaders === null || sig.signedHeaders.includes(name.toLowerCase());

/** The Subject with a tag that is not there yet (case-insensitive, after decoding encoded-words). */
export function taggedSubject(current: string | undefined, tag: string): string | null {
  if (current !== undefined) {
    let decoded = current;
    try {
      decoded = libmime().decodeWords(current);
    } catch {
      // An undecodable Subject is searched as it is.
    }
    if (decoded.replace(/\s+/g, ' ').toLowerCase().includes(tag.toLowerCase())) return null;
  }
  const encodedTag = libmime().encodeWords(tag, 'Q', 52);
  return current === undefined || current.trim() === ''
    ? encodedTag
    : `${encodedTag} ${current.replace(/^[ \t]+/, '')}`;
}

/** The banner header's value: the notice on one line, RFC 2047-encoded where it is not ASCII. */
function bannerValue(text: string): string {
  return libmime().encodeWords(text.replace(/\s+/g, ' ').trim(), 'Q', 52);
}

function subjectMods(headers: readonly Header[], tag: string): Modification[] | null {
  const subject = headers.find((h) => h.name.toLowerCase() === 'subject');
  const value = taggedSubject(subject?.value, tag);
  if (value === null) return null;
  return subject
    ? [{ type: 'changeHeader', name: 'Subject', index: 1, value }]
    : [{ type: 'addHeader', name: 'Subject', value }];
}

/** Decides how this inbound message shows the notice. */
export async function planInboundNotice(msg: MessageContext, s: NoticeSettings): Promise<NoticePlan> {
  const view = signatureView(await authFacts(msg), msg.headers);
  let mode: Exclude<NoticeMode, 'auto'>;
  if (s.notice === 'auto') {
    if (view.valid.length === 0) mode = 'body';
    else if (!view.valid.some((sig) => covers(sig, 'subject'))) mode = 'subject';
    else mode = 'header';
  } else {
    mode = s.notice;
  }
  const details: Record<string, unknown> = { notice: mode };
  if (s.notice === 'auto') details.notice_auto = view.source;
  // A change that breaks a valid aligned signature turns a DMARC pass into a fail downstream.
  const breaks = (sig: SignatureView['valid'][number]) =>
    sig.aligned && (mode === 'body' || (mode === 'subject' && covers(sig, 'subject')));
  // With an ARC seal the receiver can still see that the message passed when it reached us.
  if (mode !== 'header' && view.strictDmarc && !view.willSeal && view.valid.some(breaks)) {
    details.notice = 'header';
    details.notice_fallback = `${mode} would break the DKIM signature that DMARC (p=reject or p=quarantine) relies on`;
    mode = 'header';
  }
  if (mode === 'body') return { kind: 'body', details };
  if (mode === 'subject') {
    const mods = subjectMods(msg.headers, s.subject_tag);
    if (!mods)
      return {
        kind: 'skip',
        reason: `Subject already carries ${s.subject_tag}`,
        details: { ...details, code: 'already-present' },
      };
    return { kind: 'headers', mods, details };
  }
  const banner = bannerValue(s.text);
  // A second pass (mail that comes through the gateway twice) does not stack banners.
  const name = s.banner_header.toLowerCase();
  if (msg.headers.some((h) => h.name.toLowerCase() === name && h.value.replace(/\s+/g, ' ').trim() === banner)) {
    return {
      kind: 'skip',
      reason: `already carries ${s.banner_header}`,
      details: { ...details, code: 'already-present' },
    };
  }
  return { kind: 'headers', mods: [{ type: 'addHeader', name: s.banner_header, value: banner }], details };
}
