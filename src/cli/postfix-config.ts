// relayguard postfix-config: print the MTA settings that go with the policy (main.cf lines for
// Postfix, sendmail.mc lines for Sendmail), each with a comment saying why.
import { silentLogger } from '../ops/logging.js';
import { POSTCONF_TIMEOUT_MS } from '../mta/lint.js';
import { applyPostfixChanges } from '../mta/postfix-apply.js';
import { formatChanges, planPostfixChanges } from '../mta/postfix-changes.js';
import { mtaRequirements } from '../mta/requirements.js';
import { accessMapPath, formatAccessMap, formatSendmailConfig } from '../mta/sendmail-config.js';
import { RULES } from '../rules/index.js';
import type { RuleEnv } from '../policy/rule-env.js';
import type { RuleNeeds } from '../policy/types.js';
import type { PolicyConfig } from '../rules/policy-schema.js';
import { bool, parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { readFileSync } from 'node:fs';
import { loadPolicyOrExit, postfixConfigDir } from './policy-file.js';

/**
 * The active rules' declared needs (macros). Building the rules is the only way to learn them.
 * They are built offline (as `check` does: no state is created, nothing is recorded) and closed
 * again; a rule that cannot be built here only loses its extra macros, and the output says so.
 */
async function activeRuleNeeds(config: PolicyConfig): Promise<{ needs: Array<RuleNeeds | undefined>; note?: string }> {
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
  return failed.length
    ? { needs, note: `rules not loaded here, their extra macros are missing: ${failed.join(', ')}` }
    : { needs };
}

export const postfixConfigCommand: Command = {
  ...about('postfix-config'),
  async run(argv) {
    const a = parseArgs(argv, {
      config: { value: true },
      mta: { value: true },
      'access-map': { value: false },
      apply: { value: false },
      postconf: { value: true },
    });
    const { config, file } = loadPolicyOrExit(str(a, 'config'));
    const mta = str(a, 'mta') ?? config.mta.kind;
    if (mta !== 'postfix' && mta !== 'sendmail') throw new UsageError('--mta must be postfix or sendmail');
    const accessMapOnly = bool(a, 'access-map');
    if (accessMapOnly && mta !== 'sendmail')
      throw new UsageError('--access-map is for Sendmail (--mta sendmail, or mta.kind: sendmail)');
    const { needs, note } = await activeRuleNeeds(config);
    const req = mtaRequirements(config, needs);
    const header = [`relayguard postfix-config --mta ${mta} for ${file}`];
    if (note) header.push(note);
    if (mta === 'postfix')
      return postfixChangesCommand(req, config, {
        file,
        header,
        apply: bool(a, 'apply'),
        postconf: str(a, 'postconf'),
      });
    if (bool(a, 'apply') || str(a, 'postconf')) throw new UsageError('--apply and --postconf are for Postfix');
    const accessMap = accessMapPath(config.mta.sendmail_cf);
    if (accessMapOnly) {
      header.push(`Write to ${accessMap}, then: makemap hash ${accessMap} < ${accessMap}`);
      process.stdout.write(formatAccessMap(req, header, { accessMap }));
    } else {
      header.push('Add to sendmail.mc before the MAILER lines, rebuild sendmail.cf with m4, restart Sendmail.');
      process.stdout.write(formatSendmailConfig(req, header, { accessMap }));
    }
    return 0;
  },
};

/** The Postfix side of postfix-config: print the changes, or with --apply run them. */
async function postfixChangesCommand(
  req: ReturnType<typeof mtaRequirements>,
  config: PolicyConfig,
  opts: { file: string; header: string[]; apply: boolean; postconf: string | undefined },
): Promise<number> {
  const configDir = postfixConfigDir(config);
  if (opts.apply && opts.postconf)
    throw new UsageError('--apply changes the live Postfix; it does not take --postconf');
  const saved = opts.postconf
    ? {
        text: readFileSync(opts.postconf === '-' ? 0 : opts.postconf, 'utf8'),
        source: opts.postconf === '-' ? 'stdin' : opts.postconf,
      }
    : undefined;
  const plan = await planPostfixChanges(req, {
    program: config.mta.postconf,
    configDir,
    timeoutMs: POSTCONF_TIMEOUT_MS,
    ...(saved ? { postconfText: saved } : {}),
  });
  for (const n of plan.notes) process.stderr.write(`relayguard postfix-config: ${n}\n`);
  if (opts.apply) {
    if (plan.fallback) {
      process.stderr.write(`relayguard postfix-config --apply: ${plan.fallback}\n`);
      return 1;
    }
    const r = await applyPostfixChanges(plan.changes, {
      program: config.mta.postconf,
      configDir,
      timeoutMs: POSTCONF_TIMEOUT_MS,
    });
    if (!r.backup) {
      process.stdout.write(`${configDir}/main.cf already has every setting the policy needs: nothing changed\n`);
      return 0;
    }
    const applied = plan.changes.filter((c) => !c.suggestion);
    process.stdout.write(
      `relayguard postfix-config --apply: ${applied.length} setting(s) changed in ${configDir}/main.cf; backup: ${r.backup}\n`,
    );
    if (r.folded.length)
      process.stdout.write(`set more than once, now once (the value Postfix used): ${r.folded.join(', ')}\n`);
    for (const c of applied) if (c.flag) process.stdout.write(`check: ${c.name}: ${c.flag}\n`);
    for (const c of plan.changes)
      if (c.suggestion) process.stdout.write(`not applied (site data): ${c.name}: ${c.why}\n`);
    process.stdout.write(r.diff);
    for (const w of r.warnings) process.stdout.write(`postconf -n still warns: ${w}\n`);
    process.stdout.write(
      `next: postfix${configDir === '/etc/postfix' ? '' : ` -c ${configDir}`} reload, then relayguard lint-mta; undo: cp ${r.backup} ${configDir}/main.cf\n`,
    );
    return r.warnings.some((w) => /overriding earlier entry/.test(w)) ? 1 : 0;
  }
  const header = [...opts.header];
  if (plan.fallback)
    header.push(`postconf could not run (${plan.fallback}): the changes below are against Postfix's defaults`);
  for (const n of plan.notes) header.push(`NOTE: ${n}`);
  header.push(
    plan.changes.length
      ? `${plan.changes.length} setting(s) differ from ${plan.source}. Run the commands (or: relayguard postfix-config --apply), then: postfix reload. Check with: relayguard lint-mta`
      : `nothing to change: ${plan.source} already has every setting the policy needs`,
  );
  process.stdout.write(formatChanges(plan.changes, configDir, header, plan.kept));
  return 0;
}
