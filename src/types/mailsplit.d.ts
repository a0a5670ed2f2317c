// Minimal typings for mailsplit 5.4.6 (CommonJS, ships none). Only what relayguard uses; extend
// as needed. Field meanings: see node_modules/mailsplit/lib/mime-node.js.
declare module 'mailsplit' {
  import { Transform } from 'node:stream';

  export interface HeaderLine {
    /** Lower-case header name. */
    key: string;
    /** The raw header line, folded as received, without the final line break. */
    line: string;
  }

  export class Headers {
    get(key: string): string[];
    /** Unfolded value of the first such header, encoded words NOT decoded. */
    getFirst(key: string): string;
    getList(): HeaderLine[];
    hasHeader(key: string): boolean;
    add(key: string, value: string, index?: number): void;
    update(key: string, value: string, relativeIndex?: number): void;
    remove(key: string): void;
    build(lineEnd?: string): Buffer;
  }

  export interface ParsedHeaderValue {
    value: string;
    params: Record<string, string>;
  }

  /** The libmime instance every node carries (header value helpers). */
  export interface Libmime {
    decodeWords(str: string): string;
    decodeHeader(line: string): { key: string; value: string };
    parseHeaderValue(str: string): ParsedHeaderValue;
  }

  export class MimeNode {
    readonly type: 'node';
    root: boolean;
    parentNode: MimeNode | false;
    /** Lower-case media type ("text/plain" when the header is missing), or false. */
    contentType: string | false;
    charset: string | false;
    /** Lower-case transfer encoding, "" when absent. */
    encoding: string | false;
    disposition: string | false;
    /** Decoded file name: Content-Disposition filename (RFC 2231) before Content-Type name (RFC 2047). */
    filename: string | false;
    /** The multipart subtype ("mixed", ...) or false. */
    multipart: string | false;
    /** message/rfc822 that the splitter descends into. */
    messageNode?: boolean;
    /** text/*; format=flowed (the Rewriter decodes it and drops the parameter). */
    flowed: boolean;
    delSp: boolean;
    rfc822: boolean;
    partNr: Array<number | string> | false;
    headers: Headers;
    libmime: Libmime;
    getHeaders(): Buffer;
    setCharset(charset: string): void;
    setContentType(contentType: string): void;
    getDecoder(): Transform;
    getEncoder(encoding?: string): Transform;
  }

  export type SplitterChunk =
    | MimeNode
    | { type: 'body'; node: MimeNode; value: Buffer }
    | { type: 'data'; node?: MimeNode; value: Buffer };

  export interface SplitterOptions {
    /** Bytes per part header block (default 1 MiB); more -> error with code EMAXLEN. */
    maxHeadSize?: number;
    /** Number of MIME nodes (default 1000); more -> error with code EMAXLEN. */
    maxChildNodes?: number;
    ignoreEmbedded?: boolean;
    /** Descend into message/rfc822 parts unless they are marked as attachments. */
    defaultInlineEmbedded?: boolean;
  }

  /** Bytes in, SplitterChunk objects out. */
  export class Splitter extends Transform {
    constructor(options?: SplitterOptions);
  }

  /** What a Rewriter hands out for each selected node: read the decoded content from
   * `decoder`, write the new content to `encoder` (re-encoded with the part's transfer encoding;
   * 7bit/8bit/binary parts become quoted-printable, format=flowed is decoded and dropped). */
  export interface RewriteTarget {
    node: MimeNode;
    decoder: Transform;
    encoder: Transform;
  }

  /** SplitterChunk objects in and out; nodes for which `filter` is true are rewritten. */
  export class Rewriter extends Transform {
    constructor(filter: (node: MimeNode) => boolean, rewriteAction?: null);
    on(event: 'node', listener: (target: RewriteTarget) => void): this;
    on(event: string | symbol, listener: (...args: any[]) => void): this;
  }

  /** SplitterChunk objects in, bytes out (byte-identical when nothing was changed). */
  export class Joiner extends Transform {
    constructor();
  }
}
