// One parse per message, whoever asks first: the content rule, the disclaimer and anything
// else that looks at the MIME structure at end of message share it (the rules of a phase run
// side by side, so they share the promise). Another reading of the ambiguous constructs
// (types.ts) is a parse of its own, made only when a rule asks for it.
import { MimeParser } from './parser.js';
import { isSync, messagePieces, type MessageInput, type Pieces } from './ranges.js';
import { DEFAULT_READING, type MimeParse, type ParseLimits, type Reading } from './types.js';

/** What a parse needs of a message: its bytes (ranges.ts), and a place to keep the result. */
export interface ParseSource extends MessageInput {
  /** Per-message scratch space (MessageContext.state). */
  state: Map<string, unknown>;
}

/** The ParseSource of a message in a session (a MessageContext of the policy contract). */
export function messageInput(msg: {
  readonly source: MessageInput;
  readonly state: Map<string, unknown>;
}): ParseSource {
  return { message: () => msg.source.message(), inMemory: () => msg.source.inMemory?.() ?? null, state: msg.state };
}

const keyOf = (r: Reading) => `mime.parse:${r.duplicates}:${r.strayHeaderLine}:${r.sharedBoundary}`;

export function sharedParse(
  src: ParseSource,
  signal: AbortSignal,
  reading: Reading = DEFAULT_READING,
  limits?: Partial<ParseLimits>,
): Promise<MimeParse> {
  const key = keyOf(reading);
  let p = src.state.get(key) as Promise<MimeParse> | undefined;
  if (!p) {
    p = parseStream(messagePieces(src), signal, reading, limits);
    // A failed parse (an aborted phase) is not kept: the next reader tries again.
    p.catch(() => src.state.delete(key));
    src.state.set(key, p);
  }
  return p;
}

export async function parseStream(
  pieces: Pieces,
  signal: AbortSignal,
  reading: Reading = DEFAULT_READING,
  limits?: Partial<ParseLimits>,
): Promise<MimeParse> {
  const parser = new MimeParser({ reading, ...(limits ? { limits } : {}) });
  if (isSync(pieces)) {
    for (const chunk of pieces) parser.write(chunk);
  } else {
    for await (const chunk of pieces) {
      if (signal.aborted) throw signal.reason;
      parser.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    }
  }
  return parser.end();
}

/** The other readings of what this parse found ambiguous (none when nothing was). */
function otherReadings(parse: MimeParse): Reading[] {
  const flips: Array<(r: Reading) => Reading> = [];
  const has = (a: string) => (parse.ambiguities as string[]).includes(a);
  if (has('duplicate-content-type') || has('duplicate-transfer-encoding'))
    flips.push((r) => ({ ...r, duplicates: r.duplicates === 'first' ? 'last' : 'first' }));
  if (has('stray-header-line'))
    flips.push((r) => ({ ...r, strayHeaderLine: r.strayHeaderLine === 'starts-body' ? 'skipped' : 'starts-body' }));
  if (has('shared-boundary'))
    flips.push((r) => ({ ...r, sharedBoundary: r.sharedBoundary === 'outer' ? 'inner' : 'outer' }));
  // Every combination of the flips, the parse's own reading left out.
  let readings: Reading[] = [parse.reading];
  for (const flip of flips) readings = readings.flatMap((r) => [r, flip(r)]);
  return readings.slice(1);
}

/**
 * The readings that the parses so far flag and that were not parsed yet. A reading can run into
 * a construct the first one never reached (a stray line hides a shared boundary), so callers
 * parse these and ask again until nothing is left:
 *   for (let r = nextReadings(all); r.length; r = nextReadings(all)) all.push(...r.map(parse));
 */
export function nextReadings(parsed: readonly MimeParse[]): Reading[] {
  const key = (r: Reading) => `${r.duplicates}:${r.strayHeaderLine}:${r.sharedBoundary}`;
  const done = new Set(parsed.map((p) => key(p.reading)));
  const out = new Map<string, Reading>();
  for (const p of parsed) for (const r of otherReadings(p)) if (!done.has(key(r))) out.set(key(r), r);
  return [...out.values()];
}
