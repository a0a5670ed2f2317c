// The antivirus rule's YAML block: its schema and configuration type (shared by the rule's
// handlers and its MTA and audit parts).
import { z } from 'zod';
import { byteSize, duration } from '../../primitives/units.js';
import { parseClamdAddress } from '../../deps/clamd.js';
import { modeField, perDirection } from '../common.js';

export const DEFAULT_HEADER = 'X-Virus-Scanned';

const headerName = () => z.string().regex(/^[!-9;-~]+$/, 'not a header field name');
const infectedAction = z.enum(['reject', 'quarantine', 'discard', 'tempfail']);
export const failureAction = z.enum(['tempfail', 'accept-with-header', 'reject']);

export const antivirusSchema = z
  .object({
    mode: modeField(),
    clamd: z
      .object({
        /** tcp:HOST:PORT, HOST:PORT or unix:/path */
        address: z.string().refine(
          (v) => {
            try {
              parseClamdAddress(v);
              return true;
            } catch {
              return false;
            }
          },
          { message: 'use tcp:HOST:PORT, HOST:PORT or unix:/path' },
        ),
        /** How long clamd may stay silent (connect, taking data, the verdict). Keep it below server.deadlines.content. */
        timeout: duration().default(30_000),
        /** Messages bigger than this are not sent to clamd (on_oversize decides). Keep it at or below clamd's StreamMaxLength. */
        max_size: byteSize().optional(),
        /** Connections kept open between scans (clamd's IDSESSION), at most this many idle; 0: one connection per scan. */
        sessions: z.number().int().min(0).max(256).default(16),
      })
      .strict(),
    /** What happens to an infected message. discard is allowed but never a default. */
    actions: perDirection(infectedAction).default({ inbound: 'reject', outbound: 'quarantine' }),
    /** What happens when the message could not be scanned. */
    on_failure: perDirection(failureAction).default('tempfail'),
    /** A message above clamd.max_size; default: as on_failure. */
    on_oversize: perDirection(failureAction).optional(),
    breaker: z
      .object({
        /** Consecutive clamd failures that mark it down. */
        failures: z.number().int().min(1).default(3),
        /** How long it stays marked down before one message is tried again. */
        cooldown: duration().default(30_000),
        /** While marked down, PING clamd at most this often to notice it is back sooner. */
        probe_interval: duration().default(2_000),
        /** How long that PING may take (a message waits for it at MAIL). */
        probe_timeout: duration().default(1_000),
      })
      .strict()
      .default({ failures: 3, cooldown: 30_000, probe_interval: 2_000, probe_timeout: 1_000 }),
    /** Header that records the scan on delivered and held mail (false: none). Copies coming from outside are removed. */
    header: z.union([headerName(), z.literal(false)]).default(DEFAULT_HEADER),
  })
  .strict();

export type AntivirusConfig = z.infer<typeof antivirusSchema>;
