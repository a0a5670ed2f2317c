// The shape of one MIME parse: every node of the message in document order, with byte offsets
// into the whole message (header block, blank line, body) as the MTA handed it over. Nothing
// here holds message bytes beyond the (bounded) header fields: readers fetch a part's bytes by
// its offsets (ranges.ts), so one parse serves every rule.

export type PartKind = 'multipart' | 'message' | 'leaf';

export interface HeaderField {
  /** As written. */
  name: string;
  /** Lower-case name. */
  key: string;
  /** After the colon, unfolded (line breaks of folding removed), leading blanks removed. */
  value: string;
}

export interface MimePart {
  /** Position in document order; 0 is the message itself. */
  index: number;
  parent: number | null;
  children: number[];
  /** Containers above it: multiparts and messages. */
  depth: number;
  /** IMAP-style part number ("1.2"); "" for the message itself. */
  path: string;
  kind: PartKind;
  /** Lower-case type/subtype as RFC 2045 readers settle it (text/plain when missing or invalid). */
  contentType: string;
  /** Content-Type parameters, lower-case keys, RFC 2231 continuations joined and decoded. */
  params: Record<string, string>;
  /** The multipart's boundary (without the leading "--"). */
  boundary?: string;
  /** Declared charset parameter, as written ("" when none). */
  charset: string;
  /** Lower-case Content-Transfer-Encoding, trimmed; "" when none. */
  encoding: string;
  /** Lower-case disposition type ("attachment", "inline") or "". */
  disposition: string;
  /** The name a client saves the part under: Content-Disposition filename, else Content-Type name. */
  filename: string | null;
  /** Every file name the part declares (both headers, every copy), decoded. */
  names: string[];
  /** text/plain; format=flowed, and its delsp parameter. */
  flowed: boolean;
  delsp: boolean;
  headerStart: number;
  /** Bytes of the header block read as fields (skipped stray lines and mbox lines not counted). */
  headerBytes: number;
  /** Where the body starts: after the blank line (or where a line that is no header field began). */
  bodyStart: number;
  /** Where the body ends: before the line break that belongs to the next delimiter, or the end. */
  bodyEnd: number;
  /** The header block ended with a blank line (false: it ran into a delimiter or the end). */
  headerComplete: boolean;
  /**
   * A delimiter line begins exactly at bodyEnd with no line break of its own in front (an empty
   * part right after its header block): anything appended must end with a line break.
   */
  delimiterAtEnd: boolean;
  /** Multipart: a close delimiter was seen (false: closed by an enclosing boundary or the end). */
  terminated: boolean;
  /** Multipart: no delimiter at all (no boundary parameter, or none found): its body is all preamble. */
  noParts: boolean;
  /** Multipart: where its preamble ends (the line break before its first delimiter line). */
  preambleEnd: number;
  /** Header fields, in order (bounded by the header size limit). */
  headers: HeaderField[];
}

/** How to read the constructs that readers disagree on (see ambiguities in MimeParse). */
export interface Reading {
  /** Several Content-Type (or Content-Transfer-Encoding) fields: which one counts. */
  duplicates: 'first' | 'last';
  /** A line in a header block that is not a header field: it starts the body, or is skipped. */
  strayHeaderLine: 'starts-body' | 'skipped';
  /** A delimiter line of two open multiparts (nested ones with one boundary): whose it is. */
  sharedBoundary: 'outer' | 'inner';
}

export const DEFAULT_READING: Reading = {
  duplicates: 'first',
  strayHeaderLine: 'starts-body',
  sharedBoundary: 'outer',
};

/** Constructs where known readers (mail clients, Python's email, MIME::Parser) disagree. */
export type Ambiguity =
  'duplicate-content-type' | 'duplicate-transfer-encoding' | 'stray-header-line' | 'shared-boundary';

export interface ParseLimits {
  /** Most nodes (containers included). */
  maxParts: number;
  /** Deepest nesting; the message itself is depth 0. */
  maxDepth: number;
  /** Largest header block of one part, bytes. */
  maxHeaderBytes: number;
}

export type LimitKind = 'parts' | 'depth' | 'header';

export interface MimeParse {
  parts: MimePart[];
  /** Total bytes of the message. */
  size: number;
  /** The first line break of the message: what lines added to it should use. */
  lineBreak: '\r\n' | '\n';
  ambiguities: Ambiguity[];
  /** Set when a limit stopped the parse: the tree is what was read up to there. */
  limit?: { kind: LimitKind; detail: string };
  reading: Reading;
}

export function partLabel(p: Pick<MimePart, 'path'>): string {
  return p.path || 'TEXT';
}
