// The disclaimer texts as the policy gives them, made ready for insertion.
export type { DisclaimerTexts } from './append.js';

const CRLF = '\r\n';

/** Plain text with CRLF line ends, surrounding blank lines removed. */
export function normalizeDisclaimerText(text: string): string {
  return text
    .replace(/\r\n?|\n/g, CRLF)
    .replace(/^(\s*\r\n)+/, '')
    .trimEnd();
}

/** An HTML version of a text-only disclaimer: escaped, line breaks kept. */
export function htmlFromText(text: string): string {
  const escaped = text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<p style="font-size:small;color:#555555">${escaped.split(CRLF).join(`<br>${CRLF}`)}</p>`;
}
