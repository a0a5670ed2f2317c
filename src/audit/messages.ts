// The audit's test messages. Every one carries the marker header, so a message that gets
// through is recognisable in the audit mailbox and in logs. The EICAR test file is put together
// at run time from pieces: no file of relayguard contains it whole (scanners would flag the
// package itself).
import { randomBytes } from 'node:crypto';

export const AUDIT_HEADER = 'X-Relayguard-Audit';

/** The EICAR anti-virus test file (68 bytes), assembled from harmless pieces. */
export function eicarTestFile(): Buffer {
  const pieces = ['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-', 'ANTIVIRUS-TEST-', 'FILE!$H+H*'];
  return Buffer.from(pieces.join(''), 'latin1');
}

/**
 * Bytes named like a Windows program but harmless: "MZ" and text. It must be refused for its
 * name alone (a blocked attachment type), not because a scanner recognises it.
 */
export function harmlessExecutable(): Buffer {
  return Buffer.from('MZ relayguard audit: a harmless file with a blocked name\r\n', 'latin1');
}

export function newAuditId(): string {
  return `${new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${randomBytes(4).toString('hex')}`;
}

export interface Attachment {
  filename: string;
  contentType: string;
  content: Buffer;
}

export interface AuditMessageInput {
  id: string;
  probe: string;
  from: string;
  to: string;
  subject: string;
  text: string;
  attachment?: Attachment;
  /** The host name used in Message-ID. */
  host: string;
}

function base64Lines(b: Buffer): string {
  return (b.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

/** A complete RFC 5322 message with CRLF line ends. */
export function auditMessage(m: AuditMessageInput): Buffer {
  const headers = [
    `From: <${m.from}>`,
    `To: <${m.to}>`,
    `Subject: ${m.subject}`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${m.id}.${m.probe}@${m.host}>`,
    `${AUDIT_HEADER}: ${m.id} ${m.probe}`,
    'MIME-Version: 1.0',
  ];
  if (!m.attachment) {
    headers.push('Content-Type: text/plain; charset=us-ascii', 'Content-Transfer-Encoding: 7bit');
    return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${m.text}\r\n`, 'latin1');
  }
  const boundary = `=_relayguard_audit_${m.id}`;
  headers.push(`Content-Type: multipart/mixed; boundary="${boundary}"`);
  const a = m.attachment;
  const body = [
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    m.text,
    `--${boundary}`,
    `Content-Type: ${a.contentType}; name="${a.filename}"`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${a.filename}"`,
    '',
    base64Lines(a.content),
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body.join('\r\n')}`, 'latin1');
}
