// The whole policy file: global settings plus one block per rule under `rules:`, composed from
// the rule registry here and nowhere else. Unknown keys are errors everywhere: a typo in a
// security policy must fail loudly, not be ignored.
import { z } from 'zod';
import { loadPolicy, parsePolicy, type LoadResult, type PolicyFileSpec } from '../config/load.js';
import { dnsSchema, domainList, loggingSchema, mtaSchema, networksSchema, serverSchema } from '../config/settings.js';
import { RULES } from './index.js';

const ruleShape = Object.fromEntries(RULES.map((r) => [r.name, r.schema.optional()]));

export const policySchema = z
  .object({
    server: serverSchema.default(serverSchema.parse({})),
    mta: mtaSchema.default(mtaSchema.parse({})),
    networks: networksSchema.default(networksSchema.parse({})),
    dns: dnsSchema.default(dnsSchema.parse({})),
    logging: loggingSchema.default(loggingSchema.parse({})),
    /** Our own domains: mail to them is accepted from anyone; they may not be spoofed from outside. */
    local_domains: domainList().default([]),
    rules: z.object(ruleShape).strict().default({}),
  })
  .strict();

export type PolicyConfig = z.infer<typeof policySchema>;

/** Rule checks that need the whole policy, with paths from the top of the file. */
function crossCheck(config: PolicyConfig): Array<{ path: Array<string | number>; message: string }> {
  const { server, mta, networks, dns, logging, local_domains } = config;
  const settings = { server, mta, networks, dns, logging, local_domains };
  const out: Array<{ path: Array<string | number>; message: string }> = [];
  for (const def of RULES) {
    const cfg = (config.rules as Record<string, unknown>)[def.name];
    if (cfg === undefined || !def.crossCheck) continue;
    for (const e of def.crossCheck(cfg, settings))
      out.push({ path: ['rules', def.name, ...e.path], message: e.message });
  }
  return out;
}

const policyFile: PolicyFileSpec<typeof policySchema> = { schema: policySchema, crossCheck };

export function loadPolicyFile(file: string): LoadResult<PolicyConfig> {
  return loadPolicy(policyFile, file);
}

export function parsePolicyText(text: string, file: string): LoadResult<PolicyConfig> {
  return parsePolicy(policyFile, text, file);
}
