// The access rule's YAML block: its schema and configuration type (shared by the rule's handlers
// and its audit part).
import { z } from 'zod';
import { cidrList } from '../../config/settings.js';
import { modeField } from '../common.js';

export const accessSchema = z
  .object({
    mode: modeField(),
    /** Refused at connect, whoever they are. */
    deny_networks: cidrList().default([]),
    /** When not empty: only these networks and the internal ones may connect. */
    allow_networks: cidrList().default([]),
    anti_spoofing: z
      .object({
        envelope_sender: z.boolean().default(true),
        header_from: z.boolean().default(true),
        /** Protect sub.example.test too. */
        include_subdomains: z.boolean().default(true),
      })
      .strict()
      .default({ envelope_sender: true, header_from: true, include_subdomains: true }),
    /** Outside networks that may use our domains anyway (a partner's service sending for us). */
    allow_spoofing_from: cidrList().default([]),
  })
  .strict();
export type AccessConfig = z.infer<typeof accessSchema>;
