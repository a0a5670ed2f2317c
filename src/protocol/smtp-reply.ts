// Formats the text of SMFIR_REPLYCODE safely: the MTA drops or rejects malformed replies
// (Postfix: "550 4.7.1" is a configuration error; Sendmail treats a lone % as printf format).

/** Longest text per reply line we send; SMTP lines are at most 512 bytes with the code. */
const MAX_REPLY_LINE_TEXT = 400;
/** libmilter's smfi_setmlreply accepts at most 32 lines. */
const MAX_REPLY_LINES = 32;

export interface SmtpReply {
  code: number; // 4xx or 5xx
  enhanced: string; // e.g. "5.7.1"; its class digit must equal code's first digit
  text: string; // may contain \n for several lines
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

export function isValidReply(r: SmtpReply): boolean {
  if (!Number.isInteger(r.code) || r.code < 400 || r.code > 599) return false;
  const m = ENHANCED.exec(r.enhanced);
  return !!m && m[1] === String(r.code)[0];
}

/** Printable ASCII only, `%` doubled, no CR/LF. */
function sanitizeReplyText(text: string): string {
  return text
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, MAX_REPLY_LINE_TEXT) // cut before doubling, so no lone % is left at the end
    .replace(/%/g, '%%');
}

/** Build the wire text: "550 5.7.1 text" or "550-5.7.1 a\r\n550 5.7.1 b". Throws on invalid code. */
export function formatReply(r: SmtpReply): string {
  if (!isValidReply(r)) throw new RangeError(`invalid SMTP reply ${r.code} ${r.enhanced}`);
  const lines = r.text
    .split(/\r?\n/)
    .map((l) => sanitizeReplyText(l.trim()))
    .filter((l) => l.length > 0)
    .slice(0, MAX_REPLY_LINES);
  if (lines.length === 0) lines.push(r.code >= 500 ? 'Rejected' : 'Try again later');
  return lines.map((l, i) => `${r.code}${i < lines.length - 1 ? '-' : ' '}${r.enhanced} ${l}`).join('\r\n');
}
