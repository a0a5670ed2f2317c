// Runs one command with its arguments and turns what it throws into output and an exit code:
// the same for the command line (main.ts) and for the daemon's bundle (serve-entry.ts).
import { HelpRequested, UsageError } from './args.js';
import { writeError } from '../ops/journal-stream.js';
import { CommandFailed, type Command } from './command.js';

/** `relayguard COMMAND --help`. */
export function commandHelp(cmd: Pick<Command, 'usage' | 'summary'>): string {
  const config = cmd.usage.includes('--config') ? '\n-c F is short for --config F.' : '';
  return `usage: relayguard ${cmd.usage}\n\n${cmd.summary}${config}\n`;
}

/** The exit code of `about`'s command (loaded by `load`) run on `args`, or -1 for a daemon that keeps running. */
export async function runCommand(
  about: Pick<Command, 'name' | 'usage' | 'summary'>,
  load: () => Promise<Command>,
  args: readonly string[],
): Promise<number> {
  try {
    return await (await load()).run([...args]);
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(commandHelp(about));
      return 0;
    }
    if (err instanceof UsageError) {
      writeError(`relayguard ${about.name}: ${err.message}\nusage: relayguard ${about.usage}\n`);
      return 2;
    }
    if (err instanceof CommandFailed) return err.code;
    writeError(`relayguard ${about.name}: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

/** Sets the exit code when a command line's run settles (not for a daemon that keeps running). */
export function exitWhenDone(run: Promise<number>): void {
  run.then(
    (code) => {
      if (code !== -1) process.exitCode = code;
    },
    (err) => {
      writeError(String(err) + '\n');
      process.exitCode = 1;
    },
  );
}
