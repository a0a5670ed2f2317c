// "Did you mean": the keys the schema allows at a path, and the one closest to a misspelt key.
// The schema is the only source of key names, so a suggestion is always a key that exists.
import type { z } from 'zod';

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
}

const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Object schemas reachable at `path` (several when a union allows several shapes). */
function objectsAt(schema: z.ZodType, path: ReadonlyArray<string | number>): Def[] {
  const def = defOf(schema);
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
      return def.innerType ? objectsAt(def.innerType, path) : [];
    case 'pipe':
      return def.in ? objectsAt(def.in, path) : [];
    case 'union':
      return (def.options ?? []).flatMap((o) => objectsAt(o, path));
    case 'object': {
      if (path.length === 0) return [def];
      const next = def.shape?.[String(path[0])];
      return next ? objectsAt(next, path.slice(1)) : [];
    }
    case 'array':
      return path.length && typeof path[0] === 'number' && def.element ? objectsAt(def.element, path.slice(1)) : [];
    case 'record':
      return path.length && def.valueType ? objectsAt(def.valueType, path.slice(1)) : [];
    default:
      return [];
  }
}

/** Keys the schema allows in the mapping at `path`. */
export function knownKeys(schema: z.ZodType, path: ReadonlyArray<string | number>): string[] {
  return [...new Set(objectsAt(schema, path).flatMap((d) => Object.keys(d.shape ?? {})))];
}

/** Edit distance (insert, delete, substitute, swap of neighbours), case-insensitive. */
function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest allowed key, if it is close enough to be what was meant (a third of its length). */
export function closestKey(given: string, candidates: readonly string[]): string | undefined {
  let best: { key: string; dist: number } | undefined;
  for (const key of candidates) {
    const dist = editDistance(given, key);
    if (!best || dist < best.dist) best = { key, dist };
  }
  if (!best) return undefined;
  const allowed = Math.max(1, Math.floor(Math.max(given.length, best.key.length) / 3));
  // Dashes for underscores (max-bytes) are a distance of one per dash; still the same key.
  const sameWords = given.replace(/-/g, '_').toLowerCase() === best.key.toLowerCase();
  return best.dist <= allowed || sameWords ? best.key : undefined;
}
