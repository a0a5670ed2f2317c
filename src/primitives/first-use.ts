// A module loaded when it is first needed, not when the file that uses it is: a command or a
// daemon that never takes that path never pays for it (start-up time, memory), and a native
// addon stays out of the CLI's start-up snapshot, which can hold only JavaScript.
import { createRequire } from 'node:module';

/**
 * A function that returns module `id`, loaded (by `require`, resolved from `moduleUrl`, the
 * caller's import.meta.url) on its first call.
 */
export function loadOnFirstUse<T>(moduleUrl: string, id: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= createRequire(moduleUrl)(id) as T);
}
