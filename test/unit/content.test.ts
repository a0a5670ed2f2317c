// Rule 6 (content): attachments by name, type, size and inside zips; phrases, RE2 patterns and
// the card number detector per direction; MIME bomb limits; actions; monitor mode.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { contentSchema } from '../../src/rules/content/schema.js';
import { kitConnection, kitInput, kitMail, kitMessage, kitPolicy, runPhase } from '../support/rule-kit.js';
import { b64, contentRuleFor, mixed, plain, pythonZip, REFERENCE_CONTENT, runContent } from './content-fixtures.js';

const EXE_BYTES = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(300, 0x90)]);
const CARD = '4111 1111 1111 1111';
const MARKER = 'CONFIDENTIAL - INTERNAL ONLY';

function attachment(headers: string, data: Buffer | string = EXE_BYTES): string {
  return `${headers}\nContent-Transfer-Encoding: base64\n\n${b64(data)}`;
}

// ------------------------------------------------------------------ attachments by name

test('a .exe attachment is refused with 550 5.7.1 naming the file', async () => {
  const v = await runContent(
    REFERENCE_CONTENT,
    mixed([
      attachment('Content-Type: application/octet-stream\nContent-Disposition: attachment; filename="setup.exe"'),
    ]),
  );
  assert.equal(v.action, 'reject');
  assert.deepEqual(v.smtp, { code: 550, enhanced: '5.7.1' });
  assert.match(v.reason!, /Blocked attachment "setup\.exe" \(file type \.exe\)/);
});

test('every extension of the reference list is refused, in both directions', async () => {
  for (const ext of ['exe', 'scr', 'js', 'vbs', 'bat', 'cmd', 'com', 'ps1']) {
    for (const direction of ['inbound', 'outbound'] as const) {
      const v = await runContent(
        REFERENCE_CONTENT,
        mixed([
          attachment(`Content-Type: application/octet-stream\nContent-Disposition: attachment; filename="x.${ext}"`),
        ]),
        direction,
      );
      assert.equal(v.action, 'reject', `${ext} ${direction}`);
    }
  }
});

test('upper-case .EXE given only as the Content-Type name= parameter', async () => {
  const v = await runContent(
    REFERENCE_CONTENT,
    mixed([attachment('Content-Type: application/octet-stream; name="INVOICE.EXE"')]),
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /INVOICE\.EXE/);
});

test('RFC 2231 encoded and continued filename', async () => {
  const headers = [
    'Content-Type: application/octet-stream',
    'Content-Disposition: attachment;',
    " filename*0*=utf-8''r%C3%A9sum%C3%A9;",
    ' filename*1=".pdf.ex";',
    ' filename*2="e"',
  ].join('\n');
  const v = await runContent(REFERENCE_CONTENT, mixed([attachment(headers)]));
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /\.pdf\.exe" \(file type \.exe\)/);
});

test('RFC 2047 encoded name= parameter', async () => {
  const encoded = `=?utf-8?B?${Buffer.from('Übersicht.scr').toString('base64')}?=`;
  const v = await runContent(
    REFERENCE_CONTENT,
    mixed([attachment(`Content-Type: application/octet-stream; name="${encoded}"`)]),
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /\.scr\)/);
});

test('double extension, trailing dots and spaces, hidden bidi override', async () => {
  for (const name of ['invoice.pdf.exe', 'setup.exe. .', 'photo\u202egpj.exe', 'dir\\sub\\run.Bat']) {
    const v = await runContent(
      REFERENCE_CONTENT,
      mixed([
        attachment(`Content-Type: application/octet-stream\nContent-Disposition: attachment; filename="${name}"`),
      ]),
    );
    assert.equal(v.action, 'reject', name);
  }
});

test('a harmless filename does not hide a dangerous name= parameter', async () => {
  const v = await runContent(
    REFERENCE_CONTENT,
    mixed([
      attachment(
        'Content-Type: application/octet-stream; name="run.exe"\nContent-Disposition: attachment; filename="report.pdf"',
      ),
    ]),
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /run\.exe/);
});

test('allowed attachments pass: .pdf, .exe.pdf, no extension', async () => {
  for (const name of ['report.pdf', 'program.exe.pdf', 'README', 'archive.js.txt']) {
    const v = await runContent(
      REFERENCE_CONTENT,
      mixed([
        attachment(`Content-Type: application/pdf\nContent-Disposition: attachment; filename="${name}"`, '%PDF-1.4'),
      ]),
    );
    assert.equal(v.action, 'continue', name);
  }
});

test('a uuencoded .exe inside a text part is refused', async () => {
  const uu = plain('Here it is:\n\nbegin 644 Update.EXE\nM35H`\n`\nend\n');
  const v = await runContent(REFERENCE_CONTENT, uu);
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /"Update\.EXE" \(uuencoded, file type \.exe\)/);
  assert.equal(
    (await runContent(REFERENCE_CONTENT, plain('We begin 644 tasks today.\nbegin 644 notes.txt\n`\nend\n'))).action,
    'continue',
  );
});

// ------------------------------------------------------------------ zip archives

test('a blocked name inside a zip is refused, naming archive and member', async () => {
  const zip = pythonZip([
    { name: 'readme.txt', data: 'hi' },
    { name: 'tools/Setup.EXE', data: 'MZ', deflate: true },
  ]);
  const v = await runContent(
    REFERENCE_CONTENT,
    mixed([attachment('Content-Type: application/zip\nContent-Disposition: attachment; filename="docs.zip"', zip)]),
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /Blocked attachment "docs\.zip" contains "tools\/Setup\.EXE" \(file type \.exe\)/);
});

test('a zip is recognised by its bytes whatever its name and type', async () => {
  const zip = pythonZip([{ name: 'a.js', data: 'x' }]);
  const v = await runContent(
    REFERENCE_CONTENT,
    mixed([
      attachment('Content-Type: application/octet-stream\nContent-Disposition: attachment; filename="data.bin"', zip),
    ]),
  );
  assert.equal(v.action, 'reject');
});

test('a blocked name in a zip inside the zip is refused', async () => {
  const inner = pythonZip([{ name: 'x.vbs', data: 'x' }]);
  const outer = pythonZip([{ name: 'inner.zip', data_b64: inner.toString('base64'), deflate: true }]);
  const v = await runContent(
    REFERENCE_CONTENT,
    mixed([attachment('Content-Type: application/zip; name="outer.zip"', outer)]),
  );
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /"outer\.zip" contains "inner\.zip" with "x\.vbs"/);
});

test('a clean zip passes; scan_zip off ignores the members', async () => {
  const zip = pythonZip([{ name: 'report.pdf', data: '%PDF' }]);
  assert.equal(
    (await runContent(REFERENCE_CONTENT, mixed([attachment('Content-Type: application/zip; name="r.zip"', zip)])))
      .action,
    'continue',
  );
  const bad = pythonZip([{ name: 'run.exe', data: 'MZ' }]);
  const off = { ...REFERENCE_CONTENT, attachments: { ...REFERENCE_CONTENT.attachments, zip: { scan: false } } };
  assert.equal(
    (await runContent(off, mixed([attachment('Content-Type: application/zip; name="r.zip"', bad)]))).action,
    'continue',
  );
});

test('a zip over zip.max_size is reported per zip.unreadable', async () => {
  const zip = pythonZip([{ name: 'big.txt', data: 'A'.repeat(20_000) }]);
  const cfg = (unreadable: string) => ({
    ...REFERENCE_CONTENT,
    attachments: { ...REFERENCE_CONTENT.attachments, zip: { max_size: '10K', unreadable } },
  });
  const msg = mixed([attachment('Content-Type: application/zip; name="big.zip"', zip)]);
  assert.equal((await runContent(cfg('accept'), msg)).action, 'continue');
  const v = await runContent(cfg('reject'), msg);
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /Archive "big\.zip" cannot be inspected \(larger than 10240 bytes\)/);
});

// ------------------------------------------------------------------ type and size

test('blocked types, exact and with a wildcard', async () => {
  const cfg = { attachments: { blocked_types: ['application/x-msdownload', 'audio/*'] } };
  const dl = await runContent(cfg, mixed([attachment('Content-Type: application/x-msdownload; name="tool.bin"')]));
  assert.equal(dl.action, 'reject');
  assert.match(dl.reason!, /Blocked attachment type application\/x-msdownload \("tool\.bin"\)/);
  assert.equal(
    (await runContent(cfg, mixed([attachment('Content-Type: audio/mpeg; name="song.mp3"')]))).action,
    'reject',
  );
  assert.equal(
    (await runContent(cfg, mixed([attachment('Content-Type: image/png; name="a.png"')]))).action,
    'continue',
  );
});

test('attachments over max_size', async () => {
  const cfg = { attachments: { max_size: '1K', action: 'quarantine' } };
  const v = await runContent(
    cfg,
    mixed([attachment('Content-Type: image/png; name="big.png"', Buffer.alloc(2000, 1))]),
  );
  assert.equal(v.action, 'quarantine');
  assert.match(v.reason!, /"big\.png" is larger than 1024 bytes/);
  assert.equal(
    (await runContent(cfg, mixed([attachment('Content-Type: image/png; name="small.png"', Buffer.alloc(500, 1))])))
      .action,
    'continue',
  );
});

test('attachments limited to one direction', async () => {
  const cfg = { attachments: { direction: 'inbound' } };
  const msg = mixed([attachment('Content-Type: application/octet-stream; name="a.exe"')]);
  assert.equal((await runContent(cfg, msg, 'inbound')).action, 'reject');
  assert.equal((await runContent(cfg, msg, 'outbound')).action, 'continue');
  const split = { attachments: { action: { inbound: 'reject', outbound: 'quarantine' } } };
  assert.equal((await runContent(split, msg, 'inbound')).action, 'reject');
  assert.equal((await runContent(split, msg, 'outbound')).action, 'quarantine');
});

// ------------------------------------------------------------------ card numbers (outbound DLP)

test('outbound card number: quarantined, the number masked everywhere', async () => {
  const v = await runContent(REFERENCE_CONTENT, plain(`Please charge my card ${CARD}, exp 12/27.`), 'outbound');
  assert.equal(v.action, 'quarantine');
  assert.match(v.reason!, /card-numbers.*payment card number \*{12}1111/);
  const everything = JSON.stringify(v);
  assert.doesNotMatch(everything, /4111 ?1111 ?1111/);
});

test('inbound card number: not this rule (outbound only)', async () => {
  assert.equal((await runContent(REFERENCE_CONTENT, plain(`card ${CARD}`), 'inbound')).action, 'continue');
});

test('card numbers in quoted-printable, base64 HTML and a text attachment', async () => {
  const qp = plain('card 4111=20\n1111=201111=201111 ok', [
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: quoted-printable',
  ]);
  assert.equal((await runContent(REFERENCE_CONTENT, qp, 'outbound')).action, 'quarantine');
  const html = `Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n${b64(`<p>card <b>5555</b>-5555-5555-4444</p>`)}`;
  assert.equal(
    (await runContent(REFERENCE_CONTENT, mixed([html], { text: 'see below' }), 'outbound')).action,
    'quarantine',
  );
  const csv = attachment('Content-Type: text/csv; name="cards.csv"', `name,card\nbob,${CARD}\n`);
  assert.equal(
    (await runContent(REFERENCE_CONTENT, mixed([csv], { text: 'list attached' }), 'outbound')).action,
    'quarantine',
  );
});

test('tracking numbers and order numbers are not card numbers', async () => {
  const text = 'Your parcel 9400111899223100001234 (order 41111111111111110000) ships today.';
  assert.equal((await runContent(REFERENCE_CONTENT, plain(text), 'outbound')).action, 'continue');
});

// ------------------------------------------------------------------ phrases and patterns

test('outbound marker: refused with the rule name, not the marker text', async () => {
  const v = await runContent(REFERENCE_CONTENT, plain(`Q3 numbers.\n\n${MARKER}\n`), 'outbound');
  assert.equal(v.action, 'reject');
  assert.deepEqual(v.smtp, { code: 550, enhanced: '5.7.1' });
  assert.match(v.reason!, /content rule "confidential-marker" \(phrase in body\)/);
});

test('the marker is found wrapped, in another case, in HTML, in ISO-8859-1 and in the subject', async () => {
  const cases = [
    plain('text CONFIDENTIAL -\n  internal only more'),
    plain('Vertraulich: =E4 CONFIDENTIAL - INTERNAL=\n ONLY', [
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=iso-8859-1',
      'Content-Transfer-Encoding: quoted-printable',
    ]),
    mixed([`Content-Type: text/html; charset=utf-8\n\n<div>CONFIDENTIAL&nbsp;- <span>INTERNAL</span> ONLY</div>`]),
    mixed([], { subject: `=?utf-8?Q?CONFIDENTIAL_-_INTERNAL_ONLY?=` }),
  ];
  for (const raw of cases) assert.equal((await runContent(REFERENCE_CONTENT, raw, 'outbound')).action, 'reject', raw);
  assert.equal((await runContent(REFERENCE_CONTENT, cases[0]!, 'inbound')).action, 'continue');
});

test('text hidden in HTML comments, scripts and tag attributes is not body text', async () => {
  const html = `Content-Type: text/html\n\n<html><head><title>${MARKER}</title></head><body><!-- ${MARKER} --><a title="${MARKER}">x</a><script>var a="${MARKER}"</script></body></html>`;
  assert.equal((await runContent(REFERENCE_CONTENT, mixed([html]), 'outbound')).action, 'continue');
});

test('tag: adds X-Relayguard-Content naming the rules; quarantine keeps the tags', async () => {
  const cfg = {
    rules: [
      { name: 'lottery', direction: 'inbound', regex: 'you (have )?won .{0,40}lottery', action: 'tag' },
      { name: 'urgent', phrase: ['wire transfer', 'gift cards'], where: ['subject', 'body'], action: 'tag' },
      { name: 'cards', detector: 'payment_card', action: 'quarantine' },
    ],
  };
  const tagged = await runContent(
    cfg,
    plain('Congratulations, YOU WON the national lottery! Buy gift cards.'),
    'inbound',
  );
  assert.equal(tagged.action, 'continue');
  assert.deepEqual(tagged.mods, [{ type: 'addHeader', name: 'X-Relayguard-Content', value: 'lottery, urgent' }]);
  const held = await runContent(cfg, plain(`You won the lottery, send your card ${CARD}`), 'inbound');
  assert.equal(held.action, 'quarantine');
  assert.deepEqual(held.mods, [{ type: 'addHeader', name: 'X-Relayguard-Content', value: 'lottery' }]);
});

test('header patterns see decoded header lines', async () => {
  const cfg = { rules: [{ name: 'bad-mailer', regex: '^x-mailer: evilbulk', where: 'headers', action: 'reject' }] };
  const v = await runContent(cfg, plain('hi', ['X-Mailer: =?utf-8?Q?EvilBulk_2.0?=']));
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /"bad-mailer" \(pattern in headers\)/);
  assert.equal((await runContent(cfg, plain('X-Mailer: EvilBulk in the body only'))).action, 'continue');
});

test('a hostile pattern on a hostile input completes (RE2 is linear)', async () => {
  const cfg = { rules: [{ name: 'redos', regex: '(a+)+$', action: 'tag' }] };
  const v = await runContent(cfg, plain(`${'a'.repeat(200_000)}!`));
  assert.equal(v.action, 'continue');
  assert.equal(v.mods, undefined);
});

test('text beyond max_text_per_part is searched all the same, window by window (issue 16, finding 7)', async () => {
  const cfg = { ...REFERENCE_CONTENT, limits: { max_text_per_part: '1K' } };
  const late = await runContent(cfg, plain(`${'x '.repeat(2000)}${MARKER}`), 'outbound');
  assert.equal(late.action, 'reject', 'the marker after 4,000 bytes of a part searched 1 KiB at a time');
  assert.deepEqual(late.details?.windowed_parts, ['TEXT (4 windows)']);
  assert.equal((await runContent(cfg, plain(`${MARKER} ${'x '.repeat(2000)}`), 'outbound')).action, 'reject');
  assert.equal(
    (await runContent(cfg, plain(`${'x '.repeat(2000)}`), 'outbound')).action,
    'continue',
    'a long clean part passes',
  );
});

// ------------------------------------------------------------------ configuration

test('a backreference or lookaround is a configuration error with a clear message', () => {
  for (const regex of ['(a)\\1', 'foo(?=bar)']) {
    const r = contentSchema.safeParse({ rules: [{ name: 'x', regex, action: 'tag' }] });
    assert.equal(r.success, false);
    assert.match(r.error.issues[0]!.message, /invalid regular expression .*RE2 has no backreferences or lookaround/);
  }
  const yaml = [
    'rules:',
    '  content:',
    '    rules:',
    '      - name: bad',
    "        regex: '(\\w+) \\1'",
    '        action: reject',
    '',
  ].join('\n');
  const loaded = parsePolicyText(yaml, 'p.yaml');
  assert.equal(loaded.ok, false);
  if (!loaded.ok) {
    assert.equal(loaded.errors[0]!.line, 5);
    assert.match(loaded.errors[0]!.message, /rules\.content\.rules\.0\.regex: invalid regular expression/);
  }
});

test('a rule needs exactly one of phrase, regex, detector; names are unique; keys are strict', () => {
  const bad = [
    { rules: [{ name: 'x', action: 'tag' }] },
    { rules: [{ name: 'x', phrase: 'a', regex: 'b', action: 'tag' }] },
    {
      rules: [
        { name: 'x', phrase: 'a', action: 'tag' },
        { name: 'x', phrase: 'b', action: 'tag' },
      ],
    },
    { rules: [{ name: 'x', detector: 'ssn', action: 'tag' }] },
    { attachments: { blocked_extension: ['exe'] } },
    { attachments: { blocked_types: ['exe'] } },
    { limits: { action: 'quarantine' } },
  ];
  for (const cfg of bad) assert.equal(contentSchema.safeParse(cfg).success, false, JSON.stringify(cfg));
  const ok = contentSchema.parse({ attachments: { blocked_extensions: ['.EXE', 'ps1'] } });
  assert.deepEqual(ok.attachments.blocked_extensions, ['exe', 'ps1']);
});

// ------------------------------------------------------------------ MIME bombs

function nested(depth: number): string {
  let body = 'Content-Type: text/plain\n\ninnermost';
  for (let i = depth; i > 0; i--)
    body = `Content-Type: multipart/mixed; boundary="d${i}"\n\n--d${i}\n${body}\n--d${i}--`;
  return `From: a@b.test\nSubject: deep\nMIME-Version: 1.0\n${body}\n`;
}

function wide(parts: number): string {
  const list = Array.from({ length: parts }, (_, i) => `--w\nContent-Type: text/plain\n\npart ${i}`).join('\n');
  return `From: a@b.test\nSubject: wide\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="w"\n\n${list}\n--w--\n`;
}

test('MIME nesting deeper than max_depth is refused with 554 5.6.0', async () => {
  const v = await runContent(REFERENCE_CONTENT, nested(30));
  assert.equal(v.action, 'reject');
  assert.deepEqual(v.smtp, { code: 554, enhanced: '5.6.0' });
  assert.match(v.reason!, /MIME nesting deeper than 20/);
  assert.equal((await runContent(REFERENCE_CONTENT, nested(10))).action, 'continue');
});

test('more parts than max_parts is refused; tempfail when configured', async () => {
  const v = await runContent({ limits: { max_parts: 50 } }, wide(200));
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /more than 50 MIME parts/);
  const t = await runContent({ limits: { max_parts: 50, action: 'tempfail' } }, wide(200));
  assert.equal(t.action, 'tempfail');
  assert.deepEqual(t.smtp, { code: 451, enhanced: '4.6.0' });
  assert.equal((await runContent({ limits: { max_parts: 50 } }, wide(40))).action, 'continue');
});

test('a part header block over max_header_size is refused', async () => {
  const raw = mixed([`Content-Type: text/plain\nX-Junk: ${'j'.repeat(5000)}\n\nhi`]);
  const v = await runContent({ limits: { max_header_size: '4K' } }, raw);
  assert.equal(v.action, 'reject');
  assert.match(v.reason!, /header larger than 4096 bytes/);
});

// ------------------------------------------------------------------ engine and session

test('monitor mode: the engine records the would-be refusal and lets the message through', async () => {
  const rule = contentRuleFor({ ...REFERENCE_CONTENT, mode: 'monitor' });
  const raw = Buffer.from(
    mixed([attachment('Content-Type: application/octet-stream; name="a.exe"')]).replace(/\n/g, '\r\n'),
  );
  const msg = kitMessage(raw, { direction: 'inbound', spilled: true, verbatim: true });
  const result = await runPhase(rule, 'eom', kitInput(kitConnection(), msg));
  assert.equal(result.action, 'continue');
  assert.equal(result.trace[0]!.action, 'reject');
  assert.equal(result.trace[0]!.monitor, true);
});

test('through the session: outbound marker gets 550 5.7.1 with the rule name and a reference', async () => {
  const policy = kitPolicy({ content: REFERENCE_CONTENT }, { networks: { internal: ['127.0.0.0/8'] } });
  const { c } = await kitMail(policy, '<alice@example.test>', {
    ip: '127.0.0.1',
    hostname: 'localhost',
    helo: 'localhost',
  });
  await c.rcpt(['<bob@partner.test>']);
  await c.data();
  await c.header('From', 'alice@example.test', false);
  await c.header('Subject', 'numbers', false);
  await c.eoh();
  await c.bodyChunk(Buffer.from(`Hi Bob,\r\n${MARKER}\r\n`));
  const out = await c.eom();
  assert.equal(out.action, 'reject');
  assert.equal(out.reply?.code, 550);
  assert.equal(out.reply?.enhanced, '5.7.1');
  assert.match(out.reply.text, /content rule "confidential-marker".*\(ref [0-9a-f]+-/);
  await c.close();
  await policy.close();
});
