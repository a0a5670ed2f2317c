// The zip member lister, on archives written by Python's zipfile in the test.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listZip, looksLikeZip } from '../../src/mime/zip-listing.js';
import { pythonZip } from './content-fixtures.js';

const OPTS = { maxEntries: 100, nested: true, maxNestedBytes: 1024 * 1024 };
const names = (buf: Buffer, opts = OPTS) =>
  listZip(buf, opts).members.map((m) => (m.container ? `${m.container}!${m.name}` : m.name));

test('lists stored and deflated members with their paths', () => {
  const zip = pythonZip([
    { name: 'readme.txt', data: 'hello' },
    { name: 'bin/setup.EXE', data: 'MZ'.padEnd(2000, 'x'), deflate: true },
  ]);
  assert.equal(looksLikeZip(zip), true);
  const listing = listZip(zip, OPTS);
  assert.deepEqual(names(zip), ['readme.txt', 'bin/setup.EXE']);
  assert.equal(listing.incomplete, false);
});

test('UTF-8 names are decoded', () => {
  const zip = pythonZip([{ name: 'Rechnung über.pdf.exe', data: 'x' }]);
  assert.deepEqual(names(zip), ['Rechnung über.pdf.exe']);
});

test('members of a nested zip are listed with their container', () => {
  const inner = pythonZip([{ name: 'payload.js', data: 'WScript.Echo(1)' }]);
  const outer = pythonZip([
    { name: 'docs/inner.zip', data_b64: inner.toString('base64'), deflate: true },
    { name: 'note.txt', data: 'see inner' },
  ]);
  const all = names(outer);
  assert.ok(all.includes('docs/inner.zip!payload.js'), all.join(','));
  assert.deepEqual(
    names(outer, { ...OPTS, nested: false }).filter((n) => n.includes('!')),
    [],
  );
});

test('a nested zip too large to inflate is reported, not inflated', () => {
  const inner = pythonZip([{ name: 'big.bin', data: 'A'.repeat(200_000) }]);
  const outer = pythonZip([{ name: 'inner.zip', data_b64: inner.toString('base64'), deflate: true }]);
  const listing = listZip(outer, { ...OPTS, maxNestedBytes: 1000 });
  assert.equal(listing.incomplete, true);
  assert.match(listing.problems.join(';'), /too large/);
});

test('a name in a local header that differs from the central directory is reported too', () => {
  const zip = pythonZip([{ name: 'harmless.txt', data: 'x' }]);
  // Rewrite the first occurrence (the local header) only.
  const at = zip.indexOf('harmless.txt');
  zip.write('harmless.exe', at, 'latin1');
  assert.deepEqual(names(zip).sort(), ['harmless.exe', 'harmless.txt']);
});

test('data prepended to the archive (self-extractor) does not hide the directory', () => {
  const zip = Buffer.concat([Buffer.alloc(5000, 0x90), pythonZip([{ name: 'a.vbs', data: 'x' }])]);
  assert.equal(looksLikeZip(zip), false);
  assert.deepEqual(names(zip), ['a.vbs']);
});

test('the number of entries is bounded', () => {
  const zip = pythonZip(Array.from({ length: 30 }, (_, i) => ({ name: `f${i}.txt`, data: 'x' })));
  const listing = listZip(zip, { ...OPTS, maxEntries: 10 });
  assert.equal(listing.members.length, 10);
  assert.equal(listing.incomplete, true);
});

test('truncated and empty archives', () => {
  const zip = pythonZip([{ name: 'x.bat', data: 'echo' }]);
  const cut = listZip(zip.subarray(0, zip.length - 30), OPTS);
  assert.equal(cut.incomplete, true);
  // The local header still gives the name away.
  assert.deepEqual(
    cut.members.map((m) => m.name),
    ['x.bat'],
  );
  const empty = pythonZip([]);
  assert.equal(looksLikeZip(empty), true);
  assert.deepEqual(listZip(empty, OPTS), { members: [], incomplete: false, problems: [] });
  assert.equal(listZip(Buffer.from('not a zip at all'), OPTS).incomplete, true);
});
