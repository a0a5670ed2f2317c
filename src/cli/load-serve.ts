// How serve's code is loaded, by the command table (commands.ts) and by the daemon's bundle
// (serve-entry.ts): the heap profile first, because a young generation keeps the size it has when
// the profile is set, and loading serve's modules would grow it for good (src/ops/heap-profile.ts).
// serve sets the policy's profile once it is read.
import { applyHeapProfile, DEFAULT_HEAP_PROFILE } from '../ops/heap-profile.js';
import type { Command } from './command.js';

export function loadServe(): Promise<Command> {
  applyHeapProfile(DEFAULT_HEAP_PROFILE);
  return import('./serve.js').then((m) => m.serveCommand);
}
