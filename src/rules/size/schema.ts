// The size rule's YAML block: its schema, configuration type and default (shared by the rule's
// handlers and its MTA and audit parts).
import { z } from 'zod';
import { byteSize } from '../../primitives/units.js';
import { modeField, perDirection } from '../common.js';

/** Postfix's default message_size_limit (10,240,000 bytes). */
export const DEFAULT_MAX_BYTES = 10_240_000;

export const sizeSchema = z
  .object({
    mode: modeField(),
    /** One limit, or { inbound, outbound }. Units: 2097152, 2MiB, 512K. */
    max_bytes: perDirection(byteSize()).default(DEFAULT_MAX_BYTES),
  })
  .strict();
export type SizeConfig = z.infer<typeof sizeSchema>;
