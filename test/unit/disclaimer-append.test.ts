// The disclaimer appends and never rewrites: one named regression test per failure class that
// real mail showed (issue 15), each checked on the bytes that would be delivered.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addDisclaimer, textFacts, type DisclaimerResult } from '../../src/mime/disclaimer/index.js';
import { unflow } from '../../src/mime/disclaimer/flowed.js';
import { verifyEdits } from '../../src/mime/disclaimer/verify.js';
import { SplicedBody } from '../../src/mime/disclaimer/spliced-body.js';
import { decodedBody } from '../../src/mime/parse/decode.js';
import { parseMessage } from '../../src/mime/parse/parser.js';
import { DEFAULT_TEXTS, disclaimerJob, pieces, rewritten } from '../support/disclaimer-job.js';

const TEXT = DEFAULT_TEXTS.text;
const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');

async function run(raw: Buffer, texts = DEFAULT_TEXTS): Promise<{ result: DisclaimerResult; out: Buffer }> {
  const job = disclaimerJob(raw, { texts });
  const result = await addDisclaimer(job);
  const out = result.kind === 'rewritten' ? await rewritten(job, result.body) : raw;
  return { result, out };
}

/** Decoded content of every leaf, by part path. */
function leaves(message: Buffer): Map<string, { type: string; body: Buffer; raw: Buffer }> {
  const parse = parseMessage(message);
  const out = new Map<string, { type: string; body: Buffer; raw: Buffer }>();
  for (const p of parse.parts)
    if (p.kind === 'leaf')
      out.set(p.path || 'TEXT', {
        type: p.contentType,
        body: decodedBody(message, p),
        raw: message.subarray(p.bodyStart, p.bodyEnd),
      });
  return out;
}

describe('the disclaimer appends: failure classes from real mail', () => {
  for (const [charset, text] of [
    [
      'utf-8',
      'Hallo Bob,\r\nanbei die Zahlen f\u00fcr Q3. Das ist ein langer Absatz, der im Flie\u00dftext \r\numgebrochen wurde.\r\n',
    ],
    ['euc-kr', '\uC548\uB155\uD558\uC138\uC694,\r\n\uC790\uB8CC\uB97C \uBCF4\uB0C5\uB2C8\uB2E4.\r\n'],
  ] as const) {
    it(`format=flowed sent as base64 (${charset}): the sender's text stays, the disclaimer follows in base64`, async () => {
      const { default: iconv } = await import('iconv-lite');
      const bytes = iconv.encode(text, charset);
      const raw = crlf(
        `From: a@example.test\nMIME-Version: 1.0\nContent-Type: text/plain; charset=${charset}; format=flowed; delsp=yes\nContent-Transfer-Encoding: base64\n\n${bytes.toString('base64').replace(/.{76}/g, '$&\n')}\n`,
      );
      const { result, out } = await run(raw);
      assert.equal(result.kind, 'rewritten');
      const after = leaves(out).get('TEXT')!;
      assert.ok(after.body.subarray(0, bytes.length).equals(bytes), 'the original decoded text is a prefix');
      assert.match(iconv.decode(after.body, charset), new RegExp(`${TEXT}\\r\\n$`));
      assert.match(out.toString('latin1'), /Content-Transfer-Encoding: base64\r\n/);
    });
  }

  it('an empty text part: the next delimiter stays on its own line, every later part survives', async () => {
    const raw = crlf(`From: a@example.test
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain; charset=us-ascii

--b
Content-Type: application/pdf; name="scan.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--b
Content-Type: message/rfc822

From: x@example.org
Subject: forwarded

inner
--b--
`);
    const { result, out } = await run(raw);
    assert.equal(result.kind, 'rewritten');
    assert.doesNotMatch(out.toString('latin1'), /[^\n]--b/);
    const before = leaves(raw);
    const after = leaves(out);
    assert.deepEqual([...after.keys()], [...before.keys()]);
    assert.ok(after.get('2')!.raw.equals(before.get('2')!.raw), 'the PDF is byte-identical');
    assert.ok(after.get('3')!.raw.equals(before.get('3')!.raw), 'the forwarded message is byte-identical');
    // The line break after it belongs to the delimiter that follows.
    assert.equal(after.get('1')!.body.toString(), TEXT);
  });

  it('format=flowed quoted reply: no stray ">" in the unwrapped text, quotes untouched, CRLF only', async () => {
    const body =
      'Thanks, see below. \r\nMore text here.\r\n\r\n> Quoted line one that was \r\n> wrapped by the client.\r\n>> Older quote.\r\n';
    const raw = crlf(
      `From: a@example.test\nContent-Type: text/plain; charset=utf-8; format=flowed\nContent-Transfer-Encoding: 7bit\n\n`,
    );
    const msg = Buffer.concat([raw, Buffer.from(body)]);
    const { result, out } = await run(msg);
    assert.equal(result.kind, 'rewritten');
    assert.ok(out.subarray(0, msg.length).equals(msg), 'the original bytes come first, unwrapped text never rewrapped');
    const shown = unflow(leaves(out).get('TEXT')!.body.toString(), false);
    assert.equal(shown, `${unflow(body, false).replace(/\n+$/, '')}\n\n${TEXT}\n`);
    assert.doesNotMatch(out.subarray(msg.length).toString('latin1'), /(^|[^\r])\n/);
  });

  it('7bit US-ASCII stays 7bit: the original bytes, then the disclaimer lines; 8bit stays 8bit', async () => {
    for (const cte of ['7bit', '8bit']) {
      const raw = crlf(
        `From: a@example.test\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: ${cte}\n\nHello Bob,\nsee you.\n`,
      );
      const { result, out } = await run(raw);
      assert.equal(result.kind, 'rewritten');
      assert.equal(out.toString('latin1'), `${raw.toString('latin1')}\r\n${TEXT}\r\n`);
      assert.deepEqual(result.kind === 'rewritten' && result.headerMods, []);
    }
  });

  it('quoted-printable is continued, raw 8-bit bytes inside it untouched', async () => {
    const raw = Buffer.concat([
      crlf(
        'From: a@example.test\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nGr=FC=DFe, Anna ',
      ),
      Buffer.from([0xe9]),
      crlf(' raw=\nsoft\n'),
    ]);
    const { result, out } = await run(raw);
    assert.equal(result.kind, 'rewritten');
    assert.ok(out.subarray(0, raw.length).equals(raw), 'every original byte stays');
    assert.equal(out.subarray(raw.length).toString('latin1'), `\r\n${TEXT}\r\n`);
  });

  it('base64: only a padded last group is written again', async () => {
    const text = Buffer.from('Hello there, this is a short note.\r\n'); // 36 bytes: no padding
    const padded = Buffer.from('Hello there, this is a short note!!\r\n'); // 37 bytes: "==" padding
    for (const content of [text, padded]) {
      const b64 = content.toString('base64');
      const raw = crlf(
        `From: a@example.test\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: base64\n\n${b64}\n`,
      );
      const { result, out } = await run(raw);
      assert.equal(result.kind, 'rewritten');
      const keep = b64.endsWith('=') ? b64.slice(0, -4) : b64;
      assert.ok(out.toString('latin1').includes(`\r\n\r\n${keep}`), 'the complete groups stay as written');
      assert.equal(leaves(out).get('TEXT')!.body.toString(), `${content.toString()}\r\n${TEXT}\r\n`);
    }
  });

  it('HTML without </body> or </head>: before </html>, else at the end', async () => {
    for (const [html, where] of [
      ['<!doctype html><p>Hi</p></html>\r\n', /<p>Hi<\/p>\r\n<p>This email is confidential.<\/p>\r\n<\/html>/],
      ['<!doctype html><p>Hi</p>\r\n', /<p>Hi<\/p>\r\n<p>This email is confidential.<\/p>\r\n$/],
    ] as const) {
      const raw = crlf(`From: a@example.test\nContent-Type: text/html; charset=utf-8\n\n${html}`);
      const { result, out } = await run(raw);
      assert.equal(result.kind, 'rewritten');
      assert.match(leaves(out).get('TEXT')!.body.toString(), where);
    }
  });

  it('Content-Type "text" without a subtype is text/plain; unknown transfer-encoding names take an ASCII line as it is', async () => {
    for (const headers of [
      'Content-Type: text',
      'Content-Type: text/plain\nContent-Transfer-Encoding: 8bits',
      'Content-Type: text/plain\nContent-Transfer-Encoding: quoted printable',
    ]) {
      const raw = crlf(`From: a@example.test\n${headers}\n\nplain body\n`);
      const { result, out } = await run(raw);
      assert.equal(result.kind, 'rewritten', headers);
      assert.equal(out.toString('latin1'), `${raw.toString('latin1')}\r\n${TEXT}\r\n`);
    }
  });

  it('an x-uuencode text part gets no disclaimer (it would be read as part of the encoded file)', async () => {
    const raw = crlf(
      'From: a@example.test\nContent-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a.txt\n#86)C\n`\nend\n',
    );
    const { result } = await run(raw);
    assert.equal(result.kind, 'skipped');
    assert.equal(result.kind === 'skipped' && result.code, 'encoding');
  });

  it('a second pass adds nothing; signed mail is left alone', async () => {
    const raw = crlf('From: a@example.test\nContent-Type: text/plain\n\nHello\n');
    const first = await run(raw);
    const second = await run(first.out);
    assert.equal(second.result.kind, 'skipped');
    assert.equal(second.result.kind === 'skipped' && second.result.code, 'already-present');
    const signed = crlf(
      'From: a@example.test\nContent-Type: multipart/signed; protocol="application/pgp-signature"; boundary="s"\n\n--s\nContent-Type: text/plain\n\nsigned text\n--s\nContent-Type: application/pgp-signature\n\nsig\n--s--\n',
    );
    const s = await run(signed);
    assert.equal(s.result.kind === 'skipped' && s.result.code, 'signed');
  });

  it("what follows from a policy's texts alone is worked out once per texts object, and only for it", async () => {
    assert.equal(textFacts(DEFAULT_TEXTS), textFacts(DEFAULT_TEXTS));
    const other = { text: 'Sent from the legal department.', html: '<p>Sent from the <b>legal</b> department.</p>' };
    assert.notEqual(textFacts(other), textFacts(DEFAULT_TEXTS));
    assert.equal(textFacts(other).htmlText.replace(/\s+/g, ' ').trim(), 'Sent from the legal department.');
    // A message that carries one text is "already present" for that text, not for another.
    const raw = crlf('From: a@example.test\nContent-Type: text/plain\n\nHello\n');
    const first = await run(raw);
    assert.equal((await run(first.out)).result.kind, 'skipped');
    const withOther = await run(first.out, other);
    assert.equal(withOther.result.kind, 'rewritten', 'another text is still added');
    assert.equal((await run(withOther.out, other)).result.kind, 'skipped');
    assert.equal((await run(withOther.out)).result.kind, 'skipped');
  });
});

describe('verification checks what matters', () => {
  it('an edit that would break a delimiter, lose text or add a bare LF is refused', async () => {
    const raw = crlf(
      'From: a@example.test\nContent-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nhello\n--b\nContent-Type: application/pdf\n\n%PDF\n--b--\n',
    );
    const parse = parseMessage(raw);
    const text = parse.parts[1]!;
    const cut = raw.indexOf('\r\n\r\n') + 4;
    const attempt = async (bytes: string, from = text.bodyEnd, to = text.bodyEnd) => {
      const body = new SplicedBody(() => pieces(raw.subarray(cut)), raw.length - cut, [
        { from: from - cut, to: to - cut, bytes: Buffer.from(bytes, 'latin1') },
      ]);
      const added = Buffer.from(bytes, 'latin1');
      const edit = {
        part: text,
        kind: 'plain' as const,
        from,
        to,
        bytes: added,
        expect: { before: raw.subarray(text.bodyStart, text.bodyEnd), added, after: Buffer.alloc(0) },
        text: TEXT,
        ascii: false,
      };
      return verifyEdits({
        parse,
        edits: [edit],
        texts: DEFAULT_TEXTS,
        htmlText: TEXT,
        headerBlock: raw.subarray(0, cut),
        body,
        signal: AbortSignal.timeout(5000),
      });
    };
    assert.deepEqual(await attempt(`\r\n\r\n${TEXT}`), []);
    assert.match((await attempt(`\r\n${TEXT}\r\n--b--\r\nx`)).join(), /MIME parts|moved|did not come back/);
    assert.match((await attempt(`\n\n${TEXT}`)).join(), /bare LF/);
    assert.match(
      (await attempt(`\r\n\r\n${TEXT}`, text.bodyStart + 1, text.bodyEnd)).join(),
      /did not come back|moved/,
    );
    assert.match((await attempt(`\r\n\r\n${TEXT} ${TEXT}`)).join(), /appears 2 times/);
  });
});
