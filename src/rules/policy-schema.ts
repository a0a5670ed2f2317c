// The whole policy file: global settings plus one block per rule under `rules:`. Unknown keys
// are errors everywhere: a typo in a security policy must fail loudly, not be ignored.
import { z } from 'zod';
import { RULES } from './index.js';
import { dnsSchema, domainList, loggingSchema, mtaSchema, networksSchema, serverSchema } from '../config/settings.js';

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
