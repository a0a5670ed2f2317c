// One pass over a message for the content rule: every leaf part is decoded once; attachment
// names, types and sizes are checked as parts begin and end, zip attachments are listed, text
// parts are converted to UTF-8 and searched by the pattern rules of the message's direction.
// What is kept in memory is bounded: one window of a text part (max_text_per_part; the whole
// part is searched, window by window), one zip up to zip.max_size.
import type Iconv from 'iconv-lite';
import { messagePieces } from '../../mime/parse/ranges.js';
import { nextReadings, sharedParse, type ParseSource } from '../../mime/parse/shared.js';
import { walkMime, type DecodedHeader, type PartInfo, type PartSink, type WalkResult } from '../../mime/scan-parts.js';
import { listZip, looksLikeZip } from '../../mime/zip-listing.js';
import type { Direction } from '../../policy/types.js';
import { pickDirection } from '../common.js';
import { blockedExtension, looksLikeZipName, shownName, typeBlocked, ZIP_TYPES } from './attachments.js';
import { detectorMatcher, phraseMatcher, regexMatcher, type Matcher } from './patterns.js';
import type { ContentConfig, PatternRuleConfig, Target } from './schema.js';
import { readings } from './fold.js';
import { htmlToText, normalizeSpace } from './text.js';
import { withoutHiddenElements } from './visible-html.js';
import { loadOnFirstUse } from '../../primitives/first-use.js';

// Loaded on first use, not by the commands that only read the policy (start-up time).
const iconv = loadOnFirstUse<typeof Iconv>(import.meta.url, 'iconv-lite');

export type FindingAction = 'reject' | 'tempfail' | 'quarantine' | 'tag';

export interface Finding {
  /** "attachments", "limits" or the name of a pattern rule. */
  rule: string;
  action: FindingAction;
  /** Safe to show to the sender: names what was found, never the data (card numbers are masked). */
  reason: string;
  part?: string;
}

export interface ScanReport {
  findings: Finding[];
  walk: WalkResult;
  /** Text parts longer than max_text_per_part, searched in several windows. */
  windowed: string[];
  /** What readers could disagree on in this message's structure (every reading was scanned). */
  ambiguities: string[];
}

export interface CompiledPatternRule {
  name: string;
  direction: Direction | 'both';
  where: readonly Target[];
  action: PatternRuleConfig['action'];
  matcher: Matcher;
}

/** Everything the scan needs, built once when the policy is loaded. */
export interface CompiledContent {
  config: ContentConfig;
  blockedExtensions: ReadonlySet<string>;
  rules: CompiledPatternRule[];
}

export function compileContent(config: ContentConfig): CompiledContent {
  return {
    config,
    blockedExtensions: new Set(config.attachments.blocked_extensions),
    rules: config.rules.map((r) => ({
      name: r.name,
      direction: r.direction,
      where: r.where,
      action: r.action,
      matcher: r.phrase
        ? phraseMatcher(r.phrase, r.case_sensitive)
        : r.regex
          ? regexMatcher(r.regex, r.case_sensitive)
          : detectorMatcher(r.detector!),
    })),
  };
}

/** The header line of a uuencoded (or base64 "begin-base64") file. Linear: no nested quantifiers. */
const UUENCODE_BEGIN = /^begin(?:-base64)? [0-7]{3,4} ([^\r\n]+)$/gm;

/** The part number mailsplit gives the body of a single-part message. */
const SINGLE_PART = 'TEXT';

const applies = (d: Direction | 'both', direction: Direction) => d === 'both' || d === direction;

/** A part with a file name or an attachment disposition: what an attachment size limit counts. */
const isAttachment = (part: PartInfo) => part.names.length > 0 || part.disposition === 'attachment';

/**
 * Scans the message's shared parse; where readers could disagree on its structure, every other
 * reading is scanned too (or the message is refused, by limits.ambiguous), so that no part a
 * client may show goes unseen.
 */
export async function scanMessage(
  source: ParseSource,
  compiled: CompiledContent,
  direction: Direction,
  signal: AbortSignal,
): Promise<ScanReport> {
  const scan = new MessageScan(compiled, direction);
  const { limits } = compiled.config;
  const mimeLimits = { maxDepth: limits.max_depth, maxParts: limits.max_parts, maxHeaderBytes: limits.max_header_size };
  const open = () => messagePieces(source);
  const parse = await sharedParse(source, signal);
  const walk = await walkMime(open, mimeLimits, scan, signal, parse);
  const ambiguities = parse.ambiguities;
  if (walk.status === 'limit') {
    scan.findings.push({ rule: 'limits', action: limits.action, reason: `Message structure refused: ${walk.detail}` });
  } else if (ambiguities.length && limits.ambiguous === 'reject') {
    scan.findings.push({
      rule: 'limits',
      action: limits.action,
      reason: `Message structure refused: ambiguous MIME (${ambiguities.join(', ')})`,
    });
  } else if (walk.status === 'complete' && ambiguities.length) {
    const readings = [parse];
    for (let todo = nextReadings(readings); todo.length; todo = nextReadings(readings)) {
      for (const r of todo) readings.push(await sharedParse(source, signal, r));
    }
    for (const other of readings.slice(1)) {
      const again = await walkMime(open, mimeLimits, scan, signal, other);
      if (again.status === 'limit') {
        scan.findings.push({
          rule: 'limits',
          action: limits.action,
          reason: `Message structure refused: ${again.detail}`,
        });
      }
      if (again.status !== 'complete') break;
    }
  }
  return { findings: scan.findings, walk, windowed: scan.windowed, ambiguities };
}

class MessageScan {
  readonly findings: Finding[] = [];
  readonly windowed: string[] = [];
  private readonly rules: CompiledPatternRule[];
  private readonly attachmentsApply: boolean;
  private readonly attachmentAction: FindingAction;
  /** Pattern rules report once per message. */
  private readonly matched = new Set<string>();

  constructor(
    private readonly compiled: CompiledContent,
    private readonly direction: Direction,
  ) {
    this.rules = compiled.rules.filter((r) => applies(r.direction, direction));
    this.attachmentsApply = applies(compiled.config.attachments.direction, direction);
    this.attachmentAction = pickDirection(compiled.config.attachments.action, direction);
  }

  /** A refusal is final: the rest of the message cannot change the outcome. */
  get done(): boolean {
    return this.findings.some((f) => f.action === 'reject');
  }

  onHeaders(headers: DecodedHeader[]): void {
    const lines = headers.flatMap((h) => readings(normalizeSpace(`${h.name}: ${h.value}`)));
    const subjects = headers
      .filter((h) => h.name.toLowerCase() === 'subject')
      .flatMap((h) => readings(normalizeSpace(h.value)));
    for (const rule of this.rules) {
      if (rule.where.includes('headers')) this.search(rule, lines, 'headers');
      if (rule.where.includes('subject')) this.search(rule, subjects, 'subject');
    }
  }

  onPart(part: PartInfo): PartSink | null {
    if (this.attachmentsApply) this.checkAttachmentMeta(part);
    const textRules = this.rules.filter((r) => r.where.includes('body'));
    const isText = part.contentType.startsWith('text/');
    return isText ? new TextPart(this, part, textRules) : new BinaryPart(this, part);
  }

  add(finding: Finding): void {
    // The same finding twice (a uuencoded name in the overlap of two windows) is one finding.
    if (this.findings.some((f) => f.rule === finding.rule && f.reason === finding.reason && f.part === finding.part))
      return;
    this.findings.push(finding);
  }

  get config(): ContentConfig {
    return this.compiled.config;
  }

  get checksAttachments(): boolean {
    return this.attachmentsApply;
  }

  search(rule: CompiledPatternRule, texts: string[], where: string, part?: string): void {
    if (this.matched.has(rule.name)) return;
    for (const text of texts) {
      let lower: string | undefined;
      const hit = rule.matcher.match(text, () => (lower ??= text.toLowerCase()));
      if (!hit) continue;
      this.matched.add(rule.name);
      // "TEXT" is the body of a message that is not multipart: just "body".
      const place = part && part !== SINGLE_PART ? `${where} part ${part}` : where;
      const reason =
        rule.action === 'reject'
          ? `Message refused by content rule "${rule.name}" (${hit.what} in ${place})`
          : `content rule "${rule.name}": ${hit.what} in ${place}`;
      this.add({ rule: rule.name, action: rule.action, reason, ...(part ? { part } : {}) });
      return;
    }
  }

  private checkAttachmentMeta(part: PartInfo): void {
    const a = this.config.attachments;
    for (const name of part.names) {
      const ext = blockedExtension(name, this.compiled.blockedExtensions);
      if (ext) {
        this.add({
          rule: 'attachments',
          action: this.attachmentAction,
          reason: `Blocked attachment "${shownName(name)}" (file type .${ext})`,
          part: part.id,
        });
        return;
      }
    }
    if (typeBlocked(part.contentType, a.blocked_types)) {
      const named = part.names[0] ? ` ("${shownName(part.names[0])}")` : '';
      this.add({
        rule: 'attachments',
        action: this.attachmentAction,
        reason: `Blocked attachment type ${part.contentType}${named}`,
        part: part.id,
      });
    }
  }

  /** Does the decoded size of this part decide anything (an attachment size limit)? */
  sizeMatters(part: PartInfo): boolean {
    return this.attachmentsApply && this.config.attachments.max_size !== undefined && isAttachment(part);
  }

  /** Size and zip checks once a part's content is known; `size` counts only where sizeMatters(). */
  attachmentEnd(part: PartInfo, size: number, zip: Buffer | 'too-large' | null): void {
    if (!this.attachmentsApply) return;
    const a = this.config.attachments;
    const name = part.names[0] ?? `part ${part.id}`;
    if (this.sizeMatters(part) && size > a.max_size!) {
      this.add({
        rule: 'attachments',
        action: this.attachmentAction,
        reason: `Attachment "${shownName(name)}" is larger than ${a.max_size} bytes`,
        part: part.id,
      });
    }
    if (zip === null) return;
    if (zip === 'too-large') {
      this.unreadableZip(part, name, `larger than ${a.zip.max_size} bytes`);
      return;
    }
    const listing = listZip(zip, {
      maxEntries: a.zip.max_entries,
      nested: a.zip.nested,
      maxNestedBytes: a.zip.max_size,
    });
    for (const member of listing.members) {
      const ext = blockedExtension(member.name, this.compiled.blockedExtensions);
      if (!ext) continue;
      const inner = member.container ? `"${shownName(member.container)}" with ` : '';
      this.add({
        rule: 'attachments',
        action: this.attachmentAction,
        reason: `Blocked attachment "${shownName(name)}" contains ${inner}"${shownName(member.name)}" (file type .${ext})`,
        part: part.id,
      });
      return;
    }
    if (listing.incomplete) this.unreadableZip(part, name, listing.problems.join('; '));
  }

  private unreadableZip(part: PartInfo, name: string, why: string): void {
    const action = pickDirection(this.config.attachments.zip.unreadable, this.direction);
    if (action === 'accept') return;
    this.add({
      rule: 'attachments',
      action,
      reason: `Archive "${shownName(name)}" cannot be inspected (${why})`,
      part: part.id,
    });
  }

  /** uuencoded files inside a text part ("begin 644 name"): Outlook and others still open them. */
  checkEmbeddedFiles(part: PartInfo, text: string): void {
    if (!this.attachmentsApply) return;
    for (const m of text.matchAll(UUENCODE_BEGIN)) {
      const name = m[1]!.trim();
      const ext = blockedExtension(name, this.compiled.blockedExtensions);
      if (!ext) continue;
      this.add({
        rule: 'attachments',
        action: this.attachmentAction,
        reason: `Blocked attachment "${shownName(name)}" (uuencoded, file type .${ext})`,
        part: part.id,
      });
      return;
    }
  }

  /** A text part longer than max_text_per_part, searched in several windows (for the trace). */
  noteWindowed(part: PartInfo, windows: number): void {
    this.windowed.push(`${part.id} (${windows} windows)`);
  }
}

/**
 * Characters of a window carried into the next one: a phrase, a card number or a "begin 644"
 * line cut by a window's end is still found whole in the next window.
 */
const WINDOW_OVERLAP = 4096;

/**
 * Decodes a text part to UTF-8 and searches all of it, in windows of max_text_per_part decoded
 * bytes (each starting with the last WINDOW_OVERLAP characters of the one before), so memory
 * stays bounded and no text goes unsearched, however long the part.
 */
class TextPart implements PartSink {
  private readonly decoder: ReturnType<typeof Iconv.getDecoder>;
  private pieces: string[] = [];
  private windowBytes = 0;
  private carry = '';
  private windows = 0;
  private size = 0;
  private readonly max: number;

  constructor(
    private readonly scan: MessageScan,
    private readonly part: PartInfo,
    private readonly rules: CompiledPatternRule[],
  ) {
    const charset = part.charset && iconv().encodingExists(part.charset) ? part.charset : 'utf-8';
    this.decoder = iconv().getDecoder(charset);
    this.max = scan.config.limits.max_text_per_part;
  }

  /** Only the size matters when the text is not searched at all. */
  get wantsContent(): boolean {
    return this.wanted;
  }

  skip(decodedBytes: number): void {
    this.size += decodedBytes;
  }

  write(decoded: Buffer): void {
    this.size += decoded.length;
    if (!this.wanted) return;
    let rest = decoded;
    while (rest.length > 0) {
      const room = this.max - this.windowBytes;
      const take = rest.length <= room ? rest : rest.subarray(0, room);
      rest = rest.subarray(take.length);
      this.pieces.push(this.decoder.write(take));
      this.windowBytes += take.length;
      if (this.windowBytes >= this.max) this.searchWindow(false);
    }
  }

  /** Is the text needed at all: body rules, or uuencoded files to look for. */
  private get wanted(): boolean {
    return this.rules.length > 0 || this.scan.checksAttachments;
  }

  end(): void {
    this.scan.attachmentEnd(this.part, this.size, null);
    if (!this.wanted) return;
    this.pieces.push(this.decoder.end() ?? '');
    this.searchWindow(true);
    if (this.windows > 1) this.scan.noteWindowed(this.part, this.windows);
  }

  private searchWindow(last: boolean): void {
    const raw = this.carry + this.pieces.join('');
    this.pieces = [];
    this.windowBytes = 0;
    this.windows++;
    this.carry = last ? '' : raw.slice(-WINDOW_OVERLAP);
    this.scan.checkEmbeddedFiles(this.part, raw);
    if (this.rules.length === 0) return;
    // Every reading a person could get: the HTML as shown (hidden elements removed) and with
    // everything in it, each as written and with look-alike letters and dashes folded.
    const shown =
      this.part.contentType === 'text/html' ? [htmlToText(withoutHiddenElements(raw)), htmlToText(raw)] : [raw];
    const texts = [...new Set(shown.map(normalizeSpace).flatMap(readings))];
    for (const rule of this.rules) this.scan.search(rule, texts, 'body', this.part.id);
  }
}

/** Bytes needed to recognise a zip by its signature. */
const ZIP_MAGIC_BYTES = 4;

/** Counts a non-text part and keeps it only while it may be a zip to list. */
class BinaryPart implements PartSink {
  private size = 0;
  private chunks: Buffer[] | null;
  /** null: not known yet (fewer than ZIP_MAGIC_BYTES seen). */
  private isZip: boolean | null = null;
  private tooLarge = false;
  private readonly max: number;
  /** Fixed per part: measuring a large attachment that no size limit applies to is wasted work. */
  readonly wantsSize: boolean;

  constructor(
    private readonly scan: MessageScan,
    private readonly part: PartInfo,
  ) {
    const zip = scan.config.attachments.zip;
    this.chunks = scan.checksAttachments && zip.scan ? [] : null;
    this.max = zip.max_size;
    this.wantsSize = scan.sizeMatters(part);
    // A part that says it is a zip is listed (or reported unreadable) even if its bytes are not.
    if (part.names.some(looksLikeZipName) || ZIP_TYPES.includes(part.contentType)) this.isZip = true;
  }

  /** Only the size matters once the part is known not to be a zip to list (or too large to). */
  get wantsContent(): boolean {
    return this.chunks !== null;
  }

  skip(decodedBytes: number): void {
    this.size += decodedBytes;
    if (this.chunks && this.size > this.max) {
      this.tooLarge = true;
      this.chunks = null;
    }
  }

  write(decoded: Buffer): void {
    this.size += decoded.length;
    if (!this.chunks) return;
    if (this.size > this.max) {
      this.tooLarge = true;
      this.chunks = null;
      return;
    }
    this.chunks.push(decoded);
    if (this.isZip === null && this.size >= ZIP_MAGIC_BYTES) {
      this.isZip = looksLikeZip(Buffer.concat(this.chunks).subarray(0, ZIP_MAGIC_BYTES));
      if (!this.isZip) this.chunks = null;
    }
  }

  end(): void {
    let zip: Buffer | 'too-large' | null = null;
    if (this.isZip && this.tooLarge) zip = 'too-large';
    else if (this.chunks && (this.isZip || looksLikeZip(Buffer.concat(this.chunks)))) zip = Buffer.concat(this.chunks);
    this.scan.attachmentEnd(this.part, this.size, zip);
  }
}
