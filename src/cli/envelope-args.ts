// The envelope and message that `check` (through the policy offline) and `milter-check` (through
// a milter) play: one table of options and one reading of them, so the two commands take the same
// command line for the same message.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { list, str, UsageError, type FlagSpec, type ParsedArgs } from './args.js';

/** The options both commands take (each adds its own). */
export const ENVELOPE_OPTIONS = {
  config: { value: true },
  'client-ip': { value: true },
  helo: { value: true },
  from: { value: true },
  rcpt: { value: true, repeat: true },
  auth: { value: true },
  tls: { value: true },
  out: { value: true },
  json: { value: false },
} as const satisfies Record<string, FlagSpec>;

/** One positional argument: MESSAGE.eml, or - for standard input. */
export const ONE_MESSAGE = { min: 0, max: 1 } as const;

export interface Envelope {
  clientIp: string;
  rcpts: string[];
  helo?: string;
  from?: string;
  auth?: string;
  tls?: string;
}

/** The envelope on the command line, and where the message is; a usage error names what is missing. */
export function envelopeOf(a: ParsedArgs): { envelope: Envelope; messageFile: string } {
  const clientIp = str(a, 'client-ip');
  if (!clientIp || !isIP(clientIp)) throw new UsageError('--client-ip IP is required');
  const rcpts = list(a, 'rcpt');
  if (rcpts.length === 0) throw new UsageError('at least one --rcpt ADDR is required');
  const messageFile = a.positional[0];
  if (!messageFile) throw new UsageError('exactly one MESSAGE.eml is required');
  const envelope: Envelope = { clientIp, rcpts };
  for (const k of ['helo', 'from', 'auth', 'tls'] as const) {
    const v = str(a, k);
    if (v !== undefined) envelope[k] = v;
  }
  return { envelope, messageFile };
}

/** The message's bytes as given: a file, or standard input for "-". */
export function readMessage(file: string): Buffer {
  return file === '-' ? readFileSync(0) : readFileSync(file);
}
