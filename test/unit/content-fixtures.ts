// Test helpers for rule 6 (content): MIME messages and zip archives built in the test, and a
// way to run the content rule's end-of-message handler on a raw message.
import { execFileSync } from 'node:child_process';
import winston from 'winston';
import type { Direction, Verdict } from '../../src/policy/types.js';
import { contentRule } from '../../src/rules/content.js';
import { contentSchema } from '../../src/rules/content/schema.js';
import { kitConnection, kitEnv, kitInput, kitMessage } from '../support/rule-kit.js';

export const log = winston.createLogger({ silent: true });

export const REFERENCE_CONTENT = {
  mode: 'enforce',
  attachments: { blocked_extensions: ['exe', 'scr', 'js', 'vbs', 'bat', 'cmd', 'com', 'ps1'], action: 'reject' },
  rules: [
    { name: 'card-numbers', direction: 'outbound', detector: 'payment_card', action: 'quarantine' },
    {
      name: 'confidential-marker',
      direction: 'outbound',
      phrase: 'CONFIDENTIAL - INTERNAL ONLY',
      where: ['subject', 'body'],
      action: 'reject',
    },
  ],
};

const env = kitEnv({ log });

export function contentRuleFor(config: unknown) {
  return contentRule.create(contentSchema.parse(config), env);
}

/** Runs the content rule's eom handler on `raw` (CRLF line ends are added). */
export async function runContent(
  config: unknown,
  raw: string | Buffer,
  direction: Direction = 'inbound',
): Promise<Verdict> {
  const rule = contentRuleFor(config);
  const bytes = typeof raw === 'string' ? Buffer.from(crlf(raw), 'utf8') : raw;
  // The content rule reads the whole message as a stream (source.message()), as given.
  const msg = kitMessage(bytes, { direction, log, spilled: true, verbatim: true });
  const input = kitInput(kitConnection({ log }), msg);
  return rule.handlers.eom!(input);
}

export function crlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}

/** Wraps base64 at 76 characters like a mail client does. */
export function b64(data: Buffer | string): string {
  return (Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('base64').replace(/.{76}/g, '$&\n');
}

/** A multipart/mixed message: a text part plus the given extra parts (each a header block + body). */
export function mixed(extraParts: string[], opts: { subject?: string; text?: string } = {}): string {
  const boundary = 'b1_relayguard_test';
  const parts = [
    `Content-Type: text/plain; charset=utf-8\n\n${opts.text ?? 'Hello, please find the file attached.'}`,
    ...extraParts,
  ];
  return [
    'From: alice@example.test',
    'To: bob@partner.test',
    `Subject: ${opts.subject ?? 'test'}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    ...parts.map((p) => `--${boundary}\n${p}`),
    `--${boundary}--`,
    '',
  ].join('\n');
}

export function plain(text: string, headers: string[] = []): string {
  return ['From: alice@example.test', 'To: bob@partner.test', 'Subject: test', ...headers, '', text, ''].join('\n');
}

export interface ZipEntrySpec {
  name: string;
  data?: string;
  /** Base64 of binary data (e.g. an inner zip). */
  data_b64?: string;
  deflate?: boolean;
}

/** A real zip written by Python's zipfile module. */
export function pythonZip(entries: ZipEntrySpec[]): Buffer {
  const script = [
    'import base64, io, json, sys, zipfile',
    'spec = json.loads(sys.stdin.read())',
    'buf = io.BytesIO()',
    'with zipfile.ZipFile(buf, "w") as z:',
    '    for e in spec:',
    '        data = base64.b64decode(e["data_b64"]) if "data_b64" in e else e.get("data", "x").encode()',
    '        z.writestr(zipfile.ZipInfo(e["name"]) if not e.get("deflate") else e["name"], data, compress_type=zipfile.ZIP_DEFLATED if e.get("deflate") else zipfile.ZIP_STORED)',
    'sys.stdout.buffer.write(buf.getvalue())',
  ].join('\n');
  return execFileSync('/usr/bin/python3', ['-c', script], {
    input: JSON.stringify(entries),
    maxBuffer: 64 * 1024 * 1024,
  });
}
