// The benchmark's two messages, written as files for smtp-source -F (LF line ends: smtp-source
// sends CRLF after each line). Content is deterministic so every run sends the same bytes.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { xorshift32 } from './stats.js';

export const BENCH_SENDER = 'sender@example.test';
export const BENCH_RECIPIENT = 'user@example.test';

/** Target sizes (whole message, headers included). */
export const TEXT_MESSAGE_BYTES = 5 * 1024;
export const MULTIPART_MESSAGE_BYTES = 100 * 1024;
const BASE64_LINE = 76;

const WORDS =
  'the gateway relays mail for the office and checks every message before it leaves or arrives while the queue keeps moving and nobody notices anything at all except that mail is delivered on time as always'.split(
    ' ',
  );

/** Plain prose of about `bytes` bytes in lines under 78 characters (no digits: nothing looks like a card number). */
export function prose(bytes: number, seed = 1): string {
  const rand = xorshift32(seed);
  const lines: string[] = [];
  let total = 0;
  while (total < bytes) {
    let line = '';
    while (line.length < 66) line += (line ? ' ' : '') + WORDS[Math.floor(rand() * WORDS.length)]!;
    lines.push(line);
    total += line.length + 1;
  }
  return lines.join('\n');
}

function headers(subject: string, extra: string[]): string[] {
  return [
    `From: Bench Sender <${BENCH_SENDER}>`,
    `To: <${BENCH_RECIPIENT}>`,
    `Subject: ${subject}`,
    'Date: Sat, 28 Nov 2026 00:00:00 +0000',
    'Message-ID: <bench@example.test>',
    'MIME-Version: 1.0',
    ...extra,
  ];
}

/** About 5 KB: one text/plain part. */
export function textMessage(): string {
  const head = headers('relayguard benchmark, text', [
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
  ]);
  const headBytes = head.join('\n').length + 2;
  return `${head.join('\n')}\n\n${prose(TEXT_MESSAGE_BYTES - headBytes)}\n`;
}

/** About 100 KB: multipart/mixed, a short text part and a base64 attachment of random bytes. */
export function multipartMessage(): string {
  const boundary = '=_relayguard_bench_boundary';
  const head = headers('relayguard benchmark, multipart', [`Content-Type: multipart/mixed; boundary="${boundary}"`]);
  const text = prose(1024, 2);
  const partHead = [
    `--${boundary}`,
    'Content-Type: application/pdf; name="report.pdf"',
    'Content-Disposition: attachment; filename="report.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    '',
  ].join('\n');
  const fixed = head.join('\n').length + text.length + partHead.length + 300;
  const rawBytes = Math.floor(((MULTIPART_MESSAGE_BYTES - fixed) * 3) / 4 / (1 + 1 / BASE64_LINE));
  const rand = xorshift32(3);
  const raw = Buffer.alloc(rawBytes);
  for (let i = 0; i < rawBytes; i++) raw[i] = Math.floor(rand() * 256);
  const b64 = raw
    .toString('base64')
    .match(new RegExp(`.{1,${BASE64_LINE}}`, 'g'))!
    .join('\n');
  return [
    head.join('\n'),
    '',
    'This is a multi-part message in MIME format.',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    text,
    partHead + b64,
    `--${boundary}--`,
    '',
  ].join('\n');
}

export type MessageKind = 'text-5k' | 'multipart-100k';
export const MESSAGE_KINDS: readonly MessageKind[] = ['text-5k', 'multipart-100k'];

/** Writes both messages into `dir`; returns their paths. */
export function writeMessages(dir: string): Record<MessageKind, string> {
  const out = { 'text-5k': join(dir, 'text-5k.eml'), 'multipart-100k': join(dir, 'multipart-100k.eml') };
  writeFileSync(out['text-5k'], textMessage());
  writeFileSync(out['multipart-100k'], multipartMessage());
  return out;
}
