// What a rule factory gets: the global settings, a logger and a registry of shared services
// (a DNS resolver, the clamd client, the offender ledger...) created once per loaded policy.
import type { Logger } from 'winston';
import type { z } from 'zod';
import type { PolicySettings } from '../config/settings.js';
import type { RuleAuditPart, RuleMtaPart } from '../policy/rule-parts.js';
import type { Rule } from '../policy/types.js';

export interface RuleEnv {
  policy: PolicySettings;
  log: Logger;
  /** True for `relayguard check`: rules read state (bans) but must not record anything. */
  offline: boolean;
  /** Get or create the service `key`; `close` runs when the policy is unloaded. */
  shared<T>(key: string, make: () => T, close?: (service: T) => void | Promise<void>): T;
}

export interface RuleDefinition<S extends z.ZodType = z.ZodType> {
  /** Key under `rules:` in the YAML, and the rule's name in traces. */
  name: string;
  /** One line: what the rule protects against. */
  summary: string;
  /** zod schema of the rule's YAML block; must include `mode` (see modeField) and be .strict(). */
  schema: S;
  create(config: z.infer<S>, env: RuleEnv): Rule;
  /** Checks that need the rest of the policy (e.g. a network group name). Paths are relative
   *  to the rule's block; `relayguard validate` reports them by line and column. */
  crossCheck?(config: z.infer<S>, policy: PolicySettings): Array<{ path: Array<string | number>; message: string }>;
  /** What the rule requires of the MTA in front (main.cf, sendmail.mc) and how the lint checks it. */
  mta?: RuleMtaPart<z.infer<S>>;
  /** The rule's probes in `relayguard audit`. */
  audit?: RuleAuditPart<z.infer<S>>;
}

export function defineRule<S extends z.ZodType>(def: RuleDefinition<S>): RuleDefinition<S> {
  return def;
}
