// The part of libmime (mailsplit's header helper, a dependency of ours) that src/mime/parse uses.
declare module 'libmime' {
  interface Libmime {
    decodeWords(str: string): string;
    /** Non-ASCII words as RFC 2047 encoded-words; maxLength splits long ones. */
    encodeWords(str: string, mimeWordEncoding?: 'Q' | 'B', maxLength?: number): string;
    parseHeaderValue(str: string): { value: string; params: Record<string, string> };
  }
  const libmime: Libmime;
  export default libmime;
}
