// relayguard postfix-config: print the MTA settings that go with the policy (main.cf lines for
// Postfix, sendmail.mc lines for Sendmail), each with a comment saying why.
import { silentLogger } from '../logging.js';
import { formatConfigLines, postfixConfigLines } from '../mta/postfix-config.js';
import { mtaRequirements } from '../mta/requirements.js';
import { accessMapPath, formatAccessMap, formatSendmailConfig } from '../mta/sendmail-config.js';
import { RULES } from '../rules/index.js';
import type { RuleEnv } from '../rules/rule-env.js';
import type { RuleNeeds } from '../policy/types.js';
import type { PolicyConfig } from '../config/schema.js';
import { bool, parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { loadPolicyOrExit } from './policy-file.js';

/**
 * The active rules' declared needs (macros). Building the rules is the only way to learn them.
 * They are built offline (as `check` does: no state is created, nothing is recorded) and closed
 * again; a rule that cannot be built here only loses its extra macros, and the output says so.
 */
export async function activeRuleNeeds(config: PolicyConfig): Promise<{ needs: Array<RuleNeeds | undefined>; note?: string }> {
  const services: Array<{ value: unknown; close?: (v: unknown) => void | Promise<void> }> = [];
  const registry = new Map<string, unknown>();
  const { server, mta, networks, dns, logging, local_domains } = config;
  const env: RuleEnv & { offline: true } = {
    policy: { server, mta, networks, dns, logging, local_domains },
    log: silentLogger(),
    offline: true,
    shared: <T>(key: string, make: () => T, close?: (service: T) => void | Promise<void>): T => {
      if (registry.has(key)) return registry.get(key) as T;
      const value = make();
      registry.set(key, value);
      services.push({ value, ...(close ? { close: close as (v: unknown) => void | Promise<void> } : {}) });
      return value;
    },
  };
  const needs: Array<RuleNeeds | undefined> = [];
  const failed: string[] = [];
  for (const def of RULES) {
    const ruleConfig = (config.rules as Record<string, unknown>)[def.name];
    if (ruleConfig === undefined) continue;
    try {
      const rule = def.create(ruleConfig, env);
      if (rule.mode !== 'off') needs.push(rule.needs);
      await rule.close?.();
    } catch (err) {
      failed.push(`${def.name} (${(err as Error).message})`);
    }
  }
  for (const s of services) await Promise.resolve(s.close?.(s.value)).catch(() => undefined);
  return failed.length ? { needs, note: `rules not loaded here, their extra macros are missing: ${failed.join(', ')}` } : { needs };
}

export const postfixConfigCommand: Command = {
  name: 'postfix-config',
  usage: 'postfix-config [--config F] [--mta postfix|sendmail] [--access-map]',
  summary: 'Print the main.cf (or sendmail.mc) lines that go with the policy, each with the reason; --access-map: Sendmail\'s access map.',
  async run(argv) {
    const a = parseArgs(argv, { config: { value: true }, mta: { value: true }, 'access-map': { value: false } });
    const { config, file } = loadPolicyOrExit(str(a, 'config'));
    const mta = str(a, 'mta') ?? config.mta.kind;
    if (mta !== 'postfix' && mta !== 'sendmail') throw new UsageError('--mta must be postfix or sendmail');
    const accessMapOnly = bool(a, 'access-map');
    if (accessMapOnly && mta !== 'sendmail') throw new UsageError('--access-map is for Sendmail (--mta sendmail, or mta.kind: sendmail)');
    const { needs, note } = await activeRuleNeeds(config);
    const req = mtaRequirements(config, needs);
    const header = [`relayguard postfix-config --mta ${mta} for ${file}`];
    if (note) header.push(note);
    if (mta === 'postfix') {
      header.push('Add to main.cf (later lines win), then: postfix reload. Check with: relayguard lint-mta');
      process.stdout.write(formatConfigLines(postfixConfigLines(req), header));
    } else {
      const accessMap = accessMapPath(config.mta.sendmail_cf);
      if (accessMapOnly) {
        header.push(`Write to ${accessMap}, then: makemap hash ${accessMap} < ${accessMap}`);
        process.stdout.write(formatAccessMap(req, header));
      } else {
        header.push('Add to sendmail.mc before the MAILER lines, rebuild sendmail.cf with m4, restart Sendmail.');
        process.stdout.write(formatSendmailConfig(req, header, { accessMap }));
      }
    }
    return 0;
  },
};
