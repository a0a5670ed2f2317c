// Regression tests for the MIME forms that hid parts from the content rule while mail clients
// (and Python's email package, Perl's MIME::Parser) showed them: issue 16 findings 1 and 2, and
// issue 15's unterminated inner multipart. Each message is refused like its plain twin.
import assert from 'node:assert/strict';
import { test } from 'node:test';
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
    const v = await runContent(REFERENCE_CONTENT, mixedWith((l) => l + pad, exePart));
    assert.equal(v.action, 'reject', `padding ${JSON.stringify(pad)}`);
    assert.match(v.reason!, /evil\.exe/);
  }
});

test('blanks after a delimiter line do not hide the outbound marker', async () => {
  const v = await runContent(REFERENCE_CONTENT, mixedWith((l) => l + '   ', `Content-Type: text/plain\n\n${MARKER}`), 'outbound');
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
  const v = await runContent(REFERENCE_CONTENT, mixedWith((l) => l, `Content-Type: application/zip; name="files.zip"\nContent-Transfer-Encoding: base64\n\n${noisy}`));
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /invoice\.exe/);
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
  const v = await runContent(REFERENCE_CONTENT, mixedWith((l) => l, `Content-Type: application/zip; name="files.zip"\nContent-Transfer-Encoding: x-uuencode\n\n${uuencode(zip, 'files.zip')}`));
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /invoice\.exe/);
});

test('a card number in an x-uuencode text part is found outbound', async () => {
  const v = await runContent(REFERENCE_CONTENT, mixedWith((l) => l, `Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\n${uuencode(Buffer.from(`card ${CARD}\n`), 'a.txt')}`), 'outbound');
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
