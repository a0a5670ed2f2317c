// relayguard init: write a starting policy from the live Postfix (src/mta/init-policy.ts does the
// work). The result is validated before it is written; an existing file is never overwritten.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatError } from '../config/load.js';
import { parsePolicyText } from '../rules/policy-schema.js';
import { mtaSchema } from '../config/settings.js';
import { DEFAULT_CLAMD_CONF, initPolicyText, readClamdConf, readPostfixValues } from '../mta/init-policy.js';
import { POSTCONF_TIMEOUT_MS } from '../mta/lint.js';
import { chrootInfo } from '../mta/master-cf.js';
import { parseArgs, str } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';

export const initCommand: Command = {
  ...about('init'),
  async run(argv) {
    const a = parseArgs(argv, { out: { value: true }, 'clamd-conf': { value: true } });
    const defaults = mtaSchema.parse({});
    const configDir = process.env.MAIL_CONFIG || defaults.config_directory;
    let values: Map<string, string>;
    try {
      values = await readPostfixValues(defaults.postconf, configDir, POSTCONF_TIMEOUT_MS);
    } catch (err) {
      process.stderr.write(
        `relayguard init: ${(err as Error).message} (set MAIL_CONFIG to Postfix's configuration directory)\n`,
      );
      return 1;
    }
    const clamdConf = str(a, 'clamd-conf') ?? DEFAULT_CLAMD_CONF;
    const jail = smtpdJail(configDir, values.get('queue_directory') || '/var/spool/postfix');
    const text = initPolicyText(values, {
      configDir,
      clamdConf,
      clamd: readClamdConf(clamdConf),
      ...(jail ? { chrootedSmtpd: jail } : {}),
    });
    const out = str(a, 'out');
    const check = parsePolicyText(text, out ?? 'relayguard.yaml');
    if (!check.ok) {
      // A bug in init, not in the admin's Postfix: say what and write nothing.
      process.stderr.write(
        `relayguard init: the policy written from ${configDir} does not validate:\n${check.errors.map(formatError).join('\n')}\n`,
      );
      return 1;
    }
    if (!out) {
      process.stdout.write(text);
      return 0;
    }
    try {
      writeFileSync(out, text, { flag: 'wx', mode: 0o640 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      process.stderr.write(
        `relayguard init: ${out}: ${code === 'EEXIST' ? 'exists; not overwritten (remove it or choose another --out)' : (code ?? (err as Error).message)}\n`,
      );
      return 1;
    }
    process.stderr.write(
      `relayguard init: wrote ${resolve(out)} (every rule in monitor mode); next: relayguard validate --config ${out}\n`,
    );
    return 0;
  },
};

/** queue_directory when master.cf runs smtpd chrooted; null otherwise or when master.cf cannot be read. */
function smtpdJail(configDir: string, queueDirectory: string): string | null {
  try {
    return chrootInfo(readFileSync(join(configDir, 'master.cf'), 'utf8'), queueDirectory).smtpd ? queueDirectory : null;
  } catch {
    return null;
  }
}
