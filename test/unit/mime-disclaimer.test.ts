// The streaming MIME side of the disclaimer: the tree scan, the plan, the rewrite with its
// after-checks, the temporary body, the guards against huge lines, and memory on big mail.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { addDisclaimer, headerMods, type DisclaimerJob } from '../../src/mime/disclaimer.js';
import { planDisclaimer, type Plan } from '../../src/mime/disclaimer-plan.js';
import { checkInvariants, newDelimiters } from '../../src/mime/invariants.js';
import { WholeLines } from '../../src/mime/line-guard.js';
import { scanTree, TreeLimitError, type MimeTree } from '../../src/mime/mime-tree.js';
import { RewrittenBody } from '../../src/mime/rewritten-body.js';
import { TempBody } from '../../src/mime/temp-body.js';
import { containsText, htmlToText, normalizeForMatch } from '../../src/mime/text-match.js';

const MiB = 1024 * 1024;
const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');
const spool = mkdtempSync(join(tmpdir(), 'relayguard-disclaimer-test-'));
after(() => rmSync(spool, { recursive: true, force: true }));

const TEXT = 'This email is confidential.';
const texts = { text: TEXT, html: '<p>This email is confidential.</p>' };
const signal = () => AbortSignal.timeout(20_000);
const scanOpts = { maxParts: 100, maxHeaderBytes: 64 * 1024, maxLineLength: 64 * 1024, keepText: MiB, keepTotal: 4 * MiB };

/** Feeds `raw` in pieces of `size` bytes (the Splitter must not care where chunks end). */
function chunked(raw: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < raw.length; i += size) parts.push(raw.subarray(i, i + size));
  return Readable.from(parts);
}

const tree = (raw: Buffer, size = 1 << 16) => scanTree(chunked(raw, size), scanOpts, signal());
const plan = async (raw: Buffer, maxPartBytes = MiB): Promise<Plan> => planDisclaimer(await tree(raw), { text: TEXT, htmlText: htmlToText(texts.html), maxPartBytes });
const chosenParts = (p: Plan) => (p.kind === 'rewrite' ? p.targets.map((t) => `${t.partNr}:${t.kind}`) : p.kind === 'skip' ? `skip:${p.code}` : 'nothing');

function job(raw: Buffer, extra: Partial<DisclaimerJob> = {}): DisclaimerJob {
  return { texts, spoolDir: spool, message: () => chunked(raw, 4096), signal: signal(), maxPartBytes: MiB, maxLineLength: 64 * 1024, maxParts: 100, maxHeaderBytes: 64 * 1024, ...extra };
}

const MIXED = crlf(`From: a@example.test
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="m"

preamble
--m
Content-Type: multipart/alternative; boundary="a"

--a
Content-Type: text/plain; charset=utf-8

first plain
--a
Content-Type: text/plain; charset=utf-8

second plain (preferred)
--a
Content-Type: multipart/related; boundary="r"

--r
Content-Type: text/html; charset=utf-8

<p>html</p>
--r
Content-Type: image/gif
Content-Transfer-Encoding: base64

R0lGODlhAQABAAAAACw=
--r--
--a--
--m
Content-Type: text/plain; name="notes.txt"
Content-Disposition: inline

an inline text with a name is an attachment
--m
Content-Type: message/rfc822
Content-Disposition: inline

Subject: inner
Content-Type: text/plain

inner text
--m--
epilogue
`);

describe('tree scan', () => {
  it('records the tree and does not look inside attached messages', async () => {
    const t = await tree(MIXED);
    assert.deepEqual(
      t.nodes.map((n) => `${n.partNr} ${n.contentType}`),
      ['TEXT multipart/mixed', '1 multipart/alternative', '1.1 text/plain', '1.2 text/plain', '1.3 multipart/related', '1.3.1 text/html', '1.3.2 image/gif', '2 text/plain', '3 message/rfc822'],
    );
    assert.equal(t.nodes[2]!.text!.toString(), 'first plain');
    assert.equal(t.nodes[7]!.text, undefined);
  });

  it('gives the same tree and hashes whatever the chunk boundaries', async () => {
    const whole = await tree(MIXED);
    // mailsplit alone loses bytes at some of these cut points (see line-guard.ts).
    // As JSON: kept bytes compare by content and length (their pieces follow the chunks).
    const same = (t: unknown) => JSON.parse(JSON.stringify(t)) as unknown;
    for (const size of [1, 2, 3, 4, 5, 7, 11, 113]) assert.deepEqual(same(await tree(MIXED, size)), same(whole), `chunks of ${size}`);
  });

  it('keeps decoded text within a per-part and a per-message budget', async () => {
    const parts = ['a', 'b', 'c', 'd'].map((c) => `--b\nContent-Type: text/plain\n\n${c.repeat(100)}\n`).join('');
    const raw = crlf(`Content-Type: multipart/mixed; boundary="b"\n\n${parts}--b--\n`);
    const t = await scanTree(chunked(raw, 4096), { ...scanOpts, keepText: 80, keepTotal: 200 }, signal());
    assert.deepEqual(
      t.nodes.slice(1).map((n) => [n.text?.length, !!n.textTruncated]),
      [[80, true], [80, true], [40, true], [0, true]],
    );
    const only = await scanTree(chunked(raw, 4096), { ...scanOpts, keepOnly: new Set([2]) }, signal());
    assert.deepEqual(only.nodes.map((n) => n.text?.length), [undefined, undefined, 100, undefined, undefined]);
  });

  it('refuses a line longer than the limit before parsing it', async () => {
    const raw = crlf(`Subject: x\n\n${'a'.repeat(70_000)}\n`);
    await assert.rejects(tree(raw, 1000), (e: unknown) => e instanceof TreeLimitError && e.limit === 'line');
  });

  it('refuses more parts than allowed', async () => {
    const many = Array.from({ length: 120 }, () => '--b\nContent-Type: text/plain\n\nx\n').join('');
    const raw = crlf(`Content-Type: multipart/mixed; boundary="b"\n\n${many}--b--\n`);
    await assert.rejects(tree(raw), (e: unknown) => e instanceof TreeLimitError && e.limit === 'parts');
  });

  it('the line guard counts across chunk boundaries', async () => {
    const consume = Readable.from([Buffer.from('12345'), Buffer.from('67890\n12'), Buffer.from('345678901\n')]).pipe(new WholeLines(10));
    await assert.rejects(async () => {
      for await (const _ of consume) void _;
    }, /longer than 10/);
  });

  it('hands the Splitter whole lines only, whatever the input chunks', async () => {
    // 'data' events, as pipe() delivers them to the Splitter (an async iterator would merge them).
    const pieces: string[] = [];
    const lines = Readable.from(['ab', 'c\r', '\nde', 'f\r\ng', 'h'].map((s) => Buffer.from(s))).pipe(new WholeLines());
    lines.on('data', (c: Buffer) => pieces.push(String(c)));
    await new Promise((resolve) => lines.on('end', resolve));
    assert.deepEqual(pieces, ['abc\r\n', 'def\r\n', 'gh']);
  });
});

describe('plan', () => {
  it('one text and one html per alternative group; never attachments or attached messages', async () => {
    assert.deepEqual(chosenParts(await plan(MIXED)), ['1.2:plain', '1.3.1:html']);
  });

  it('the main text of a mixed message is its first body, wherever attachments are', async () => {
    const raw = crlf(`Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: application/pdf
Content-Disposition: attachment; filename="a.pdf"

%PDF
--b
Content-Type: text/plain

body
--b
Content-Type: text/plain

second
--b--
`);
    assert.deepEqual(chosenParts(await plan(raw)), ['2:plain']);
  });

  it('nothing to do for a message with only an attachment', async () => {
    const raw = crlf(`Content-Type: application/pdf\nContent-Disposition: attachment; filename="a.pdf"\n\n%PDF\n`);
    assert.equal(chosenParts(await plan(raw)), 'nothing');
  });

  it('skips signed and encrypted content anywhere, and inline PGP', async () => {
    const signed = crlf(`Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain

hello
--b
Content-Type: application/x-pkcs7-mime; smime-type=signed-data; name="smime.p7m"
Content-Transfer-Encoding: base64

MIAGCSqGSIb3DQEHAqCAMIACAQE=
--b--
`);
    assert.equal(chosenParts(await plan(signed)), 'skip:signed');
    const pgp = crlf(`Content-Type: text/plain\n\nhi\n-----BEGIN PGP MESSAGE-----\n\nhQEMA\n-----END PGP MESSAGE-----\n`);
    assert.equal(chosenParts(await plan(pgp)), 'skip:inline-pgp');
  });

  it('finds the disclaimer already present in HTML, across tags and entities', async () => {
    const raw = crlf(`Content-Type: text/html\n\n<blockquote><p>This&nbsp;email is <b>confidential</b>.</p></blockquote>\n`);
    assert.equal(chosenParts(await plan(raw)), 'skip:already-present');
  });

  it('skips a text part over the size limit and an unknown charset', async () => {
    const big = crlf(`Content-Type: text/plain\n\n${'x'.repeat(100)}\n${'y'.repeat(100)}\n`);
    assert.equal(chosenParts(await plan(big, 150)), 'skip:too-large');
    const odd = crlf(`Content-Type: text/plain; charset=x-unheard-of\n\nhi\n`);
    assert.equal(chosenParts(await plan(odd)), 'skip:charset');
  });
});

describe('text matching', () => {
  it('ignores whitespace, case, quote markers and tags', () => {
    assert.equal(normalizeForMatch('> A\n>  b\tC \n'), 'a b c');
    assert.ok(containsText('> This email\n> is CONFIDENTIAL.', TEXT));
    assert.ok(containsText(htmlToText('<div>This email is<br>confidential&#46;</div>'), TEXT));
    assert.ok(!containsText('This email is not confidential.', TEXT));
    assert.ok(!containsText('anything', ''));
  });
});

describe('rewrite', () => {
  it('rewrites only the planned parts, everything else byte-identical', async () => {
    const r = await addDisclaimer(job(MIXED));
    assert.equal(r.kind, 'rewritten');
    if (r.kind !== 'rewritten') return;
    assert.deepEqual(r.parts, ['1.2', '1.3.1']);
    assert.deepEqual(r.headerMods, []);
    const chunks: Buffer[] = [];
    for await (const c of r.body.stream()) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('latin1');
    assert.equal(body.length, r.body.size);
    const original = MIXED.toString('latin1');
    const originalBody = original.slice(original.indexOf('\r\n\r\n') + 4);
    // Untouched: the preamble, the first plain, the image, the named text, the attached message, the epilogue.
    for (const piece of ['preamble\r\n--m', 'first plain\r\n--a', 'R0lGODlhAQABAAAAACw=\r\n--r--', 'an inline text with a name is an attachment\r\n--m', 'inner text\r\n--m--\r\nepilogue\r\n']) {
      assert.ok(body.includes(piece), piece);
    }
    assert.ok(body.includes('second plain (preferred)\r\n\r\nThis email is confidential.\r\n--a'));
    assert.ok(body.includes('<p>html</p>\r\n<p>This email is confidential.</p>\r\n--r'));
    assert.equal(body.length - originalBody.length > 0, true);
    assert.ok(r.body.disposed, 'reading the body releases it');
    assert.throws(() => r.body.stream(), /already read/);
  });

  it('leaves no file behind, whatever happens to the body', async () => {
    const r = await addDisclaimer(job(MIXED));
    assert.equal(r.kind, 'rewritten');
    assert.deepEqual(readdirSync(spool), [], 'the spool file is unlinked right away');
    if (r.kind === 'rewritten') r.body.dispose();
  });

  it('reports the top-level header changes of a single-part message', async () => {
    const raw = crlf(`Subject: x\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nGr\xfc\xdfe\n`);
    const r = await addDisclaimer(job(raw, { texts: { text: 'Vertraulich – ja.', html: '<p>x</p>' } }));
    assert.equal(r.kind, 'rewritten');
    if (r.kind !== 'rewritten') return;
    assert.deepEqual(r.converted, ['TEXT']);
    assert.deepEqual(r.headerMods, [
      { type: 'changeHeader', name: 'Content-Type', index: 1, value: 'text/plain; charset=utf-8' },
      { type: 'changeHeader', name: 'Content-Transfer-Encoding', index: 1, value: 'quoted-printable' },
      { type: 'addHeader', name: 'MIME-Version', value: '1.0' },
    ]);
    const chunks: Buffer[] = [];
    for await (const c of r.body.stream()) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString('latin1'), 'Gr=C3=BC=C3=9Fe\r\n\r\nVertraulich =E2=80=93 ja.\r\n');
  });

  it('delivers the original when the rewritten message fails its checks', async () => {
    // A disclaimer line that is the part's own MIME delimiter would split the part in two.
    const raw = crlf(`Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nhello\n--b--\n`);
    const r = await addDisclaimer(job(raw, { texts: { text: 'Confidential.\r\n--b', html: '<p>Confidential.</p>' } }));
    assert.equal(r.kind, 'skipped');
    if (r.kind === 'skipped') {
      assert.equal(r.code, 'invariants');
      assert.match(r.reason, /failed its checks: delimiters, preamble or epilogue changed/);
    }
    assert.deepEqual(readdirSync(spool), []);
  });

  it('stops when the deadline passes', async () => {
    const never = new Readable({ read() {} });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(addDisclaimer(job(MIXED, { message: () => never, signal: ac.signal })), { name: 'AbortError' });
  });

  it('streams a big message: memory stays flat, the body is on disk', async () => {
    // In a fresh process, so that what other tests left on the heap does not blur the number.
    const size = 32 * MiB;
    const moduleUrl = new URL('../../src/mime/disclaimer.js', import.meta.url).href;
    const script = `
      import { Readable } from 'node:stream';
      import { addDisclaimer } from ${JSON.stringify(moduleUrl)};
      const line = Buffer.from('QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWkFCQ0RF\\r\\n');
      const block = Buffer.concat(Array.from({ length: 800 }, () => line));
      function* message() {
        yield Buffer.from('Content-Type: multipart/mixed; boundary="b"\\r\\n\\r\\n--b\\r\\nContent-Type: text/plain\\r\\n\\r\\nhello\\r\\n--b\\r\\nContent-Type: application/octet-stream\\r\\nContent-Transfer-Encoding: base64\\r\\n\\r\\n');
        for (let n = 0; n < ${size}; n += block.length) yield block;
        yield Buffer.from('--b--\\r\\n');
      }
      const base = process.memoryUsage().rss;
      let peak = base;
      const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
      const r = await addDisclaimer({ texts: { text: 'Confidential.', html: '<p>Confidential.</p>' }, spoolDir: ${JSON.stringify(spool)},
        message: () => Readable.from(message()), signal: AbortSignal.timeout(60000),
        maxPartBytes: 2097152, maxLineLength: 1048576, maxParts: 100, maxHeaderBytes: 65536 });
      clearInterval(timer);
      console.log(JSON.stringify({ kind: r.kind, size: r.kind === 'rewritten' ? r.body.size : 0, grew: peak - base }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
    const r = JSON.parse(stdout) as { kind: string; size: number; grew: number };
    assert.equal(r.kind, 'rewritten');
    assert.ok(r.size > size);
    assert.ok(r.grew < 24 * MiB, `rss grew by ${(r.grew / MiB).toFixed(1)} MiB for a ${size / MiB} MiB message`);
    assert.deepEqual(readdirSync(spool), []);
  });
});

describe('invariants and header edits', () => {
  const base = async (): Promise<MimeTree> => tree(MIXED);

  it('notice a changed attachment, a moved delimiter and a missing disclaimer', async () => {
    const before = await base();
    const changed = await tree(Buffer.from(MIXED.toString('latin1').replace('R0lGODlhAQABAAAAACw=', 'R0lGODlhAQABAAAAACx='), 'latin1'));
    assert.deepEqual(checkInvariants(before, changed, new Map()), ['part 1.3.2 body changed']);
    const epilogue = await tree(Buffer.from(MIXED.toString('latin1').replace('epilogue', 'EPILOGUE'), 'latin1'));
    assert.deepEqual(checkInvariants(before, epilogue, new Map()), ['delimiters, preamble or epilogue changed']);
    assert.deepEqual(checkInvariants(before, before, new Map([[3, { kind: 'plain' as const, needle: TEXT }]])), ['part 1.2 does not contain the disclaimer']);
  });

  it('notice untouched stretches that moved or changed size, and new delimiter lines', async () => {
    const before = await base();
    // One byte moved from the preamble into the first header block: hashes of the parts around
    // it change too, but the layout alone already tells.
    const moved = structuredClone(before);
    const preamble = moved.layout.findIndex((r) => r.kind === 'between');
    moved.layout[preamble]!.bytes -= 1;
    moved.layout[preamble + 1]!.bytes += 1;
    assert.deepEqual(checkInvariants(before, moved, new Map()), ['parts moved or changed size outside the rewritten ones']);
    // A rewritten part may change size (header block and body): that alone is no problem.
    const target = before.nodes.findIndex((n) => n.partNr === '1.2');
    const grown = structuredClone(before);
    for (const r of grown.layout) if (r.ordinal === target) r.bytes += 10;
    grown.nodes[target]!.text = before.nodes[target]!.text; // structuredClone makes Buffers plain arrays
    const problems = checkInvariants(before, grown, new Map([[target, { kind: 'plain' as const, needle: 'second plain' }]]));
    assert.deepEqual(problems, []);

    assert.equal(newDelimiters(crlf('Content-Type: text/plain\n\nhello\n--a\n'), before), true);
    assert.equal(newDelimiters(crlf('Content-Type: text/plain\n\nhello\n--m--\n'), before), true);
    assert.equal(newDelimiters(crlf('Content-Type: text/plain\n\nhello\n--ab\n-- m\n--a--x\n'), before), false);
  });

  it('header edits: change in place, add what was missing, drop extra copies', () => {
    const line = (key: string, value: string) => ({ key: key.toLowerCase(), line: `${key}: ${value}` });
    assert.deepEqual(headerMods([line('MIME-Version', '1.0'), line('Content-Type', 'text/plain')], [line('MIME-Version', '1.0'), line('Content-Transfer-Encoding', 'quoted-printable'), line('Content-Type', 'text/plain')]), [
      { type: 'addHeader', name: 'Content-Transfer-Encoding', value: 'quoted-printable' },
    ]);
    assert.deepEqual(headerMods([line('Content-Type', 'text/plain'), line('Content-Type', 'text/html')], [line('Content-Type', 'text/plain; charset=utf-8')]), [
      { type: 'changeHeader', name: 'Content-Type', index: 1, value: 'text/plain; charset=utf-8' },
      { type: 'changeHeader', name: 'Content-Type', index: 2, value: '' },
      { type: 'addHeader', name: 'MIME-Version', value: '1.0' },
    ]);
    assert.deepEqual(headerMods([line('Content-Type', 'text/plain;\r\n charset=x')], [line('Content-Type', 'text/plain; charset=x')]), []);
  });
});

describe('rewritten body', () => {
  const fill = async (body: RewrittenBody, pieces: string[]) => {
    const w = body.writer();
    for (const p of pieces) w.write(Buffer.from(p));
    await new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())));
  };
  const read = async (body: RewrittenBody) => {
    let s = '';
    for await (const c of body.stream()) s += String(c);
    return s;
  };

  it('stays in memory up to the limit, readable once', async () => {
    const body = new RewrittenBody(spool, 10);
    await fill(body, ['hello', 'world']);
    assert.equal(body.onDisk, false);
    assert.equal(body.size, 10);
    assert.equal(await read(body), 'helloworld');
    assert.equal(body.disposed, true);
    assert.throws(() => body.stream(), /already read or released/);
  });

  it('spills to an unlinked file past the limit, with everything written so far', async () => {
    const body = new RewrittenBody(spool, 10);
    await fill(body, ['hello', 'world', '!', ' and more']);
    assert.equal(body.onDisk, true);
    assert.deepEqual(readdirSync(spool), []);
    assert.equal(body.size, 20);
    assert.equal(await read(body), 'helloworld! and more');
    assert.equal(body.disposed, true);
  });
});

describe('temporary body', () => {
  it('is unlinked at once, readable once, released on dispose', async () => {
    const body = await TempBody.create(spool);
    assert.deepEqual(readdirSync(spool), []);
    const w = body.writer();
    await new Promise<void>((resolve, reject) => w.end(Buffer.from('hello'), (err?: Error | null) => (err ? reject(err) : resolve())));
    body.size = 5;
    let peeked = '';
    for await (const c of body.peek()) peeked += String(c);
    assert.equal(peeked, 'hello');
    assert.equal(body.disposed, false);
    body.dispose();
    body.dispose();
    assert.throws(() => body.stream(), /already read or released/);
  });
});
