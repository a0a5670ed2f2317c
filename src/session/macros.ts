// Macro values by stage, with libmilter's lifetime rules: a new CONNECT clears everything, a new
// HELO clears HELO and later, MAIL clears MAIL and later, each RCPT replaces the RCPT set.
// Lookups search the most recent stage first and accept "x" and "{x}" alike.
// Looked up several times per event, so the known stages sit in an array by event order.
// Macros of stage letters not listed below are dropped, as libmilter drops them: kept, they
// would let a client pin memory with stages nothing ever clears. `bytes` is what the store
// holds, for the connection's macro budget (server.max_macro_bytes).
import type { MacroReader } from '../policy/types.js';

/** Stage letters in the order events happen. 'L' and 'B' (Postfix extras) sit with EOH/EOM. */
const ORDER = ['C', 'H', 'M', 'R', 'T', 'L', 'N', 'B', 'E', 'U'] as const;
const POSITION: ReadonlyMap<string, number> = new Map(ORDER.map((s, i) => [s, i]));
/** Stages a new event of that stage invalidates from (itself and everything later). */
const RESETS_LATER: ReadonlySet<string> = new Set(['C', 'H', 'M']);
/** Message-level stages: they end with the message (ABORT keeps connection stages). */
const MESSAGE_STAGES: readonly string[] = ['M', 'R', 'T', 'L', 'N', 'B', 'E'];

function macroKey(name: string): string {
  return name.charCodeAt(0) === 0x7b /* { */ && name.endsWith('}') ? name.slice(1, -1) : name;
}

export class MacroStore implements MacroReader {
  /** Known stages by position in ORDER. */
  private readonly known: Array<Map<string, string> | undefined> = new Array<Map<string, string> | undefined>(
    ORDER.length,
  );
  /** Name and value bytes (latin1, one per char) held by each known stage. */
  private readonly sizes: number[] = new Array<number>(ORDER.length).fill(0);

  /** Store a stage's macros; false (and nothing stored) for a stage letter no MTA defines. */
  set(stage: string, pairs: ReadonlyArray<[string, string]>): boolean {
    const idx = POSITION.get(stage);
    if (idx === undefined) return false;
    const map = new Map<string, string>();
    let size = 0;
    for (const [name, value] of pairs) {
      const key = macroKey(name);
      map.set(key, value);
      size += key.length + value.length;
    }
    // A new CONNECT, HELO or MAIL invalidates what later stages knew.
    if (RESETS_LATER.has(stage)) this.drop(idx, ORDER.length);
    this.known[idx] = map;
    this.sizes[idx] = size;
    return true;
  }

  /** Bytes of names and values held now (an upper bound: a name set twice counts twice). */
  get bytes(): number {
    let n = 0;
    for (const s of this.sizes) n += s;
    return n;
  }

  get(name: string): string | undefined {
    const key = macroKey(name);
    for (let i = ORDER.length - 1; i >= 0; i--) {
      const v = this.known[i]?.get(key);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  /** Message-level stages end with the message (ABORT keeps connection stages). */
  clearMessage(): void {
    for (const s of MESSAGE_STAGES) {
      const i = POSITION.get(s)!;
      this.known[i] = undefined;
      this.sizes[i] = 0;
    }
  }

  clear(): void {
    this.drop(0, ORDER.length);
  }

  private drop(from: number, to: number): void {
    this.known.fill(undefined, from, to);
    this.sizes.fill(0, from, to);
  }
}
