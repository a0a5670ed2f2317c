// Turns a validated policy into something that can run: rule instances, network sets, shared
// services. A compiled policy is immutable; a reload compiles a new one and swaps it in.
import type { Logger } from 'winston';
import type { PolicyConfig } from '../rules/policy-schema.js';
import type { PolicySettings } from '../config/settings.js';
import { RULES } from '../rules/index.js';
import type { RuleEnv } from '../policy/rule-env.js';
import { PolicyEngine, type EngineHooks } from './engine.js';
import { NetworkSet } from '../primitives/networks.js';
import { domainMatches } from '../primitives/address.js';
import type { Rule } from '../policy/types.js';

export class CompiledPolicy {
  readonly internal: NetworkSet;
  readonly groups: Map<string, NetworkSet>;
  readonly engine: PolicyEngine;
  private readonly services = new Map<string, { value: unknown; close?: (v: unknown) => void | Promise<void> }>();

  constructor(
    readonly config: PolicyConfig,
    readonly file: string,
    readonly log: Logger,
    options: {
      hooks?: EngineHooks;
      /** `relayguard check`: nothing may be recorded (offences, bans). */
      offline?: boolean;
      /** Test seam: rule instances added after the configured ones. */
      extraRules?: Rule[];
    } = {},
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
    for (const def of RULES) {
      const ruleConfig = (config.rules as Record<string, unknown>)[def.name];
      if (ruleConfig === undefined) continue;
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
