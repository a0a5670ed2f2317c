// Small pieces every rule schema uses.
import { z } from 'zod';

/** enforce: act; monitor: log what would have happened, change nothing; off: not loaded. */
export const modeField = () => z.enum(['enforce', 'monitor', 'off']).default('enforce');

/** Per-direction choice: one value for both, or { inbound, outbound }. */
export function perDirection<T extends z.ZodType>(inner: T) {
  return z.union([inner, z.object({ inbound: inner, outbound: inner }).strict()]);
}

export function pickDirection<T>(value: T | { inbound: T; outbound: T }, direction: 'inbound' | 'outbound'): T {
  if (value !== null && typeof value === 'object' && 'inbound' in (value as object) && 'outbound' in (value as object)) {
    return (value as { inbound: T; outbound: T })[direction];
  }
  return value as T;
}
