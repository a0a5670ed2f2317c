import { formatError, loadPolicyFile } from '../config/load.js';
import { parseArgs, str } from './args.js';
import type { Command } from './command.js';
import { policyPath } from './policy-file.js';

export const validateCommand: Command = {
  name: 'validate',
  usage: 'validate [--config F]',
  summary: 'Check a policy file; every error is printed as file:line:col: message (exit 1).',
  async run(argv) {
    const args = parseArgs(argv, { config: { value: true } });
    const file = policyPath(str(args, 'config'));
    const r = loadPolicyFile(file);
    if (!r.ok) {
      for (const e of r.errors) process.stderr.write(formatError(e) + '\n');
      return 1;
    }
    process.stdout.write(`${file}: ok\n`);
    return 0;
  },
};
