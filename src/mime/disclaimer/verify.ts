// The check a rewritten message must pass before it replaces the original: parsed again from
// the bytes that would be sent, it has the same parts (type, encoding, charset) at the same
// places (shifted by what was added before them), every part not edited is untouched, every
// edited part decodes to its original text with the disclaimer added once, a flowed part reads
// (unflowed) as its original text followed by the disclaimer on lines of its own, and no bare
// LF went into a CRLF message. Every delimiter is still one: otherwise the parts would differ.
import { declaredCharset, decodeText } from '../charset.js';
import { decodedBody } from '../parse/decode.js';
import { MimeParser } from '../parse/parser.js';
import { isSync, RangeFeed } from '../parse/ranges.js';
import type { MimeParse, MimePart } from '../parse/types.js';
import { htmlToText, normalizeForMatch } from '../text-match.js';
import type { DisclaimerTexts, PartEdit } from './append.js';
import { unflow } from './flowed.js';
import type { SplicedBody } from './spliced-body.js';

export interface VerifyInput {
  parse: MimeParse;
  edits: readonly PartEdit[];
  texts: DisclaimerTexts;
  htmlText: string;
  headerBlock: Buffer;
  body: SplicedBody;
  signal: AbortSignal;
}

const LF = 0x0a;
const CR = 0x0d;

export async function verifyEdits(v: VerifyInput): Promise<string[]> {
  const before = v.parse;
  const label = (p: MimePart) => p.path || 'TEXT';
  const shift = (offset: number) =>
    v.edits.reduce((n, e) => (e.to <= offset && e.from < offset ? n + e.bytes.length - (e.to - e.from) : n), 0);
  // One pass over the new message: it is parsed, and the edited parts' bytes are taken where
  // they must now be (checked against the parse below).
  const raws = new Map<number, Buffer[]>();
  const readers = [...v.edits]
    .sort((x, y) => x.part.index - y.part.index)
    .map((e) => {
      const pieces: Buffer[] = [];
      raws.set(e.part.index, pieces);
      const start = e.part.bodyStart + shift(e.part.bodyStart);
      return {
        start,
        end: start + (e.part.bodyEnd - e.part.bodyStart) + e.bytes.length - (e.to - e.from),
        data: (b: Buffer) => void pieces.push(Buffer.from(b)),
        done: () => undefined,
      };
    });
  const feed = new RangeFeed(readers);
  const parser = new MimeParser();
  const body = v.body.pieces();
  const take = (c: Buffer) => {
    parser.write(c);
    feed.push(c);
  };
  take(v.headerBlock);
  if (isSync(body)) for (const c of body) take(c);
  else {
    for await (const c of body) {
      if (v.signal.aborted) throw v.signal.reason;
      take(typeof c === 'string' ? Buffer.from(c) : c);
    }
  }
  feed.end();
  const after = parser.end();

  if (after.parts.length !== before.parts.length) {
    return [`the new message has ${after.parts.length} MIME parts, the original ${before.parts.length}`];
  }
  const problems: string[] = [];
  const edited = new Map(v.edits.map((e) => [e.part.index, e]));
  for (const b of before.parts) {
    const a = after.parts[b.index]!;
    if (
      a.kind !== b.kind ||
      a.contentType !== b.contentType ||
      a.path !== b.path ||
      a.encoding !== b.encoding ||
      a.charset !== b.charset
    ) {
      problems.push(`part ${label(b)} reads back as ${a.contentType} (${a.encoding || '7bit'}) at ${label(a)}`);
      continue;
    }
    if (a.bodyStart !== b.bodyStart + shift(b.bodyStart)) problems.push(`part ${label(b)} moved`);
    else if (!edited.has(b.index) && b.kind === 'leaf' && a.bodyEnd - a.bodyStart !== b.bodyEnd - b.bodyStart)
      problems.push(`part ${label(b)} changed size`);
  }
  if (problems.length) return problems;

  const crlf = before.lineBreak === '\r\n';
  for (const e of v.edits) {
    const where = `part ${label(e.part)}`;
    if (crlf && hasBareLf(e.bytes)) problems.push(`${where}: a bare LF added to a CRLF message`);
    // What was taken is where the part had to end up; the parse says where it does end (the
    // line break before the next delimiter is not the part's).
    const a = after.parts[e.part.index]!;
    const taken = Buffer.concat(raws.get(e.part.index)!);
    if (a.bodyEnd - a.bodyStart > taken.length) {
      problems.push(`${where}: longer than its edit makes it`);
      continue;
    }
    const raw = taken.subarray(0, a.bodyEnd - a.bodyStart);
    const now = decodedBody(raw, { bodyStart: 0, bodyEnd: raw.length, encoding: e.part.encoding });
    const problem = checkText(e, now, v.htmlText);
    if (problem) problems.push(`${where}: ${problem}`);
  }
  return problems;
}

/** The decoded part is before + added + (line breaks only) + after, and shows the disclaimer once. */
function checkText(e: PartEdit, now: Buffer, htmlText: string): string | null {
  const { before, added, after } = e.expect;
  const head = Buffer.concat([before, added]);
  if (now.length < head.length + after.length || !now.subarray(0, head.length).equals(head))
    return 'the original text or the disclaimer did not come back';
  if (!now.subarray(now.length - after.length).equals(after)) return 'the text after the disclaimer changed';
  const between = now.subarray(head.length, now.length - after.length);
  if (between.some((c) => c !== LF && c !== CR)) return 'unexpected text around the disclaimer';
  const charset = declaredCharset(e.part.charset);
  let visible = decodeText(now, charset);
  if (e.kind === 'html') visible = htmlToText(visible);
  else if (e.part.flowed) {
    visible = unflow(visible, e.part.delsp);
    const original = unflow(decodeText(before, charset), e.part.delsp).replace(/\s+$/, '');
    if (!visible.startsWith(original)) return 'the flowed text reads differently';
    const first = e.text.split('\r\n')[0]!.replace(/[ \t]+$/, '');
    if (!visible.split('\n').some((l) => l.replace(/[ \t]+$/, '') === first))
      return 'the disclaimer does not read as lines of its own';
  }
  const needle = normalizeForMatch(e.kind === 'html' ? htmlText : e.text);
  const count = needle ? normalizeForMatch(visible).split(needle).length - 1 : 1;
  if (count !== 1) return `the disclaimer appears ${count} times`;
  return null;
}

function hasBareLf(b: Buffer): boolean {
  for (let i = b.indexOf(LF); i >= 0; i = b.indexOf(LF, i + 1)) if (i === 0 || b[i - 1] !== CR) return true;
  return false;
}
