// format=flowed (RFC 3676): what a flowed reader shows, and how added lines are written so
// that it shows them as written.

/** The text a flowed reader shows: soft breaks (a line ending in a space) joined, stuffing removed. */
export function unflow(text: string, delsp: boolean): string {
  const lines = text.split(/\r?\n/);
  const out: string[] = [];
  let para = '';
  let open = false;
  for (const raw of lines) {
    const quote = /^>*/.exec(raw)![0];
    let body = raw.slice(quote.length);
    if (body.startsWith(' ')) body = body.slice(1);
    const soft = body.endsWith(' ') && body !== '-- ';
    const piece = soft && delsp ? body.slice(0, -1) : body;
    if (!open) para = quote;
    para += piece;
    open = soft;
    if (!open) out.push(para);
  }
  if (open) out.push(para);
  return out.join('\n');
}

/** Lines that a flowed reader shows as written: no trailing blanks (bar the "-- " separator), stuffed. */
export function flowedLines(lines: string[]): string[] {
  return lines.map((l) => {
    const line = l === '-- ' ? l : l.replace(/[ \t]+$/, '');
    return /^( |>|From )/.test(line) ? ' ' + line : line;
  });
}
