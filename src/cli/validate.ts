// relayguard validate: check a policy file. Text: every error as file:line:col: message on stderr
// (exit 1). --json: one object on stdout, {ok, file, errors: [{line, col, path, message}]}.
import { formatError } from '../config/load.js';
import { writeError } from '../ops/journal-stream.js';
import { loadPolicyFile } from '../rules/policy-schema.js';
import { bool, parseArgs, str } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { policyPath } from './policy-file.js';

export const validateCommand: Command = {
  ...about('validate'),
  async run(argv) {
    const args = parseArgs(argv, { config: { value: true }, json: { value: false } });
    const file = policyPath(str(args, 'config'));
    const r = loadPolicyFile(file);
    if (bool(args, 'json')) {
      const errors = r.ok ? [] : r.errors.map((e) => ({ line: e.line, col: e.col, path: e.path, message: e.message }));
      process.stdout.write(JSON.stringify({ ok: r.ok, file, errors }, null, 2) + '\n');
      return r.ok ? 0 : 1;
    }
    if (!r.ok) {
      for (const e of r.errors) writeError(formatError(e) + '\n');
      return 1;
    }
    process.stdout.write(`${file}: ok\n`);
    return 0;
  },
};
