// The origin rule's YAML block: its schema and configuration type (shared by the rule's handlers
// and its audit part).
import { z } from 'zod';
import { duration } from '../../primitives/units.js';
import { isValidCidr } from '../../primitives/networks.js';
import { modeField } from '../common.js';
import { directionSchema } from './judge.js';

const GROUP_NAME = /^[a-z][a-z0-9_-]*$/;

export const originSchema = z
  .object({
    mode: modeField(),
    /** .mmdb files: a country database, an ASN database, or one that has both (IPinfo lite). */
    databases: z.array(z.string().min(1)).min(1),
    /** How often a lookup may stat the files to pick up a replaced one. */
    reload_check: duration().default(60_000),
    /** Data older than this (by the file's build date) is logged as a warning and shown by `relayguard audit`. */
    max_age: duration().default(45 * 86_400_000),
    /** CIDR ranges or network group names never judged (partners). */
    exempt: z
      .array(
        z
          .string()
          .refine((s) => isValidCidr(s) || GROUP_NAME.test(s), { message: 'not a CIDR range or a network group name' }),
      )
      .default([]),
    /** Only inbound mail is judged: internal and authenticated clients (outbound) never are. */
    inbound: directionSchema,
  })
  .strict();

export type OriginConfig = z.infer<typeof originSchema>;
