// Macro values by stage, with libmilter's lifetime rules: a new CONNECT clears everything, a new
// HELO clears HELO and later, MAIL clears MAIL and later, each RCPT replaces the RCPT set.
// Lookups search the most recent stage first and accept "x" and "{x}" alike.
import type { MacroReader } from '../policy/types.js';

/** Stage letters in the order events happen. 'L' and 'B' (Postfix extras) sit with EOH/EOM. */
const ORDER = ['C', 'H', 'M', 'R', 'T', 'L', 'N', 'B', 'E', 'U'] as const;

export function macroKey(name: string): string {
  return name.startsWith('{') && name.endsWith('}') ? name.slice(1, -1) : name;
}

export class MacroStore implements MacroReader {
  private readonly stages = new Map<string, Map<string, string>>();

  set(stage: string, pairs: ReadonlyArray<[string, string]>): void {
    const idx = ORDER.indexOf(stage as (typeof ORDER)[number]);
    // A new CONNECT, HELO or MAIL invalidates what later stages knew.
    if (stage === 'C' || stage === 'H' || stage === 'M') {
      for (const later of ORDER.slice(idx)) this.stages.delete(later);
    }
    const map = new Map<string, string>();
    for (const [name, value] of pairs) map.set(macroKey(name), value);
    this.stages.set(stage, map);
  }

  get(name: string): string | undefined {
    const key = macroKey(name);
    for (let i = ORDER.length - 1; i >= 0; i--) {
      const v = this.stages.get(ORDER[i]!)?.get(key);
      if (v !== undefined) return v;
    }
    // Unknown stage letters (libmilter ignores them; we keep them, searched last).
    for (const [stage, map] of this.stages) {
      if ((ORDER as readonly string[]).includes(stage)) continue;
      const v = map.get(key);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  /** Message-level stages end with the message (ABORT keeps connection stages). */
  clearMessage(): void {
    for (const s of ['M', 'R', 'T', 'L', 'N', 'B', 'E']) this.stages.delete(s);
  }

  clear(): void {
    this.stages.clear();
  }
}
