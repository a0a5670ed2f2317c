// Transfer encoders for the bytes a disclaimer adds, continuing the part's own encoding: the
// new lines follow the original ones (a base64 line is filled up to the original's width first).

const HEX = '0123456789ABCDEF';
/** RFC 2045 6.7: encoded lines are at most 76 characters. */
const QP_WIDTH = 76;
export const BASE64_WIDTH = 76;

/**
 * Quoted-printable for `bytes` whose line breaks are `eol` (kept as hard breaks): "=", bytes
 * outside printable ASCII and blanks before a break are escaped; long lines get soft breaks.
 */
export function encodeQuotedPrintable(bytes: Buffer, eol: string): string {
  const lines: string[] = [];
  let line = '';
  const push = (token: string) => {
    if (line.length + token.length > QP_WIDTH - 1) {
      lines.push(line + '=');
      line = '';
    }
    line += token;
  };
  const text = bytes.toString('latin1');
  const eolRe = eol === '\r\n' ? /\r\n/ : /\n/;
  const rows = text.split(eolRe);
  rows.forEach((row, r) => {
    for (let i = 0; i < row.length; i++) {
      const c = row.charCodeAt(i);
      const last = i === row.length - 1;
      const plain = (c >= 33 && c <= 126 && c !== 61) || ((c === 32 || c === 9) && !last);
      push(plain ? row[i]! : `=${HEX[c >> 4]}${HEX[c & 15]}`);
    }
    if (r < rows.length - 1) {
      lines.push(line);
      line = '';
    }
  });
  lines.push(line);
  return lines.join(eol);
}

/** Base64 of `bytes` in lines of `width`; the first line has `used` characters already. */
export function encodeBase64Lines(bytes: Buffer, eol: string, width: number, used: number): string {
  const all = bytes.toString('base64');
  const out: string[] = [];
  let i = Math.max(0, Math.min(all.length, width - used));
  out.push(all.slice(0, i));
  for (; i < all.length; i += width) out.push(all.slice(i, i + width));
  return out.join(eol);
}
