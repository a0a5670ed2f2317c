// Putting a disclaimer into one decoded part: charsets, line ends, HTML placement.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import iconv from 'iconv-lite';
import { classifyCharset, declaredCharset, encodeIfRepresentable } from '../../src/mime/charset.js';
import { htmlFromText, insertDisclaimer, normalizeDisclaimerText } from '../../src/mime/disclaimer-insert.js';

const texts = { text: 'This email is confidential.\r\nSecond line.', html: '<p>This email is confidential – really.</p>' };
const german = { text: 'Vertraulich – nur für den Empfänger.', html: '<p>Vertraulich</p>' };

describe('charset helpers', () => {
  it('reads declared charsets and classifies them', () => {
    assert.equal(declaredCharset(false), 'us-ascii');
    assert.equal(declaredCharset(' "ISO-8859-1" '), 'iso-8859-1');
    assert.equal(classifyCharset('us-ascii'), 'ascii');
    assert.equal(classifyCharset('utf-8'), 'utf-8');
    assert.equal(classifyCharset('iso-8859-1'), 'ascii-compatible');
    assert.equal(classifyCharset('shift_jis'), 'ascii-compatible');
    assert.equal(classifyCharset('utf-16le'), 'stateful');
    assert.equal(classifyCharset('iso-2022-jp'), 'iso-2022-jp');
    assert.equal(classifyCharset('utf-7'), 'stateful');
    assert.equal(classifyCharset('x-no-such-charset'), 'unknown');
  });

  it('encodes only what the charset can represent', () => {
    assert.deepEqual(encodeIfRepresentable('Grüße', 'iso-8859-1'), Buffer.from([0x47, 0x72, 0xfc, 0xdf, 0x65]));
    assert.equal(encodeIfRepresentable('a – b', 'iso-8859-1'), null);
    assert.equal(encodeIfRepresentable('ü', 'us-ascii'), null);
    assert.ok(encodeIfRepresentable('a – b', 'windows-1252'));
  });
});

describe('plain text parts', () => {
  it('appends after the last line, keeping every original byte (even invalid ones)', () => {
    const content = Buffer.from('Hello\r\nBye \xff\r\n\r\n', 'latin1');
    const out = insertDisclaimer(content, 'plain', 'iso-8859-1', texts);
    assert.equal(out.charset, undefined);
    assert.equal(out.bytes.toString('latin1'), 'Hello\r\nBye \xff\r\n\r\nThis email is confidential.\r\nSecond line.\r\n');
  });

  it('adds no final line break to a part that had none (it belongs to the next delimiter)', () => {
    const out = insertDisclaimer(Buffer.from('Hello'), 'plain', 'us-ascii', texts);
    assert.equal(out.bytes.toString(), 'Hello\r\n\r\nThis email is confidential.\r\nSecond line.');
  });

  it('writes the disclaimer in the part charset when it can', () => {
    const out = insertDisclaimer(Buffer.from('Gr\xfc\xdfe\r\n', 'latin1'), 'plain', 'ISO-8859-15', { ...german, text: 'Für Sie.' });
    assert.equal(out.charset, undefined);
    assert.equal(iconv.decode(out.bytes, 'iso-8859-15'), 'Grüße\r\n\r\nFür Sie.\r\n');
  });

  it('converts the part to UTF-8 when the charset cannot carry the disclaimer', () => {
    const out = insertDisclaimer(Buffer.from('Gr\xfc\xdfe\r\n', 'latin1'), 'plain', 'iso-8859-1', german);
    assert.equal(out.charset, 'utf-8');
    assert.equal(out.bytes.toString('utf8'), 'Grüße\r\n\r\nVertraulich – nur für den Empfänger.\r\n');
  });

  it('reads an "ASCII" part that really is UTF-8 as UTF-8 when converting', () => {
    const out = insertDisclaimer(Buffer.from('Grüße\r\n', 'utf8'), 'plain', false, german);
    assert.equal(out.charset, 'utf-8');
    assert.equal(out.bytes.toString('utf8'), 'Grüße\r\n\r\nVertraulich – nur für den Empfänger.\r\n');
  });

  it('converts stateful charsets (UTF-16) to UTF-8', () => {
    const out = insertDisclaimer(iconv.encode('Hallo\r\n', 'utf-16le'), 'plain', 'utf-16le', texts);
    assert.equal(out.charset, 'utf-8');
    assert.equal(out.bytes.toString('utf8'), 'Hallo\r\n\r\nThis email is confidential.\r\nSecond line.\r\n');
  });

  it('an empty part gets just the disclaimer', () => {
    assert.equal(insertDisclaimer(Buffer.alloc(0), 'plain', 'utf-8', texts).bytes.toString(), 'This email is confidential.\r\nSecond line.');
  });
});

describe('HTML parts', () => {
  const frag = '<p>This email is confidential &#8211; really.</p>';

  it('inserts before the last </body>, case-insensitive, as ASCII character references', () => {
    const doc = '<html><body><p>a</p><!-- </body> --></BODY ></html>\r\n';
    const out = insertDisclaimer(Buffer.from(doc), 'html', 'iso-8859-1', texts);
    assert.equal(out.charset, undefined);
    assert.equal(out.bytes.toString(), `<html><body><p>a</p><!-- </body> -->\r\n${frag}\r\n</BODY ></html>\r\n`);
  });

  it('falls back to </html>, then to the end', () => {
    assert.equal(insertDisclaimer(Buffer.from('<html><p>a</p>\r\n</html>'), 'html', 'utf-8', texts).bytes.toString(), `<html><p>a</p>\r\n${frag}\r\n</html>`);
    assert.equal(insertDisclaimer(Buffer.from('<p>a</p>'), 'html', 'utf-8', texts).bytes.toString(), `<p>a</p>\r\n${frag}`);
    assert.equal(insertDisclaimer(Buffer.from('<p>a</p>\r\n'), 'html', 'utf-8', texts).bytes.toString(), `<p>a</p>\r\n${frag}\r\n`);
  });

  it('keeps the original bytes of a byte-safe document', () => {
    const doc = Buffer.from('<body>Gr\xfc\xdfe</body>', 'latin1');
    const out = insertDisclaimer(doc, 'html', 'windows-1252', texts);
    assert.equal(out.bytes.toString('latin1'), `<body>Gr\xfc\xdfe\r\n${frag}\r\n</body>`);
  });

  it('converts a UTF-16 document to UTF-8 and fixes its <meta> charset', () => {
    const doc = '<html><head><meta charset="utf-16"></head><body>日本</body></html>';
    const out = insertDisclaimer(iconv.encode(doc, 'utf-16le'), 'html', 'UTF-16LE', texts);
    assert.equal(out.charset, 'utf-8');
    assert.equal(out.bytes.toString('utf8'), `<html><head><meta charset="utf-8"></head><body>日本\r\n${frag}\r\n</body></html>`);
  });

  it('fixes the charset of every <meta> tag, in any case, and leaves other tags alone', () => {
    const doc = '<head><META http-equiv="Content-Type" content="text/html; charset=utf-16"><metadata charset="utf-16"><meta charset=\'utf-16\'></head><body>x</body>';
    const out = insertDisclaimer(iconv.encode(doc, 'utf-16le'), 'html', 'UTF-16LE', texts);
    const head = out.bytes.toString('utf8').split('<body>')[0];
    assert.equal(head, '<head><META http-equiv="Content-Type" content="text/html; charset=utf-8"><metadata charset="utf-16"><meta charset=\'utf-8\'></head>');
  });

  // The message is the attacker's: a quadratic scan would hold the milter's only thread.
  it('stays linear on hostile converted documents: "<meta" without ">", long blank runs', { timeout: 20_000 }, () => {
    const metas = insertDisclaimer(iconv.encode('<meta'.repeat(100_000), 'utf-16le'), 'html', 'UTF-16LE', texts);
    assert.equal(metas.charset, 'utf-8');
    const blanks = `text${' '.repeat(400_000)}x${' \r\n'.repeat(100_000)}`;
    const plain = insertDisclaimer(iconv.encode(blanks, 'utf-16le'), 'plain', 'UTF-16LE', texts);
    assert.ok(plain.bytes.toString('utf8').endsWith(`x\r\n\r\n${texts.text}\r\n`));
  });

  it('ISO-2022-JP: finds </body> only in the ASCII state and returns to it before inserting', () => {
    const ESC = '\x1b';
    // "</body>" as JIS X 0208 bytes (shifted) must not count; the document ends shifted.
    const doc = Buffer.from(`<body>${ESC}$B</body>${ESC}(B</body>${ESC}$B$3`, 'latin1');
    const out = insertDisclaimer(doc, 'html', 'iso-2022-jp', texts);
    assert.equal(out.charset, undefined);
    assert.equal(out.bytes.toString('latin1'), `<body>${ESC}$B</body>${ESC}(B\r\n${frag}\r\n</body>${ESC}$B$3`);
    const plain = insertDisclaimer(Buffer.from(`${ESC}$B$3`, 'latin1'), 'plain', 'iso-2022-jp', texts);
    assert.equal(plain.bytes.toString('latin1'), `${ESC}$B$3${ESC}(B\r\n\r\nThis email is confidential.\r\nSecond line.`);
    assert.throws(() => insertDisclaimer(Buffer.from('x'), 'plain', 'iso-2022-jp', german), /ASCII/);
  });
});

describe('disclaimer texts', () => {
  it('normalises line ends and trims blank lines', () => {
    assert.equal(normalizeDisclaimerText('\n\nA\nB\r\n\n'), 'A\r\nB');
  });

  it('derives an escaped HTML version from the text', () => {
    assert.equal(htmlFromText('A <b> & "c"\r\nD'), '<p style="font-size:small;color:#555555">A &#60;b&#62; &#38; &#34;c&#34;<br>\r\nD</p>');
  });
});
