// A disclaimer job for a whole message held in memory, as the rule builds it from a session.
import { Readable } from 'node:stream';
import type { DisclaimerJob } from '../../src/mime/disclaimer/index.js';

export const DEFAULT_TEXTS = { text: 'This email is confidential.', html: '<p>This email is confidential.</p>' };

/** The message in pieces of `size` bytes (nothing may depend on where chunks end). */
export function pieces(raw: Buffer, size = 65536): Readable {
  const out: Buffer[] = [];
  for (let i = 0; i < raw.length; i += size) out.push(raw.subarray(i, i + size));
  return Readable.from(out);
}

export function disclaimerJob(raw: Buffer, extra: Partial<DisclaimerJob> = {}, chunk = 4096): DisclaimerJob {
  const blank = raw.indexOf('\r\n\r\n');
  const lfBlank = raw.indexOf('\n\n');
  const cut = blank >= 0 && (lfBlank < 0 || blank < lfBlank) ? blank + 4 : lfBlank >= 0 ? lfBlank + 2 : raw.length;
  return {
    texts: DEFAULT_TEXTS,
    source: { message: () => pieces(raw, chunk), state: new Map() },
    headerBlock: raw.subarray(0, cut),
    body: () => pieces(raw.subarray(cut), chunk),
    signal: AbortSignal.timeout(30_000),
    maxPartBytes: 2 * 1024 * 1024,
    maxLineLength: 1024 * 1024,
    maxParts: 1000,
    ...extra,
  };
}

/** The whole new message: the original header block and the rewritten body. */
export async function rewritten(job: DisclaimerJob, body: { stream(): Readable }): Promise<Buffer> {
  const chunks: Buffer[] = [job.headerBlock];
  for await (const c of body.stream() as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}
