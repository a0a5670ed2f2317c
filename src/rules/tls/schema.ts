// The tls rule's YAML block: its schema, configuration type and defaults (shared by the rule's
// handlers and its MTA and audit parts).
import { z } from 'zod';
import { domainList } from '../../config/settings.js';
import { isValidCidr } from '../../primitives/networks.js';
import { tlsRank } from '../../primitives/tls-version.js';
import { modeField } from '../common.js';

const DEFAULT_TLS_HEADER = 'X-Relayguard-TLS';
export const DEFAULT_MIN_VERSION = 'TLSv1.2';
const GROUP_NAME = /^[a-z][a-z0-9_-]*$/;

const networkOrGroup = () =>
  z
    .string()
    .refine((s) => isValidCidr(s) || GROUP_NAME.test(s), { message: 'not a CIDR range or a network group name' });

export const tlsSchema = z
  .object({
    mode: modeField(),
    require: z
      .object({
        /** CIDR ranges or names of groups under networks.groups. */
        networks: z.array(networkOrGroup()).default([]),
        /** Envelope sender domains (and their subdomains) that must come encrypted. */
        sender_domains: domainList().default([]),
      })
      .strict()
      .default({ networks: [], sender_domains: [] }),
    /** Where TLS is required, at least this protocol version. */
    min_version: z
      .string()
      .refine((v) => tlsRank(v) !== null, { message: 'use a protocol name such as TLSv1.2 or TLSv1.3' })
      .default(DEFAULT_MIN_VERSION),
    /** Where TLS is required, at least this many cipher bits (0: no minimum). */
    min_cipher_bits: z.number().int().nonnegative().default(0),
    /** Header recording the connection's TLS in every delivered message; false: none. */
    header: z
      .union([z.literal(false), z.string().regex(/^[!-9;-~]+$/, 'not a header field name')])
      .default(DEFAULT_TLS_HEADER),
  })
  .strict();
export type TlsConfig = z.infer<typeof tlsSchema>;
