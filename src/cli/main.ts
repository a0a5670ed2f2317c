#!/usr/bin/env node
// relayguard command line: a table of subcommands, each in its own file.
import { UsageError } from './args.js';
import type { Command } from './command.js';
import { serveCommand } from './serve.js';
import { validateCommand } from './validate.js';
import { checkCommand } from './check.js';
import { reloadCommand } from './reload.js';
import { quarantineCommand } from './quarantine.js';
import { offendersCommand, unbanCommand } from './offenders.js';
import { postfixConfigCommand } from './postfix-config.js';
import { lintMtaCommand } from './lint-mta.js';
import { auditCommand } from './audit.js';
import { initCommand } from './init.js';

const COMMANDS: readonly Command[] = [serveCommand, validateCommand, checkCommand, reloadCommand, quarantineCommand, offendersCommand, unbanCommand, postfixConfigCommand, lintMtaCommand, auditCommand, initCommand];

function usage(): string {
  const lines = COMMANDS.map((c) => `  relayguard ${c.usage}\n      ${c.summary}`);
  return `usage:\n${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`relayguard: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`relayguard ${name}: ${err.message}\nusage: relayguard ${cmd.usage}\n`);
      return 2;
    }
    process.stderr.write(`relayguard ${name}: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err) => {
    process.stderr.write(String(err) + '\n');
    process.exitCode = 1;
  },
);
