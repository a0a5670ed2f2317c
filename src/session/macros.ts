// Macro values by stage, with libmilter's lifetime rules: a new CONNECT clears everything, a new
// HELO clears HELO and later, MAIL clears MAIL and later, each RCPT replaces the RCPT set.
// Lookups search the most recent stage first and accept "x" and "{x}" alike.
// Looked up several times per event, so the known stages sit in an array by event order.
import type { MacroReader } from '../policy/types.js';

/** Stage letters in the order events happen. 'L' and 'B' (Postfix extras) sit with EOH/EOM. */
const ORDER = ['C', 'H', 'M', 'R', 'T', 'L', 'N', 'B', 'E', 'U'] as const;
const POSITION: ReadonlyMap<string, number> = new Map(ORDER.map((s, i) => [s, i]));
/** Stages a new event of that stage invalidates from (itself and everything later). */
const RESETS_LATER: ReadonlySet<string> = new Set(['C', 'H', 'M']);
/** Message-level stages: they end with the message (ABORT keeps connection stages). */
const MESSAGE_STAGES: readonly string[] = ['M', 'R', 'T', 'L', 'N', 'B', 'E'];

export function macroKey(name: string): string {
  return name.charCodeAt(0) === 0x7b /* { */ && name.endsWith('}') ? name.slice(1, -1) : name;
}

export class MacroStore implements MacroReader {
  /** Known stages by position in ORDER. */
  private readonly known: Array<Map<string, string> | undefined> = new Array(ORDER.length);
  /** Unknown stage letters (libmilter ignores them; we keep them, searched last). */
  private readonly other = new Map<string, Map<string, string>>();

  set(stage: string, pairs: ReadonlyArray<[string, string]>): void {
    const map = new Map<string, string>();
    for (const [name, value] of pairs) map.set(macroKey(name), value);
    const idx = POSITION.get(stage);
    if (idx === undefined) {
      this.other.set(stage, map);
      return;
    }
    // A new CONNECT, HELO or MAIL invalidates what later stages knew.
    if (RESETS_LATER.has(stage)) this.known.fill(undefined, idx);
    this.known[idx] = map;
  }

  get(name: string): string | undefined {
    const key = macroKey(name);
    for (let i = ORDER.length - 1; i >= 0; i--) {
      const v = this.known[i]?.get(key);
      if (v !== undefined) return v;
    }
    for (const map of this.other.values()) {
      const v = map.get(key);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  /** Message-level stages end with the message (ABORT keeps connection stages). */
  clearMessage(): void {
    for (const s of MESSAGE_STAGES) this.known[POSITION.get(s)!] = undefined;
  }

  clear(): void {
    this.known.fill(undefined);
    this.other.clear();
  }
}
