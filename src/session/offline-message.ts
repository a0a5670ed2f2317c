// Offline counterpart of what the MTA does around the milter: split an .eml into the header
// fields and body the MTA would send (CRLF body, folded headers joined with LF), and apply the
// milter's modifications to produce the message as it would be delivered.
import type { Modification } from '../policy/types.js';

export interface OfflineHeader {
  name: string;
  /** Raw value after the colon, leading space included, folds joined with "\n". */
  value: string;
}

export function splitMessage(input: Buffer): { headers: OfflineHeader[]; body: Buffer } {
  const text = input.toString('latin1');
  const blank = /\r?\n\r?\n/.exec(text);
  const head = (blank ? text.slice(0, blank.index) : text).replace(/\r?\n/g, '\r\n');
  const body = blank ? crlfOutsideBinary(head, text.slice(blank.index + blank[0].length)) : '';
  const headers: OfflineHeader[] = [];
  for (const line of head.split('\r\n')) {
    if (line === '') continue;
    if ((line.startsWith(' ') || line.startsWith('\t')) && headers.length) {
      headers[headers.length - 1]!.value += `\n${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // not a header field: the MTA would not pass it either
    headers.push({ name: line.slice(0, colon), value: line.slice(colon + 1) });
  }
  return { headers, body: Buffer.from(body, 'latin1') };
}

/** The boundary parameter and whether the transfer encoding is binary, from a header block. */
function partOf(header: string): { boundary: string | null; binary: boolean } {
  const unfolded = header.replace(/\r?\n[ \t]/g, ' ');
  const type = /^content-type:(.*)$/im.exec(unfolded)?.[1] ?? '';
  const boundary = /^\s*multipart\//i.test(type)
    ? ((/boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))/i.exec(type) ?? []).slice(1).find(Boolean) ?? null)
    : null;
  const binary = /^content-transfer-encoding:\s*binary\s*$/im.test(unfolded);
  return { boundary, binary };
}

/**
 * Lines end in CRLF as the MTA sends them, except inside a part whose transfer encoding is
 * `binary`: there a bare LF (or CR) is data and stays as it is; only the line break before the
 * next boundary line (which belongs to the boundary) becomes CRLF.
 */
function crlfOutsideBinary(topHeader: string, body: string): string {
  const top = partOf(topHeader);
  if (top.binary && top.boundary === null) return body;
  const boundaries = new Set<string>(top.boundary ? [top.boundary] : []);
  const out: string[] = [];
  let mode: 'text' | 'partHeader' | 'binary' = 'text';
  let partHeader = '';
  let pos = 0;
  while (pos < body.length) {
    const lf = body.indexOf('\n', pos);
    const end = lf < 0 ? body.length : lf + 1;
    const raw = body.slice(pos, end);
    pos = end;
    const content = raw.replace(/\r?\n$/, '');
    const ended = raw.endsWith('\n');
    const bare = content.startsWith('--') ? content.trimEnd().slice(2) : null;
    const delimiter =
      bare !== null && (boundaries.has(bare) || (bare.endsWith('--') && boundaries.has(bare.slice(0, -2))));
    if (delimiter) {
      if (mode === 'binary' && out.length) out[out.length - 1] = out[out.length - 1]!.replace(/\r?\n$/, '\r\n');
      out.push(content + (ended ? '\r\n' : ''));
      mode = content.trimEnd().endsWith('--') ? 'text' : 'partHeader';
      partHeader = '';
      continue;
    }
    if (mode === 'binary') {
      out.push(raw);
      continue;
    }
    out.push(content + (ended ? '\r\n' : ''));
    if (mode === 'partHeader') {
      if (content !== '') {
        partHeader += `${content}\n`;
        continue;
      }
      const part = partOf(partHeader);
      if (part.boundary) boundaries.add(part.boundary);
      mode = part.binary && !part.boundary ? 'binary' : 'text';
    }
  }
  return out.join('');
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
  return Buffer.concat(parts);
}

/** Header values from modifications are UTF-8; folded lines use "\n" + whitespace. */
export async function applyModifications(
  headers: OfflineHeader[],
  body: Buffer,
  mods: Modification[],
): Promise<Buffer> {
  const out = headers.map((h) => ({ name: h.name, raw: Buffer.from(h.value, 'latin1') }));
  let newBody = body;
  for (const m of mods) {
    const raw = (v: string) => Buffer.from(` ${v}`, 'utf8');
    if (m.type === 'addHeader') out.push({ name: m.name, raw: raw(m.value) });
    else if (m.type === 'insertHeader')
      out.splice(Math.min(m.index, out.length), 0, { name: m.name, raw: raw(m.value) });
    else if (m.type === 'changeHeader') {
      const idx = Math.max(1, m.index);
      let seen = 0;
      const pos = out.findIndex((h) => h.name.toLowerCase() === m.name.toLowerCase() && ++seen === idx);
      if (pos < 0) {
        if (m.value !== '') out.push({ name: m.name, raw: raw(m.value) });
      } else if (m.value === '') out.splice(pos, 1);
      else out[pos] = { name: out[pos]!.name, raw: raw(m.value) };
    } else if (m.type === 'replaceBody') newBody = await collect(m.body.stream());
  }
  const headBuf = Buffer.concat(
    out.map((h) =>
      Buffer.concat([
        Buffer.from(`${h.name}:`, 'latin1'),
        Buffer.from(h.raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1'),
        Buffer.from('\r\n'),
      ]),
    ),
  );
  return Buffer.concat([headBuf, Buffer.from('\r\n'), newBody]);
}
