// One parse per message, whoever asks first: the content rule, the disclaimer and anything
// else that looks at the MIME structure at end of message share it (the rules of a phase run
// side by side, so they share the promise). Another reading of the ambiguous constructs
// (types.ts) is a parse of its own, made only when a rule asks for it.
import { addAbortSignal, type Readable } from 'node:stream';
import { MimeParser } from './parser.js';
import { DEFAULT_READING, type MimeParse, type ParseLimits, type Reading } from './types.js';

/** What a parse needs of a message: a fresh stream of it per call, and a place to keep the result. */
export interface ParseSource {
  message(): Readable;
  /** Per-message scratch space (MessageContext.state). */
  state: Map<string, unknown>;
}

const keyOf = (r: Reading) => `mime.parse:${r.duplicates}:${r.strayHeaderLine}:${r.sharedBoundary}`;

export function sharedParse(src: ParseSource, signal: AbortSignal, reading: Reading = DEFAULT_READING, limits?: Partial<ParseLimits>): Promise<MimeParse> {
  const key = keyOf(reading);
  let p = src.state.get(key) as Promise<MimeParse> | undefined;
  if (!p) {
    p = parseStream(src.message(), signal, reading, limits);
    // A failed parse (an aborted phase) is not kept: the next reader tries again.
    p.catch(() => src.state.delete(key));
    src.state.set(key, p);
  }
  return p;
}

export async function parseStream(source: Readable, signal: AbortSignal, reading: Reading = DEFAULT_READING, limits?: Partial<ParseLimits>): Promise<MimeParse> {
  const parser = new MimeParser({ reading, ...(limits ? { limits } : {}) });
  addAbortSignal(signal, source);
  for await (const chunk of source as AsyncIterable<Buffer | string>) parser.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return parser.end();
}

/** The other readings of what this parse found ambiguous (none when nothing was). */
export function otherReadings(parse: MimeParse): Reading[] {
  const flips: Array<(r: Reading) => Reading> = [];
  const has = (a: string) => (parse.ambiguities as string[]).includes(a);
  if (has('duplicate-content-type') || has('duplicate-transfer-encoding')) flips.push((r) => ({ ...r, duplicates: r.duplicates === 'first' ? 'last' : 'first' }));
  if (has('stray-header-line')) flips.push((r) => ({ ...r, strayHeaderLine: r.strayHeaderLine === 'starts-body' ? 'skipped' : 'starts-body' }));
  if (has('shared-boundary')) flips.push((r) => ({ ...r, sharedBoundary: r.sharedBoundary === 'outer' ? 'inner' : 'outer' }));
  // Every combination of the flips, the parse's own reading left out.
  let readings: Reading[] = [parse.reading];
  for (const flip of flips) readings = readings.flatMap((r) => [r, flip(r)]);
  return readings.slice(1);
}
