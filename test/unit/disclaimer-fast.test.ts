// The disclaimer's fast rewrite (disclaimer-fast.ts) against the stream rewrite it replaces: the
// same new body, the same header edits, the same recorded tree and rewritten parts, byte for
// byte, on the golden corpus and on edge cases; and the cases it hands back to the stream
// version (format=flowed, a bare LF in the re-encoded part).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { NeedsStreamRewrite, rewriteFast, type Written } from '../../src/mime/disclaimer-fast.js';
import { htmlFromText, normalizeDisclaimerText } from '../../src/mime/disclaimer-insert.js';
import { planDisclaimer, type Target } from '../../src/mime/disclaimer-plan.js';
import { rewriteStream, type DisclaimerJob } from '../../src/mime/disclaimer.js';
import { scanBuffer, scanTree, SplitReplay } from '../../src/mime/mime-tree.js';
import { htmlToText } from '../../src/mime/text-match.js';
import { RewrittenBody } from '../../src/mime/rewritten-body.js';
import { CORPUS } from '../golden/disclaimer/run-case.js';

const TEXT = normalizeDisclaimerText('This email is confidential.\nÜbrigens: nur für den Empfänger.');
const TEXTS = { text: TEXT, html: htmlFromText(TEXT) };
const LIMITS = { maxPartBytes: 2 * 1024 * 1024, maxLineLength: 1024 * 1024, maxParts: 1000, maxHeaderBytes: 256 * 1024 };
/** Small pieces so that parts, lines and CRLFs are cut everywhere; 0 = the message in one piece. */
const PIECE_SIZES = [0, 7, 100];
const READBACK_SLACK = 256 * 1024;

function pieces(bytes: Buffer, size: number): Buffer[] {
  if (!size) return [bytes];
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

function job(message: Buffer, size: number): DisclaimerJob {
  return { ...LIMITS, texts: TEXTS, spoolDir: tmpdir(), message: () => Readable.from(pieces(message, size)), signal: AbortSignal.timeout(10_000) };
}

function targetsOf(message: Buffer): Target[] | null {
  const tree = scanBuffer(message, { ...LIMITS, keepText: LIMITS.maxPartBytes, keepTotal: 4 * LIMITS.maxPartBytes });
  const plan = planDisclaimer(tree, { text: TEXT, htmlText: htmlToText(TEXTS.html), maxPartBytes: LIMITS.maxPartBytes });
  return plan.kind === 'rewrite' ? plan.targets : null;
}

async function bodyBytes(body: RewrittenBody): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of body.stream()) out.push(c as Buffer);
  return Buffer.concat(out);
}

async function outcome(w: Written, body: RewrittenBody, targets: Target[]) {
  return {
    body: (await bodyBytes(body)).toString('latin1'),
    after: JSON.stringify(w.after),
    raw: targets.map((t) => w.rawPart(t.ordinal)?.toString('latin1')),
    rootBefore: w.rootBefore,
    rootAfter: w.rootAfter,
    converted: w.converted,
  };
}

type Result = { fallback: string } | Awaited<ReturnType<typeof outcome>>;

async function fast(message: Buffer, size: number, targets: Target[]): Promise<Result> {
  const body = new RewrittenBody(tmpdir(), 1024 * 1024);
  const j = job(message, size);
  try {
    return await outcome(await rewriteFast(j.message(), { ...j, maxDecodedBytes: LIMITS.maxPartBytes + READBACK_SLACK }, targets, body), body, targets);
  } catch (err) {
    if (err instanceof NeedsStreamRewrite) return { fallback: err.message };
    throw err;
  }
}

/** The fast rewrite fed the chunks a scan kept (SplitReplay), as addDisclaimer does for a small message. */
async function replayed(message: Buffer, size: number, targets: Target[]): Promise<Result> {
  const replay = new SplitReplay(1024 * 1024);
  const j = job(message, size);
  await scanTree(j.message(), { ...LIMITS, keepText: LIMITS.maxPartBytes, keepTotal: LIMITS.maxPartBytes }, j.signal, replay);
  const body = new RewrittenBody(tmpdir(), 1024 * 1024);
  try {
    return await outcome(await rewriteFast(replay.chunks()!, { ...j, maxDecodedBytes: LIMITS.maxPartBytes + READBACK_SLACK }, targets, body), body, targets);
  } catch (err) {
    if (err instanceof NeedsStreamRewrite) return { fallback: err.message };
    throw err;
  }
}

async function stream(message: Buffer, size: number, targets: Target[]): Promise<Result> {
  const body = new RewrittenBody(tmpdir(), 1024 * 1024);
  return outcome(await rewriteStream(job(message, size), targets, body), body, targets);
}

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');

const EDGE_CASES: Record<string, Buffer> = {
  'single part, no final line break': crlf('Subject: a\nContent-Type: text/plain\n\nno line break at the end'),
  'single part, empty body': crlf('Subject: a\nContent-Type: text/plain\n\n'),
  'single part base64 utf-8': crlf(`Subject: a\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n${Buffer.from('Grüße\r\naus Köln\r\n').toString('base64')}\n`),
  'single part quoted-printable, soft breaks': crlf(`Subject: a\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n${'abc '.repeat(30)}=\nend =E4=F6=FC\n`),
  'windows-1252 that needs UTF-8': crlf('Subject: a\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 8bit\n\nplain\n'),
  'html with body tag in a multipart': crlf(
    ['Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: text/html; charset=utf-8', '', '<html><body><p>hi</p></body></html>', '--b', 'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64', '', 'AAAA', '--b--', ''].join('\n'),
  ),
  'empty text part in a multipart': crlf(['Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: text/plain', '', '--b--', ''].join('\n')),
  'part ending in CR': Buffer.from('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nends in CR\r\r\n--b--\r\n', 'latin1'),
  'bare LF in the text': Buffer.from('Subject: a\r\nContent-Type: text/plain\r\n\r\nline one\nline two\r\n', 'latin1'),
  'format=flowed': crlf('Subject: a\nContent-Type: text/plain; format=flowed\n\nflowed \ntext\n'),
};

describe('disclaimer fast rewrite = stream rewrite', () => {
  const inputs: Array<[string, Buffer]> = [
    ...readdirSync(CORPUS)
      .filter((f) => f.endsWith('.in.eml'))
      .map((f): [string, Buffer] => [f, readFileSync(join(CORPUS, f))]),
    ...Object.entries(EDGE_CASES),
  ];
  const compared = new Set<string>();
  for (const [name, message] of inputs) {
    it(name, async () => {
      const targets = targetsOf(message);
      if (!targets) return; // nothing to rewrite: neither version runs
      for (const size of PIECE_SIZES) {
        const f = await fast(message, size, targets);
        if ('fallback' in f) continue; // the stream version runs instead (checked below)
        const expected = await stream(message, size, targets);
        assert.deepEqual(f, expected, `pieces of ${size || 'all'}`);
        assert.deepEqual(await replayed(message, size, targets), expected, `replayed, pieces of ${size || 'all'}`);
        compared.add(name);
      }
    });
  }

  it('took the fast path for the plain cases', () => {
    // Every rewritten golden case but format=flowed, and the edge cases without a bare LF.
    for (const name of ['01-plain-7bit.in.eml', '02-alternative.in.eml', '07-iso-8859-1-qp.in.eml', '08-utf8-base64.in.eml', 'part ending in CR', 'single part, empty body']) {
      assert.ok(compared.has(name), name);
    }
    assert.ok(compared.size >= 14, `only ${compared.size} compared: ${[...compared].join(', ')}`);
  });

  it('keeps no chunks for a message larger than the replay limit', async () => {
    const message = EDGE_CASES['single part base64 utf-8']!;
    for (const [limit, kept] of [[message.length, true], [10, false]] as const) {
      const replay = new SplitReplay(limit);
      await scanTree(Readable.from([message]), { ...LIMITS, keepText: 100, keepTotal: 100 }, AbortSignal.timeout(5000), replay);
      assert.equal(replay.chunks() !== null, kept, `limit ${limit}`);
    }
  });

  it('hands format=flowed and bare LFs to the stream version', async () => {
    for (const name of ['format=flowed', 'bare LF in the text']) {
      const message = EDGE_CASES[name]!;
      const f = await fast(message, 0, targetsOf(message)!);
      assert.ok('fallback' in f, name);
    }
  });
});
