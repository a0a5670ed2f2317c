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
  const normalized = text.replace(/\r?\n/g, '\r\n');
  const sep = normalized.indexOf('\r\n\r\n');
  const head = sep >= 0 ? normalized.slice(0, sep) : normalized;
  const body = sep >= 0 ? normalized.slice(sep + 4) : '';
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

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : (c as Buffer));
  return Buffer.concat(parts);
}

/** Header values from modifications are UTF-8; folded lines use "\n" + whitespace. */
export async function applyModifications(headers: OfflineHeader[], body: Buffer, mods: Modification[]): Promise<Buffer> {
  const out = headers.map((h) => ({ name: h.name, raw: Buffer.from(h.value, 'latin1') }));
  let newBody = body;
  for (const m of mods) {
    const raw = (v: string) => Buffer.from(` ${v}`, 'utf8');
    if (m.type === 'addHeader') out.push({ name: m.name, raw: raw(m.value) });
    else if (m.type === 'insertHeader') out.splice(Math.min(m.index, out.length), 0, { name: m.name, raw: raw(m.value) });
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
  const headBuf = Buffer.concat(out.map((h) => Buffer.concat([Buffer.from(`${h.name}:`, 'latin1'), Buffer.from(h.raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1'), Buffer.from('\r\n')])));
  return Buffer.concat([headBuf, Buffer.from('\r\n'), newBody]);
}
