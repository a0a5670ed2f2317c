// ByteDigest: kept bytes and hashes compare exactly, across piece boundaries and across the
// switch to hashing; and the disclaimer's checks still catch a changed byte in an untouched
// part whether the trees kept bytes or hashed them.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { ByteDigest, KeepBudget } from '../../src/mime/byte-digest.js';
import { checkInvariants } from '../../src/mime/invariants.js';
import { scanTree } from '../../src/mime/mime-tree.js';

function digest(pieces: string[], budget = new KeepBudget(1 << 20)): ByteDigest {
  const d = new ByteDigest(budget);
  for (const p of pieces) d.update(Buffer.from(p));
  return d;
}

describe('ByteDigest', () => {
  it('compares kept bytes whatever the pieces', () => {
    assert.ok(digest(['abc', 'def']).sameAs(digest(['a', 'bcde', 'f'])));
    assert.ok(!digest(['abc', 'def']).sameAs(digest(['abc', 'deg'])));
    assert.ok(!digest(['abc']).sameAs(digest(['abcd'])));
    assert.ok(digest([]).sameAs(digest([''])));
  });

  it('compares a kept digest with a hashed one, and two hashed ones', () => {
    const tiny = new KeepBudget(2);
    const hashed = digest(['abc', 'def'], tiny);
    assert.ok(hashed.sameAs(digest(['abcdef'])));
    assert.ok(digest(['abcdef']).sameAs(hashed));
    assert.ok(!digest(['abcdeX']).sameAs(digest(['abc', 'def'], tiny)));
    assert.ok(digest(['abcdef'], new KeepBudget(0)).sameAs(digest(['abc', 'def'], new KeepBudget(0))));
  });

  it('switches every digest of a tree to hashing once the budget is spent', () => {
    const budget = new KeepBudget(5);
    const first = digest(['abc'], budget);
    const second = digest(['defg'], budget); // 7 > 5: both hash from now on
    const later = digest(['xyz'], budget);
    assert.deepEqual(first.toJSON(), digest(['abc']).toJSON());
    assert.ok(second.sameAs(digest(['de', 'fg'])));
    assert.ok(later.sameAs(digest(['xyz'])));
    assert.equal(JSON.stringify(first), JSON.stringify(digest(['abc'])), 'JSON is the same kept or hashed');
  });
});

const MESSAGE = [
  'Content-Type: multipart/mixed; boundary=b',
  '',
  '--b',
  'Content-Type: text/plain',
  '',
  'hello',
  '--b',
  'Content-Type: application/octet-stream',
  '',
  'attachment bytes',
  '--b--',
  '',
].join('\r\n');

describe('invariants on kept and hashed trees', () => {
  const scan = (text: string, keepBytes: number) =>
    scanTree(Readable.from([Buffer.from(text)]), { maxParts: 100, maxHeaderBytes: 65536, keepText: 1000, keepTotal: 1000, keepBytes }, AbortSignal.timeout(5000));

  for (const [label, before, after] of [
    ['kept', 1 << 20, 1 << 20],
    ['hashed', 0, 0],
    ['kept against hashed', 1 << 20, 0],
  ] as const) {
    it(`${label}: same message passes, a changed untouched byte does not`, async () => {
      const original = await scan(MESSAGE, before);
      assert.deepEqual(checkInvariants(original, await scan(MESSAGE, after), new Map()), []);
      const changed = await scan(MESSAGE.replace('attachment bytes', 'attachment bytez'), after);
      assert.deepEqual(checkInvariants(original, changed, new Map()), ['part 2 body changed']);
      const header = await scan(MESSAGE.replace('octet-stream', 'octet-streaM'), after);
      assert.deepEqual(checkInvariants(original, header, new Map()), ['part 2 header changed']);
      const delimiter = await scan(MESSAGE.replace('--b--', '--b--\r\nepilogue'), after);
      assert.ok(checkInvariants(original, delimiter, new Map()).includes('delimiters, preamble or epilogue changed'));
    });
  }
});
