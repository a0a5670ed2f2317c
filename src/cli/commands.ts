// Where each command's code is. It is loaded only for the command that runs (importing every
// command costs most of a second: zod, winston, re2, better-sqlite3), so --help and --version
// answer at once. The texts are in command-list.ts.
import type { Command } from './command.js';
import { COMMAND_TEXTS, type CommandText } from './command-list.js';
import { loadServe } from './load-serve.js';

const LOADERS: Readonly<Record<string, () => Promise<Command>>> = {
  serve: loadServe,
  validate: () => import('./validate.js').then((m) => m.validateCommand),
  check: () => import('./check.js').then((m) => m.checkCommand),
  'milter-check': () => import('./milter-check.js').then((m) => m.milterCheckCommand),
  reload: () => import('./reload.js').then((m) => m.reloadCommand),
  quarantine: () => import('./quarantine.js').then((m) => m.quarantineCommand),
  offenders: () => import('./offenders.js').then((m) => m.offendersCommand),
  unban: () => import('./offenders.js').then((m) => m.unbanCommand),
  'postfix-config': () => import('./postfix-config.js').then((m) => m.postfixConfigCommand),
  'lint-mta': () => import('./lint-mta.js').then((m) => m.lintMtaCommand),
  audit: () => import('./audit.js').then((m) => m.auditCommand),
  init: () => import('./init.js').then((m) => m.initCommand),
  keygen: () => import('./keygen.js').then((m) => m.keygenCommand),
};

export interface CommandEntry extends CommandText {
  load(): Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = COMMAND_TEXTS.map((text) => {
  const load = LOADERS[text.name];
  if (!load) throw new Error(`no loader for command ${text.name} in commands.ts`);
  return { ...text, load };
});
