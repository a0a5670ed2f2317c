// Small pieces every rule schema uses.
import { z } from 'zod';
import type { Header, Modification } from '../policy/types.js';

/** enforce: act; monitor: log what would have happened, change nothing; off: not loaded. */
export const modeField = () => z.enum(['enforce', 'monitor', 'off']).default('enforce');

/** Per-direction choice: one value for both, or { inbound, outbound }. */
export function perDirection<T extends z.ZodType>(inner: T) {
  return z.union([inner, z.object({ inbound: inner, outbound: inner }).strict()]);
}

export function pickDirection<T>(value: T | { inbound: T; outbound: T }, direction: 'inbound' | 'outbound'): T {
  if (
    value !== null &&
    typeof value === 'object' &&
    'inbound' in (value as object) &&
    'outbound' in (value as object)
  ) {
    return (value as { inbound: T; outbound: T })[direction];
  }
  return value as T;
}

/**
 * Our header, and only ours: every copy of `name` that came with the message is deleted (from
 * the last to the first, so the indexes of those not yet deleted do not move), then ours is
 * added. A header relayguard writes must not be forgeable by the sender.
 */
export function replaceHeaderMods(headers: readonly Header[], name: string, value: string): Modification[] {
  const lower = name.toLowerCase();
  const copies = headers.filter((h) => h.name.toLowerCase() === lower).length;
  const mods: Modification[] = [];
  for (let i = copies; i >= 1; i--) mods.push({ type: 'changeHeader', name, index: i, value: '' });
  mods.push({ type: 'addHeader', name, value });
  return mods;
}

/** conn.state key: "name=value" fields rules add to the trace header (for a downstream filter). */
const TRACE_FIELDS = 'trace_header.fields';

export function addTraceField(state: Map<string, unknown>, field: string): void {
  const fields = (state.get(TRACE_FIELDS) as string[] | undefined) ?? [];
  fields.push(field);
  state.set(TRACE_FIELDS, fields);
}

export function traceFields(state: Map<string, unknown>): readonly string[] {
  return (state.get(TRACE_FIELDS) as string[] | undefined) ?? [];
}
