// Transfer decoding split at every possible chunk boundary, and HTML-to-text for matching.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countBase64Chars, transferDecoder } from '../../src/mime/transfer-decode.js';
import { htmlToText, normalizeSpace } from '../../src/rules/content/text.js';

function decodeSplit(encoding: string, encoded: string, at: number): string {
  const d = transferDecoder(encoding);
  const bytes = Buffer.from(encoded, 'latin1');
  const out = Buffer.concat([d.write(bytes.subarray(0, at)), d.write(bytes.subarray(at)), d.end()]);
  return out.toString('utf8');
}

test('quoted-printable: escapes, soft breaks (also after padding), any split point', () => {
  const encoded = 'Gr=C3=BC=C3=9Fe, this line is soft=\r\nly broken, =3D sign, pad=  \r\nded, bare=\nLF, 50=25 off=';
  const want = 'Grüße, this line is softly broken, = sign, padded, bareLF, 50% off=';
  for (let at = 0; at <= encoded.length; at++)
    assert.equal(decodeSplit('quoted-printable', encoded, at), want, `split at ${at}`);
});

test('quoted-printable: invalid escapes are kept', () => {
  assert.equal(decodeSplit('Quoted-Printable', 'a=ZZb =4 c', 3), 'a=ZZb =4 c');
});

test('base64: line breaks and any split point', () => {
  const text = 'CONFIDENTIAL - INTERNAL ONLY, Grüße! '.repeat(5);
  const encoded = Buffer.from(text).toString('base64').replace(/.{76}/g, '$&\r\n');
  for (let at = 0; at <= encoded.length; at += 3)
    assert.equal(decodeSplit('base64', encoded, at), text, `split at ${at}`);
});

test('7bit/8bit/binary/unknown pass through', () => {
  for (const enc of ['7bit', '8bit', 'binary', '', '8bits', 'quoted printable'])
    assert.equal(decodeSplit(enc, 'a=3Db', 2), 'a=3Db');
});

test('HTML to text: tags, entities, hidden elements, comments, inline tags join', () => {
  const html =
    '<html><head><style>p{}</style><title>T</title></head><body><p>Hello&nbsp;<b>Wor</b>ld &amp; &#x41;&#66; &bogus; 3 < 4</p><!-- hidden --><script>x()</script><div>next</div></body></html>';
  assert.equal(normalizeSpace(htmlToText(html)), 'Hello World & AB &bogus; 3 < 4 next');
});

test('HTML to text stays linear on hostile input', () => {
  // Many unclosed comment starts and tags: must complete promptly (no rescans per position).
  const hostile = '<!--'.repeat(50_000) + '<a'.repeat(50_000) + '<script>'.repeat(20_000);
  assert.equal(typeof htmlToText(hostile), 'string');
});

test('normalizeSpace: line breaks, NBSP and zero-width characters', () => {
  assert.equal(normalizeSpace(' a\r\n\tb\u00a0c CONFI\u200bDENTIAL\u00ad '), 'a b c CONFIDENTIAL');
});

test('measure() counts what write() would return, at any split point and after any switch', () => {
  const binary = Buffer.from(Array.from({ length: 301 }, (_, i) => (i * 37) % 256));
  const cases: Array<[string, string]> = [
    ['base64', binary.toString('base64').replace(/.{76}/g, '$&\r\n')],
    ['base64', `${binary.subarray(0, 7).toString('base64url')}\r\n!!garbage==\r\n`],
    ['quoted-printable', 'Gr=C3=BC=C3=9Fe soft=\r\nbreak =3D end='],
    ['7bit', 'plain\r\ntext\r\n'],
  ];
  for (const [encoding, encoded] of cases) {
    const bytes = Buffer.from(encoded, 'latin1');
    const whole = transferDecoder(encoding);
    const want = whole.write(bytes).length + whole.end().length;
    for (let decodeUpTo = 0; decodeUpTo <= bytes.length; decodeUpTo += 5) {
      for (const at of [decodeUpTo, Math.min(bytes.length, decodeUpTo + 3)]) {
        const d = transferDecoder(encoding);
        let got = d.write(bytes.subarray(0, decodeUpTo)).length;
        got += d.measure(bytes.subarray(decodeUpTo, at)) + d.measure(bytes.subarray(at)) + d.measureEnd();
        assert.equal(got, want, `${encoding}: decoded up to ${decodeUpTo}, split at ${at}`);
      }
    }
  }
});

test('countBase64Chars counts alphabet bytes two at a time at any offset and length', () => {
  const alphabet = /[A-Za-z0-9+/]/;
  const bytes = Buffer.from(Array.from({ length: 1031 }, (_, i) => (i * 97 + (i >> 3)) % 256));
  const slow = (b: Buffer) => [...b].filter((c) => alphabet.test(String.fromCharCode(c))).length;
  for (const start of [0, 1, 2, 3]) {
    for (const length of [0, 1, 2, 3, 64, 65, 1000]) {
      const view = bytes.subarray(start, start + length);
      assert.equal(countBase64Chars(view), slow(view), `offset ${start}, length ${length}`);
    }
  }
});
