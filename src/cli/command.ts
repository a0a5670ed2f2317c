// What every command is, and the little that main needs without loading any command's code.
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/src/cli -> package root */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * Whether `script` (process.argv[1]) is `builtFrom`, or inside it when it is a directory: a
 * bundle or snapshot names its modules' paths in the checkout it was built in (each module's
 * import.meta.url), so run from a copy elsewhere it would read that checkout's policy and packages.
 */
export function startedFrom(script: string, builtFrom: string, opts: { directory?: boolean } = {}): boolean {
  try {
    const file = realpathSync(script);
    const built = realpathSync(builtFrom);
    return opts.directory ? file.startsWith(built + sep) : file === built;
  } catch {
    return false;
  }
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The command has already said what went wrong; main exits with this code and prints nothing more. */
export class CommandFailed extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
    this.name = 'CommandFailed';
  }
}

export interface Command {
  name: string;
  /** Synopsis after "relayguard ". */
  usage: string;
  summary: string;
  /** Exit code; -1 means "keep running" (serve). */
  run(argv: string[]): Promise<number>;
}
