// LineSplitter against mailsplit's stock Splitter behind WholeLines: the same nodes (headers,
// part numbers, order), the same bytes of body and data per node between them, and the same
// errors, on the golden corpus and on hand-made edge cases, whole and in odd-sized pieces, with
// the options of both passes. Where a run of bytes is cut into chunks may differ (the stock one
// cuts at every piece of input), so adjacent chunks of one kind and node are compared joined;
// and the answer must not depend on how the input is cut.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { Splitter, type MimeNode, type SplitterChunk, type SplitterOptions } from 'mailsplit';
import { WholeLines } from '../../src/mime/line-guard.js';
import { LineSplitter } from '../../src/mime/sync-splitter.js';
import { CORPUS } from '../golden/disclaimer/run-case.js';

const OPTION_SETS: Record<string, SplitterOptions> = {
  disclaimer: { ignoreEmbedded: true, maxChildNodes: 1000, maxHeadSize: 256 * 1024 },
  content: { maxHeadSize: 256 * 1024, maxChildNodes: 1001, defaultInlineEmbedded: true },
  tight: { maxChildNodes: 3, maxHeadSize: 200 },
};
/** Piece sizes: whole, then sizes that cut CRLFs, lines and boundaries everywhere. */
const PIECES = [0, 1, 2, 3, 7, 64, 333, 1000];

/**
 * Adjacent body chunks of the same node as one chunk, and adjacent data chunks as one chunk of
 * the first one's node (the stock Splitter joins data lines across nodes, LineSplitter per node).
 */
function joinRuns(chunks: SplitterChunk[]): SplitterChunk[] {
  const out: SplitterChunk[] = [];
  for (const c of chunks) {
    const prev = out[out.length - 1];
    if (c.type !== 'node' && prev && prev.type === c.type && (c.type === 'data' || prev.node === c.node)) {
      out[out.length - 1] = { ...prev, value: Buffer.concat([prev.value, c.value]) } as SplitterChunk;
    } else out.push(c);
  }
  return out;
}

function describeAll(chunks: SplitterChunk[], failure: unknown): string[] {
  const nodes = new Map<MimeNode, number>();
  const out = joinRuns(chunks).map((c) => describeChunk(c, nodes));
  if (failure) out.push(`error ${(failure as NodeJS.ErrnoException).code} ${(failure as Error).message}`);
  return out;
}

function describeChunk(c: SplitterChunk, nodes: Map<MimeNode, number>): string {
  if (c.type === 'node') {
    const n = c as MimeNode;
    if (!nodes.has(n)) nodes.set(n, nodes.size);
    return `node#${nodes.get(n)} ${(n.partNr || []).join('.')} ${n.contentType} ${n.getHeaders().toString('latin1')}`;
  }
  const owner = c.node ? (nodes.get(c.node) ?? 'unseen') : '-';
  return `${c.type}@${owner} ${c.value ? c.value.toString('latin1') : '(none)'}`;
}

function piecesOf(bytes: Buffer, size: number): Buffer[] {
  if (!size) return [bytes];
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

async function stock(pieces: Buffer[], opts: SplitterOptions): Promise<string[]> {
  const chunks: SplitterChunk[] = [];
  let failure: unknown = null;
  try {
    await pipeline(Readable.from(pieces), new WholeLines(), new Splitter(opts), async (source: AsyncIterable<SplitterChunk>) => {
      for await (const c of source) chunks.push(c);
    });
  } catch (err) {
    failure = err;
  }
  return describeAll(chunks, failure);
}

function sync(pieces: Buffer[], opts: SplitterOptions): string[] {
  const chunks: SplitterChunk[] = [];
  let failure: unknown = null;
  const splitter = new LineSplitter(opts);
  try {
    const emit = (c: SplitterChunk) => chunks.push(c);
    for (const p of pieces) splitter.write(p, emit);
    splitter.end(emit);
  } catch (err) {
    failure = err;
  }
  return describeAll(chunks, failure);
}

const EDGE_CASES: Record<string, string> = {
  'no body': 'Subject: x\r\n',
  'no final line break': 'Subject: x\r\n\r\nbody without end',
  'bare LF': 'Subject: x\n\nline one\nline two\n',
  'CR only': 'Subject: x\r\n\r\nline\rmore\r',
  'empty parts and header-only part': [
    'Content-Type: multipart/mixed; boundary=b',
    '',
    'preamble',
    '--b',
    '',
    '--b',
    'Content-Type: text/plain',
    '--b',
    'Content-Type: text/plain',
    '',
    'x',
    '--b--',
    'epilogue',
    '',
  ].join('\r\n'),
  'nested, missing end delimiters': [
    'Content-Type: multipart/mixed; boundary=outer',
    '',
    '--outer',
    'Content-Type: multipart/alternative; boundary=inner',
    '',
    '--inner',
    'Content-Type: text/plain',
    '',
    'plain',
    '--inner',
    'Content-Type: text/html',
    '',
    '<p>html</p>',
    '--outer',
    'Content-Type: message/rfc822',
    '',
    'Subject: inner',
    'Content-Type: multipart/mixed; boundary=deep',
    '',
    '--deep',
    '',
    'deep text',
    '--deep--',
    '--outer--',
  ].join('\r\n'),
  'delimiter look-alikes': ['Content-Type: multipart/mixed; boundary=b', '', '--b', '', '--bb', '--b-', '--b--x', ' --b', '--b  ', '--b--', ''].join('\r\n'),
  'many parts': ['Content-Type: multipart/mixed; boundary=b', '', ...Array.from({ length: 6 }, (_, i) => `--b\r\n\r\npart ${i}`), '--b--', ''].join('\r\n'),
  'delimiters after CR, dashes mid-line': [
    'Content-Type: multipart/mixed; boundary=b',
    '',
    '--b',
    'Content-Type: text/plain',
    '',
    'text -- with dashes -- inside',
    '\r--b-not',
    '\rX--b',
    '--',
    '---b',
    'x\r--b',
    '\r--b',
    'Content-Type: application/octet-stream',
    'Content-Transfer-Encoding: base64',
    '',
    ...Array.from({ length: 40 }, (_, i) => Buffer.alloc(57, i).toString('base64')),
    '\rZ--b--',
    '--b--',
    'epilogue -- here',
    '',
  ].join('\r\n'),
  'base64 attachment, bare LF lines': ['Content-Type: multipart/mixed; boundary="=_x"', '', '--=_x', '', ...Array.from({ length: 30 }, (_, i) => Buffer.alloc(57, 255 - i).toString('base64')), '--=_x--', ''].join('\n'),
  'huge header': `Subject: ${'x'.repeat(400)}\r\n\r\nbody\r\n`,
};

describe('LineSplitter gives what the stock Splitter gives', () => {
  const files = readdirSync(CORPUS).filter((f) => f.endsWith('.eml'));
  const inputs: Array<[string, Buffer]> = [
    ...files.map((f): [string, Buffer] => [f, readFileSync(join(CORPUS, f))]),
    ...Object.entries(EDGE_CASES).map(([k, v]): [string, Buffer] => [k, Buffer.from(v, 'latin1')]),
  ];
  for (const [name, bytes] of inputs) {
    it(name, async () => {
      for (const [label, opts] of Object.entries(OPTION_SETS)) {
        // The stock Splitter on the whole message. Fed in pieces it can differ on odd input: a
        // line break it held back at the end of a piece is put in front of the next line before
        // the delimiter check, which then reads "\rX--b" differently. LineSplitter never does
        // that, so it must give the whole-message answer for every way of cutting the input.
        const expected = await stock([bytes], opts);
        for (const size of PIECES) {
          assert.deepEqual(sync(piecesOf(bytes, size), opts), expected, `${label}, pieces of ${size || 'all'}`);
        }
      }
    });
  }
});

describe('LineSplitter line limit', () => {
  it('refuses a line longer than the limit, as WholeLines does', () => {
    const s = new LineSplitter({}, 10);
    const none = () => undefined;
    assert.throws(() => s.write(Buffer.from('Subject: a\r\n\r\n12345678901'), none), { code: 'ELINETOOLONG' });
    const t = new LineSplitter({}, 10);
    t.write(Buffer.from('Subj'), none);
    assert.throws(() => t.write(Buffer.from('ect: abcdefgh\r\n'), none), { code: 'ELINETOOLONG' });
    const ok = new LineSplitter({}, 12);
    assert.doesNotThrow(() => ok.write(Buffer.from('Subject: a\r\n\r\n123456789\r\n'), none));
  });
});
