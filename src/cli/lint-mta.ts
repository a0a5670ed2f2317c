// relayguard lint-mta: check Postfix's settings (postconf -n) against the policy. Exit 1 when
// any finding is an error, 0 otherwise (warnings are printed but do not fail).
import { readFileSync } from 'node:fs';
import { formatFinding, lintPostconfText, POSTCONF_TIMEOUT_MS } from '../mta/lint.js';
import { runPostconf } from '../mta/postconf.js';
import { bool, parseArgs, str } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { loadPolicyOrExit, postfixConfigDir } from './policy-file.js';

export const lintMtaCommand: Command = {
  ...about('lint-mta'),
  async run(argv) {
    const a = parseArgs(argv, { config: { value: true }, postconf: { value: true }, json: { value: false } });
    const { config } = loadPolicyOrExit(str(a, 'config'));
    const file = str(a, 'postconf');
    let text: string;
    let source: string;
    if (file) {
      text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
      source = file === '-' ? 'stdin' : file;
    } else {
      const configDir = postfixConfigDir(config);
      source = `postconf -c ${configDir} -n`;
      try {
        text = await runPostconf({ program: config.mta.postconf, configDir, timeoutMs: POSTCONF_TIMEOUT_MS });
      } catch (err) {
        process.stderr.write(`relayguard lint-mta: ${(err as Error).message}\n`);
        return 1;
      }
    }
    const findings = lintPostconfText(text, config);
    const errors = findings.filter((f) => f.severity === 'error').length;
    if (bool(a, 'json')) {
      process.stdout.write(JSON.stringify({ ok: errors === 0, source, findings }, null, 2) + '\n');
    } else {
      for (const f of findings) process.stdout.write(formatFinding(f) + '\n');
      process.stdout.write(`${source}: ${errors} error(s), ${findings.length - errors} warning(s)\n`);
    }
    return errors ? 1 : 0;
  },
};
