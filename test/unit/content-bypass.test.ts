// Regression tests for the MIME forms that hid parts from the content rule while mail clients
// (and Python's email package, Perl's MIME::Parser) showed them: issue 16 findings 1 and 2, and
// issue 15's unterminated inner multipart. Each message is refused like its plain twin.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENCODED_MESSAGE_MAX_BYTES } from '../../src/mime/scan-parts.js';
import { b64, pythonZip, REFERENCE_CONTENT, runContent } from './content-fixtures.js';

const MZ = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(62, 0x41)]);
const CARD = '4111 1111 1111 1111';
const MARKER = 'CONFIDENTIAL - INTERNAL ONLY';

function mixedWith(boundaryLine: (b: string) => string, extra: string): string {
  return [
    'From: a@outside.test',
    'Content-Type: multipart/mixed; boundary="M"',
    '',
    boundaryLine('--M'),
    'Content-Type: text/plain',
    '',
    'hello',
    boundaryLine('--M'),
    extra,
    boundaryLine('--M--'),
    '',
  ].join('\n');
}

const exePart = `Content-Type: application/octet-stream\nContent-Disposition: attachment; filename="evil.exe"\nContent-Transfer-Encoding: base64\n\n${b64(MZ)}`;

test('blanks after a delimiter line still delimit: the .exe behind "--M   " is refused', async () => {
  for (const pad of ['   ', '\t', ' \t ']) {
    const v = await runContent(
      REFERENCE_CONTENT,
      mixedWith((l) => l + pad, exePart),
    );
    assert.equal(v.action, 'reject', `padding ${JSON.stringify(pad)}`);
    assert.match(v.reason!, /evil\.exe/);
  }
});

test('blanks after a delimiter line do not hide the outbound marker', async () => {
  const v = await runContent(
    REFERENCE_CONTENT,
    mixedWith((l) => l + '   ', `Content-Type: text/plain\n\n${MARKER}`),
    'outbound',
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /confidential-marker/);
});

const unterminated = (closeInner: boolean) =>
  [
    'From: a@outside.test',
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    '--outer',
    'Content-Type: multipart/alternative; boundary="inner"',
    '',
    '--inner',
    'Content-Type: text/plain',
    '',
    'hi',
    '--inner',
    'Content-Type: text/html',
    '',
    '<p>hi</p>',
    ...(closeInner ? ['--inner--'] : []),
    '--outer',
    'Content-Type: application/octet-stream; name="invoice.exe"',
    'Content-Transfer-Encoding: base64',
    '',
    b64(MZ),
    '--outer--',
    '',
  ].join('\n');

test('an inner multipart left unterminated is closed by the outer delimiter: the .exe after it is refused like its twin', async () => {
  for (const closed of [true, false]) {
    const v = await runContent(REFERENCE_CONTENT, unterminated(closed), 'inbound');
    assert.equal(v.action, 'reject', closed ? 'terminated twin' : 'unterminated');
    assert.match(v.reason!, /invoice\.exe/);
    const out = await runContent(REFERENCE_CONTENT, unterminated(closed), 'outbound');
    assert.equal(out.action, 'reject');
  }
});

test('base64 with "-" and "_" is decoded as readers decode it (they skip those bytes): the zipped .exe is found', async () => {
  const zip = pythonZip([{ name: 'invoice.exe', data: 'MZ...' }]);
  // The standard encoding with "-" and "_" sprinkled in: readers skip them and get the zip.
  const noisy = zip
    .toString('base64')
    .replace(/(.{8})/g, '$1-_')
    .replace(/.{76}/g, '$&\n');
  const v = await runContent(
    REFERENCE_CONTENT,
    mixedWith(
      (l) => l,
      `Content-Type: application/zip; name="files.zip"\nContent-Transfer-Encoding: base64\n\n${noisy}`,
    ),
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /invoice\.exe/);
});

test('a lone "=" inside base64 data does not end it (only pads that complete a group do): the zipped .exe is found', async () => {
  const zip = pythonZip([{ name: 'invoice.exe', data: 'MZ...' }]);
  const encoded = zip.toString('base64');
  // After 6 characters (two into a group) one "=" cannot complete the group: Python's decoder
  // and Perl's MIME::Parser skip it and decode the rest, so a reader gets the whole zip.
  const broken = `${encoded.slice(0, 6)}=${encoded.slice(6)}`.replace(/.{76}/g, '$&\n');
  const v = await runContent(
    REFERENCE_CONTENT,
    mixedWith(
      (l) => l,
      `Content-Type: application/zip; name="files.zip"\nContent-Transfer-Encoding: base64\n\n${broken}`,
    ),
  );
  assert.equal(v.action, 'reject', v.reason);
  assert.match(v.reason!, /invoice\.exe/);
});

test('a lone "=" inside base64 text does not hide what follows it from the outbound marker check', async () => {
  const encoded = Buffer.from(`Quarterly figures attached.\n${MARKER}\n`).toString('base64');
  const v = await runContent(
    REFERENCE_CONTENT,
    mixedWith(
      (l) => l,
      `Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n${encoded.slice(0, 6)}=${encoded.slice(6)}`,
    ),
    'outbound',
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /confidential-marker/);
});

test('an unquoted name with a comment in it is also read as a strict parser reads it: "evil.exe(1).pdf" is refused', async () => {
  // RFC 2045 allows only a token unquoted: Perl's MIME::Parser shows "evil.exe" here, Python
  // the whole value. Without a quoted filename in Content-Disposition both are names to check.
  const part = `Content-Type: application/octet-stream; name=evil.exe(1).pdf\nContent-Transfer-Encoding: base64\n\n${b64(MZ)}`;
  const v = await runContent(
    REFERENCE_CONTENT,
    mixedWith((l) => l, part),
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /evil\.exe/);
});

function uuencode(data: Buffer, name: string): string {
  const lines = [`begin 644 ${name}`];
  const ch = (n: number) => String.fromCharCode(n === 0 ? 0x60 : n + 0x20);
  for (let i = 0; i < data.length; i += 45) {
    const piece = data.subarray(i, i + 45);
    let line = ch(piece.length);
    for (let j = 0; j < piece.length; j += 3) {
      const [a = 0, b = 0, c = 0] = [piece[j], piece[j + 1], piece[j + 2]];
      line += ch(a >> 2) + ch(((a & 3) << 4) | (b >> 4)) + ch(((b & 15) << 2) | (c >> 6)) + ch(c & 63);
    }
    lines.push(line);
  }
  lines.push('`', 'end');
  return lines.join('\n');
}

test('x-uuencode bodies are decoded: the zipped .exe inside is found', async () => {
  const zip = pythonZip([{ name: 'invoice.exe', data: 'MZ...' }]);
  const v = await runContent(
    REFERENCE_CONTENT,
    mixedWith(
      (l) => l,
      `Content-Type: application/zip; name="files.zip"\nContent-Transfer-Encoding: x-uuencode\n\n${uuencode(zip, 'files.zip')}`,
    ),
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /invoice\.exe/);
});

test('a card number in an x-uuencode text part is found outbound', async () => {
  const v = await runContent(
    REFERENCE_CONTENT,
    mixedWith(
      (l) => l,
      `Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\n${uuencode(Buffer.from(`card ${CARD}\n`), 'a.txt')}`,
    ),
    'outbound',
  );
  assert.equal(v.action, 'quarantine');
  assert.match(v.reason!, /card-numbers/);
});

test('duplicate Content-Type fields: every reading is inspected (the .exe hides in either one)', async () => {
  for (const order of [
    ['Content-Type: text/plain', 'Content-Type: multipart/mixed; boundary="X"'],
    ['Content-Type: multipart/mixed; boundary="X"', 'Content-Type: text/plain'],
  ]) {
    const raw = ['From: a@outside.test', ...order, '', '--X', exePart, '--X--', ''].join('\n');
    const v = await runContent(REFERENCE_CONTENT, raw);
    assert.equal(v.action, 'reject', order.join(' / '));
    assert.deepEqual(v.details?.ambiguous, ['duplicate-content-type']);
  }
});

test('a stray line in a header block: both readings are inspected', async () => {
  // Read as "the header block ends here", the part is text; read as "skip the line", it is the .exe.
  const raw = mixedWith((l) => l, `this line is no header field\n${exePart}`);
  const v = await runContent(REFERENCE_CONTENT, raw);
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /evil\.exe/);
});

test('limits.ambiguous: reject refuses an ambiguous structure outright', async () => {
  const raw = ['From: a@outside.test', 'Content-Type: text/plain', 'Content-Type: text/html', '', 'hi', ''].join('\n');
  const v = await runContent({ ...REFERENCE_CONTENT, limits: { ambiguous: 'reject' } }, raw);
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /ambiguous MIME/);
  assert.equal((await runContent(REFERENCE_CONTENT, raw)).action, 'continue');
});

// An attached message sent transfer-encoded (invalid for message/rfc822, but some clients decode
// it and show its parts): the parts inside are inspected decoded, as well as read as they are.
const forwarded = (extra: string) =>
  [
    'From: b@elsewhere.test',
    'Subject: fwd',
    'Content-Type: multipart/mixed; boundary="I"',
    '',
    '--I',
    'Content-Type: text/plain',
    '',
    'see attached',
    '--I',
    extra,
    '--I--',
    '',
  ].join('\r\n');

function encodedMessage(inner: string, encoding: 'base64' | 'quoted-printable'): string {
  const body = encoding === 'base64' ? b64(inner) : inner.replace(/=/g, '=3D').replace(/\r\n/g, '=0D=0A=\r\n');
  return `Content-Type: message/rfc822\nContent-Transfer-Encoding: ${encoding}\n\n${body}`;
}

test('a base64- or quoted-printable-encoded attached message is decoded: the .exe inside is refused', async () => {
  for (const encoding of ['base64', 'quoted-printable'] as const) {
    const raw = mixedWith((l) => l, encodedMessage(forwarded(exePart.replace(/\n/g, '\r\n')), encoding));
    const v = await runContent(REFERENCE_CONTENT, raw);
    assert.equal(v.action, 'reject', encoding);
    assert.match(v.reason!, /evil\.exe/);
  }
});

test('a card number inside a base64-encoded attached message is found outbound; the plain twin passes', async () => {
  const leak = mixedWith((l) => l, encodedMessage(forwarded(`Content-Type: text/plain\r\n\r\ncard ${CARD}`), 'base64'));
  const v = await runContent(REFERENCE_CONTENT, leak, 'outbound');
  assert.equal(v.action, 'quarantine');
  assert.match(v.reason!, /card-numbers/);
  const clean = mixedWith(
    (l) => l,
    encodedMessage(forwarded('Content-Type: text/plain\r\n\r\nno numbers here'), 'base64'),
  );
  assert.equal((await runContent(REFERENCE_CONTENT, clean, 'outbound')).action, 'continue');
});

test('an encoded attached message that is not really encoded is still read as it is', async () => {
  // Declared base64 but written plain: readers that do not decode (Python) show the .exe.
  const raw = mixedWith(
    (l) => l,
    `Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n${forwarded(exePart)}`,
  );
  const v = await runContent(REFERENCE_CONTENT, raw);
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /evil\.exe/);
});

test(`an encoded attached message over ${ENCODED_MESSAGE_MAX_BYTES} bytes decoded is refused by the structure limits`, async () => {
  const filler = 'x'.repeat(76) + '\r\n';
  const inner = forwarded(
    `Content-Type: text/plain\r\n\r\n${filler.repeat(Math.ceil(ENCODED_MESSAGE_MAX_BYTES / filler.length))}`,
  );
  const v = await runContent(
    REFERENCE_CONTENT,
    mixedWith((l) => l, encodedMessage(inner, 'base64')),
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /encoded attached message larger than 16777216 bytes/);
  // Just under the limit it is read and passes.
  const small = forwarded(
    `Content-Type: text/plain\r\n\r\n${filler.repeat(Math.floor((ENCODED_MESSAGE_MAX_BYTES - 1024) / filler.length))}`,
  );
  assert.equal(
    (
      await runContent(
        REFERENCE_CONTENT,
        mixedWith((l) => l, encodedMessage(small, 'base64')),
      )
    ).action,
    'continue',
  );
});
