// relayguard reload: validate the policy here (so errors show at once), then SIGHUP the daemon.
import { readFileSync } from 'node:fs';
import { formatError } from '../config/load.js';
import { writeError } from '../ops/journal-stream.js';
import { loadPolicyFile } from '../rules/policy-schema.js';
import { parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { policyPath } from './policy-file.js';

export const reloadCommand: Command = {
  ...about('reload'),
  async run(argv) {
    const a = parseArgs(argv, { config: { value: true }, 'pid-file': { value: true } });
    const file = policyPath(str(a, 'config'));
    const r = loadPolicyFile(file);
    if (!r.ok) {
      for (const e of r.errors) writeError(formatError(e) + '\n');
      writeError('not reloaded: the running policy stays\n');
      return 1;
    }
    const pidFile = str(a, 'pid-file') ?? r.config.server.pid_file;
    if (!pidFile) throw new UsageError('no pid file: give --pid-file or set server.pid_file in the policy');
    let pid: number;
    try {
      pid = Number(readFileSync(pidFile, 'utf8').trim());
    } catch (err) {
      writeError(`cannot read ${pidFile}: ${(err as NodeJS.ErrnoException).code}\n`);
      return 1;
    }
    if (!Number.isInteger(pid) || pid <= 1) {
      writeError(`${pidFile} does not hold a process id\n`);
      return 1;
    }
    try {
      process.kill(pid, 'SIGHUP');
    } catch (err) {
      writeError(`cannot signal ${pid}: ${(err as NodeJS.ErrnoException).code}\n`);
      return 1;
    }
    process.stdout.write(`reload requested (pid ${pid}, policy ${file})\n`);
    return 0;
  },
};
