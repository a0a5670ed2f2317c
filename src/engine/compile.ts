// Turns a validated policy into something that can run: rule instances, network sets, shared
// services. A compiled policy is immutable; a reload compiles a new one and swaps it in.
// The rule registry is a parameter: the rules sit above the engine (rules/compiled-policy.ts
// binds relayguard's registry).
import type { Logger } from 'winston';
import type { PolicySettings } from '../config/settings.js';
import type { RuleDefinition, RuleEnv } from '../policy/rule-env.js';
import type { RunningPolicy } from '../policy/running-policy.js';
import type { Rule } from '../policy/types.js';
import { domainMatches } from '../primitives/address.js';
import { NetworkSet } from '../primitives/networks.js';
import { PolicyEngine, type EngineHooks } from './engine.js';

/** A validated policy: the global settings and one block per configured rule under `rules`. */
export interface PolicyDocument extends PolicySettings {
  rules: Record<string, unknown>;
}

export interface CompileOptions {
  hooks?: EngineHooks;
  /** `relayguard check`: nothing may be recorded (offences, bans). */
  offline?: boolean;
  /** Test seam: rule instances added after the configured ones. */
  extraRules?: Rule[];
}

export class CompiledPolicyBase<C extends PolicyDocument> implements RunningPolicy {
  readonly internal: NetworkSet;
  readonly groups: Map<string, NetworkSet>;
  readonly engine: PolicyEngine;
  private readonly services = new Map<string, { value: unknown; close?: (v: unknown) => void | Promise<void> }>();

  constructor(
    registry: readonly RuleDefinition[],
    readonly config: C,
    readonly file: string,
    readonly log: Logger,
    options: CompileOptions = {},
  ) {
    this.internal = new NetworkSet(config.networks.internal);
    this.groups = new Map(Object.entries(config.networks.groups).map(([k, v]) => [k, new NetworkSet(v)]));
    const env: RuleEnv = {
      policy: this.settings,
      log,
      offline: options.offline === true,
      shared: <T>(key: string, make: () => T, close?: (service: T) => void | Promise<void>): T => {
        const existing = this.services.get(key);
        if (existing) return existing.value as T;
        const value = make();
        this.services.set(key, { value, ...(close ? { close: close as (v: unknown) => void | Promise<void> } : {}) });
        return value;
      },
    };
    const rules: Rule[] = [];
    for (const def of registry) {
      const ruleConfig = config.rules[def.name];
      // A rule that is off is not made at all: making one opens what it would use (the offender
      // ledger's database, the origin rule's files, clamd sessions) for nothing.
      if (ruleConfig === undefined || (ruleConfig as { mode?: string }).mode === 'off') continue;
      const rule = def.create(ruleConfig, env);
      if (rule.mode !== 'off') rules.push(rule);
    }
    rules.push(...(options.extraRules ?? []));
    this.engine = new PolicyEngine(rules, options.hooks ?? {});
  }

  get settings(): PolicySettings {
    const { server, mta, networks, dns, logging, local_domains } = this.config;
    return { server, mta, networks, dns, logging, local_domains };
  }

  isLocalDomain(domain: string): boolean {
    return this.config.local_domains.some((d) => domainMatches(domain, d));
  }

  groupsOf(ip: string | null): string[] {
    const out: string[] = [];
    for (const [name, set] of this.groups) if (set.contains(ip)) out.push(name);
    return out;
  }

  async close(): Promise<void> {
    await this.engine.close();
    for (const [, s] of this.services) {
      try {
        await s.close?.(s.value);
      } catch {
        /* closing is best effort */
      }
    }
    this.services.clear();
  }
}
