#!/usr/bin/env node
// relayguard command line: a table of subcommands (commands.ts), each in its own file and loaded
// only when it runs; its run() parses its own arguments with ./args.ts, which gives it
// -c/--config, --help and the refusal of anything it does not take.
import { realpathSync } from 'node:fs';
import nodeModule from 'node:module';
import { fileURLToPath } from 'node:url';
import { writeError } from '../ops/journal-stream.js';
import { packageVersion } from './command.js';
import { COMMANDS } from './commands.js';
import { commandHelp, exitWhenDone, runCommand } from './run-command.js';

export { COMMANDS };

// Node 22.1 and later keep V8's compiled code of the modules between runs (in the directory of
// NODE_COMPILE_CACHE, else the system's temporary directory): the commands, loaded after this
// line, start faster from the second run on. Node 20 has no such cache; a failure only costs time.
// Not while `node --build-snapshot` evaluates this file for the CLI's start-up snapshot
// (src/cli/snapshot-entry.ts): the snapshot holds compiled code already.
// Nor for serve, which starts once: the cache's code for every function compiled when it was
// written would stay in the daemon's heap (bench/RESULTS.md, "Issue 22, fourth pass").
try {
  if (!process.execArgv.includes('--build-snapshot') && process.argv[2] !== 'serve')
    (nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();
} catch {
  /* no cache */
}

function usage(): string {
  const lines = COMMANDS.map((c) => `  relayguard ${c.usage}\n      ${c.summary}`);
  return (
    `usage: relayguard COMMAND [OPTIONS]\n\ncommands:\n${lines.join('\n')}\n\n` +
    'Every command takes -c F as --config F (default: policies/default.yaml) and --help.\n' +
    'relayguard --version prints the version.\n'
  );
}

/** Runs one command line; the exit code, or -1 for a daemon that keeps running. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    const about = name === 'help' && rest[0] ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    if (name === 'help' && rest[0] && !about) {
      writeError(`relayguard: unknown command "${rest[0]}"\n`);
      return 2;
    }
    process.stdout.write(about ? commandHelp(about) : usage());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    if (rest.length) {
      writeError(`relayguard: unexpected argument "${rest[0]}" after ${name}\n`);
      return 2;
    }
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (!name) {
    writeError(usage());
    return 2;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    const hint = name.startsWith('-')
      ? 'the command comes first: relayguard COMMAND [OPTIONS]'
      : 'relayguard --help lists the commands';
    writeError(`relayguard: unknown command "${name}" (${hint})\n`);
    return 2;
  }
  // `COMMAND --help` alone is answered from the table, without loading the command's code.
  if (rest.length === 1 && (rest[0] === '--help' || rest[0] === '-h')) {
    process.stdout.write(commandHelp(cmd));
    return 0;
  }
  return runCommand(cmd, () => cmd.load(), rest);
}

/** True when this file is the program (also through npm's bin symlink), false when imported. */
function isEntryPoint(): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  exitWhenDone(main(process.argv.slice(2)));
}
