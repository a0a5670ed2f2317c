// Issue 16, findings 3 and 7: the content rule fails closed where it cannot look (an archive
// it cannot list completely), and a marker is found however it is written (look-alike letters,
// any dash, full-width forms, split by hidden HTML). The reference gateway's content rules.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { foldForMatch } from '../../src/rules/content/fold.js';
import { withoutHiddenElements } from '../../src/rules/content/visible-html.js';
import { b64, mixed, plain, pythonZip, REFERENCE_CONTENT, runContent } from './content-fixtures.js';

const MARKER = 'CONFIDENTIAL - INTERNAL ONLY';

function zipAttachment(zip: Buffer, name = 'files.zip'): string {
  return `Content-Type: application/zip; name="${name}"\nContent-Transfer-Encoding: base64\n\n${b64(zip)}`;
}

/** Sets the "encrypted" flag of every member (local and central headers), as a password-protected zip has it. */
function markEncrypted(zip: Buffer): Buffer {
  const out = Buffer.from(zip);
  for (let i = 0; i + 4 <= out.length; i++) {
    const sig = out.readUInt32LE(i);
    if (sig === 0x04034b50) out.writeUInt16LE(out.readUInt16LE(i + 6) | 1, i + 6);
    if (sig === 0x02014b50) out.writeUInt16LE(out.readUInt16LE(i + 8) | 1, i + 8);
  }
  return out;
}

// ------------------------------------------------------------------ finding 3: archives

test('1,000 dummy entries plus invoice.exe: refused inbound, held outbound (was accepted)', async () => {
  const entries = Array.from({ length: 1000 }, (_, i) => ({ name: `dummy${i}.txt`, data: 'x' }));
  const zip = pythonZip([...entries, { name: 'invoice.exe', data: 'MZ' }]);
  const msg = mixed([zipAttachment(zip)]);
  const inbound = await runContent(REFERENCE_CONTENT, msg, 'inbound');
  assert.equal(inbound.action, 'reject');
  assert.match(inbound.reason!, /Archive "files\.zip" cannot be inspected \(more than 1000 entries\)/);
  assert.equal((await runContent(REFERENCE_CONTENT, msg, 'outbound')).action, 'quarantine');
});

test('an encrypted entry cannot be looked into: refused by default', async () => {
  const zip = markEncrypted(pythonZip([{ name: 'report.pdf', data: '%PDF-1.4' }]));
  const v = await runContent(REFERENCE_CONTENT, mixed([zipAttachment(zip)]), 'inbound');
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /cannot be inspected \(encrypted entries\)/);
});

test('a zip in a zip in a zip (deeper than is opened): refused by default', async () => {
  // Deflated at every level, so no name shows through as plain bytes.
  const innermost = pythonZip([{ name: 'payload.exe', data: 'MZ', deflate: true }]);
  const middle = pythonZip([{ name: 'level2.zip', data_b64: innermost.toString('base64'), deflate: true }]);
  const outer = pythonZip([{ name: 'level1.zip', data_b64: middle.toString('base64'), deflate: true }]);
  const v = await runContent(REFERENCE_CONTENT, mixed([zipAttachment(outer)]), 'inbound');
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /cannot be inspected \(level1\.zip: a zip nested deeper than is opened\)/);
});

test('a zip over max_size: refused by default; `accept` lets it through uninspected only when configured', async () => {
  const zip = pythonZip([{ name: 'big.txt', data: 'A'.repeat(20_000) }]);
  const small = (unreadable?: unknown) => ({
    ...REFERENCE_CONTENT,
    attachments: { ...REFERENCE_CONTENT.attachments, zip: { max_size: '10K', ...(unreadable ? { unreadable } : {}) } },
  });
  const msg = mixed([zipAttachment(zip, 'big.zip')]);
  assert.equal((await runContent(small(), msg, 'inbound')).action, 'reject');
  assert.equal((await runContent(small(), msg, 'outbound')).action, 'quarantine');
  assert.equal((await runContent(small('accept'), msg, 'inbound')).action, 'continue');
});

test('a plain zip that can be listed is still accepted', async () => {
  const zip = pythonZip([
    { name: 'report.pdf', data: '%PDF' },
    { name: 'inner.zip', data_b64: pythonZip([{ name: 'a.txt', data: 'x' }]).toString('base64') },
  ]);
  assert.equal((await runContent(REFERENCE_CONTENT, mixed([zipAttachment(zip)]), 'inbound')).action, 'continue');
});

// ------------------------------------------------------------------ finding 7: markers

const disguised: Array<[string, string]> = [
  ['an en dash for the hyphen', 'CONFIDENTIAL \u2013 INTERNAL ONLY'],
  ['an em dash', 'CONFIDENTIAL \u2014 INTERNAL ONLY'],
  ['a minus sign', 'CONFIDENTIAL \u2212 INTERNAL ONLY'],
  ['a non-breaking hyphen', 'CONFIDENTIAL \u2011 INTERNAL ONLY'],
  ['a Cyrillic O and E', 'C\u041eNFID\u0415NTIAL - INTERNAL ONLY'],
  ['a Greek I and N', 'CONF\u0399DENTIAL - \u0399\u039dTERNAL ONLY'],
  ['full-width letters', '\uff23\uff2f\uff2e\uff26\uff29\uff24\uff25\uff2e\uff34\uff29\uff21\uff2c - INTERNAL ONLY'],
  [
    'mathematical bold letters',
    '\u{1d402}\u{1d40e}\u{1d40d}\u{1d405}\u{1d408}\u{1d403}\u{1d404}\u{1d40d}\u{1d413}\u{1d408}\u{1d400}\u{1d40b} - INTERNAL ONLY',
  ],
];

for (const [what, text] of disguised) {
  test(`the marker written with ${what} is found in a text part`, async () => {
    const v = await runContent(
      REFERENCE_CONTENT,
      plain(`Figures attached.\n${text}\n`, ['Content-Type: text/plain; charset=utf-8']),
      'outbound',
    );
    assert.equal(v.action, 'reject', what);
    assert.match(v.reason!, /confidential-marker/);
  });
}

const hiddenSplits: Array<[string, string]> = [
  ['a display:none span', 'CONFIDENTIAL<span style="display:none">zz</span> - INTERNAL ONLY'],
  ['a visibility:hidden span', 'CONFIDENTIAL <span style="visibility: hidden">zz</span>- INTERNAL ONLY'],
  ['a zero font size', 'CONFIDENTIAL - INTER<font style="font-size:0px">zz</font>NAL ONLY'],
  ['the hidden attribute', 'CONFIDENTIAL - <div hidden>zz<div>nested</div>zz</div>INTERNAL ONLY'],
  [
    'an en dash entity and a hidden span',
    'CONFIDENTIAL &#8211;<span style="display: none !important">x</span> INTERNAL ONLY',
  ],
];

for (const [what, html] of hiddenSplits) {
  test(`the marker split by ${what} is found in an HTML part`, async () => {
    const body = `<html><body><p>Numbers:</p><p>${html}</p></body></html>`;
    const v = await runContent(REFERENCE_CONTENT, plain(body, ['Content-Type: text/html; charset=utf-8']), 'outbound');
    assert.equal(v.action, 'reject', what);
  });
}

test('text hidden from the reader is still searched (it leaks all the same)', async () => {
  const body = `<html><body><p>Hello</p><div style="display:none">${MARKER}</div></body></html>`;
  assert.equal(
    (await runContent(REFERENCE_CONTENT, plain(body, ['Content-Type: text/html; charset=utf-8']), 'outbound')).action,
    'reject',
  );
});

test('the marker in a subject with a Cyrillic letter is found', async () => {
  const v = await runContent(
    REFERENCE_CONTENT,
    plain('hello', []).replace(
      'Subject: test',
      'Subject: =?UTF-8?B?' + Buffer.from('CONFIDENTIAL \u2013 INTERNAL \u041eNLY').toString('base64') + '?=',
    ),
    'outbound',
  );
  assert.equal(v.action, 'reject');
});

test('a card number in full-width digits or with en dashes is found (outbound: held)', async () => {
  for (const card of [
    '\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11',
    '4111\u20131111\u20131111\u20131111',
  ]) {
    const v = await runContent(
      REFERENCE_CONTENT,
      plain(`card: ${card}\n`, ['Content-Type: text/plain; charset=utf-8']),
      'outbound',
    );
    assert.equal(v.action, 'quarantine', card);
  }
});

test('ordinary mail with dashes and Cyrillic words passes', async () => {
  const v = await runContent(
    REFERENCE_CONTENT,
    plain('Meeting 10\u201312 \u2014 \u041f\u0440\u0438\u0432\u0435\u0442, see you.\n', [
      'Content-Type: text/plain; charset=utf-8',
    ]),
    'outbound',
  );
  assert.equal(v.action, 'continue');
});

// ------------------------------------------------------------------ finding 7: long text

test('a marker or card number cut by a window boundary is found (windows overlap)', async () => {
  const cfg = { ...REFERENCE_CONTENT, limits: { max_text_per_part: '1K' } };
  for (let shift = 0; shift < 40; shift += 3) {
    const filler = 'y'.repeat(1024 - 10 + shift);
    assert.equal(
      (await runContent(cfg, plain(`${filler}\n${MARKER}\n`), 'outbound')).action,
      'reject',
      `marker at ${filler.length}`,
    );
    assert.equal(
      (await runContent(cfg, plain(`${filler} 4111 1111 1111 1111\n`), 'outbound')).action,
      'quarantine',
      `card at ${filler.length}`,
    );
  }
});

test('a blocked uuencoded file named past the first window is found once', async () => {
  const cfg = { ...REFERENCE_CONTENT, limits: { max_text_per_part: '1K' } };
  const v = await runContent(cfg, plain(`${'z'.repeat(3000)}\nbegin 644 invoice.exe\nM\n\`\nend\n`), 'inbound');
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /Blocked attachment "invoice\.exe" \(uuencoded, file type \.exe\)$/);
});

test('fold and hidden-element removal, directly', () => {
  assert.equal(foldForMatch('\u0421\u0430t \u2013 d\u043eg'), 'Cat - dog');
  assert.equal(foldForMatch('plain ascii'), 'plain ascii');
  assert.equal(
    withoutHiddenElements('a<span style="display:none">b<span>c</span>d</span>e<br hidden>f'),
    'ae<br hidden>f',
  );
  assert.equal(withoutHiddenElements('x<div hidden>never closed'), 'x');
  assert.equal(withoutHiddenElements('<p style="color:red">shown</p>'), '<p style="color:red">shown</p>');
});

test('hidden-element removal stays linear on hostile nesting (1 MB in well under 2 s each)', () => {
  for (const html of [
    '<div hidden>' + '<div>'.repeat(200_000) + '</div>',
    '<div hidden>' + '<divx>'.repeat(200_000) + '</div>',
    '<b hidden>x</b>y'.repeat(60_000),
  ]) {
    const started = performance.now();
    withoutHiddenElements(html);
    assert.ok(
      performance.now() - started < 2000,
      `${html.slice(0, 20)}…: ${Math.round(performance.now() - started)} ms`,
    );
  }
});
