// Human-friendly units in the policy: "30s", "10m", "2MiB", "4M". Plain numbers are ms / bytes.
import { z } from 'zod';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

export function parseDuration(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(v);
  if (!m) throw new Error(`not a duration: "${v}" (use e.g. 500ms, 30s, 10m, 1h)`);
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
}

export function parseSize(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`not a size: "${v}" (use e.g. 2097152, 512K, 2M, 2MiB)`);
  return Math.round(Number(m[1]) * unit);
}

function unit(parse: (v: string | number) => number) {
  return z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
    try {
      return parse(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

/** Milliseconds. */
export const duration = () => unit(parseDuration);
/** Bytes. */
export const byteSize = () => unit(parseSize);
