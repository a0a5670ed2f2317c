// The relay rule's YAML block: its schema and configuration type (shared by the rule's handlers
// and its MTA and audit parts).
import { z } from 'zod';
import { cidrList, domainList } from '../../config/settings.js';
import { modeField } from '../common.js';

export const relaySchema = z
  .object({
    mode: modeField(),
    /** Besides the policy's local_domains: further domains we accept mail for (Postfix relay_domains). */
    relay_domains: domainList().default([]),
    /** Does example.test also cover sub.example.test? Postfix's relay_domains does not by default. */
    include_subdomains: z.boolean().default(false),
    /** Further networks that may relay (besides networks.internal). Keep it short. */
    trusted_networks: cidrList().default([]),
    /** Refuse % ! and @ in the local part of a recipient in our domains (routing tricks). */
    refuse_routing_local_parts: z.boolean().default(true),
  })
  .strict();
export type RelayConfig = z.infer<typeof relaySchema>;
