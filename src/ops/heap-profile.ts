// How much memory V8 may keep around between collections (`server.heap`), set by serve.
//
// Why: V8 sizes its heap for speed: the young generation grows to its largest semi-spaces and
// the old generation may grow to several times what survived its last collection before it is
// collected again, so under load most of a busy relayguard's memory is garbage waiting for a
// collection. `small` keeps the young generation at the size it has when serve starts and lets
// the old generation grow by half of what is live; `large` is V8's own sizing. What each costs
// in CPU per message and holds at peak: bench/RESULTS.md ("Issue 22, second pass").
//
// Only flags V8 reads each time it sizes a space are used: they take effect when set at run
// time (`--max-semi-space-size` is read once, when the heap is made, and cannot be). Every
// profile names every flag, so a reload can go from one profile to the other. A young generation
// is kept at the size it has when the flags are set, so serve's loader sets the default profile
// before serve's modules load (loading them grows it several times over); serve then sets the
// policy's.
import { setFlagsFromString } from 'node:v8';

export const HEAP_PROFILES = {
  small: ['--semi-space-growth-factor=1', '--heap-growing-percent=50'],
  // V8's defaults (V8 11.3 to 14.x): semi-spaces double when they fill; the growing factor is
  // V8's own (0 = not overridden).
  large: ['--semi-space-growth-factor=2', '--heap-growing-percent=0'],
} as const satisfies Record<string, readonly string[]>;

export type HeapProfile = keyof typeof HEAP_PROFILES;

export const HEAP_PROFILE_NAMES = Object.keys(HEAP_PROFILES) as [HeapProfile, ...HeapProfile[]];

export const DEFAULT_HEAP_PROFILE: HeapProfile = 'small';

/** Sets the V8 flags of `profile` for this process; the error's message where V8 refused one. */
export function applyHeapProfile(profile: HeapProfile): string | null {
  try {
    for (const flag of HEAP_PROFILES[profile]) setFlagsFromString(flag);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
