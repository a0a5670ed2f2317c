// The tree as committed: no merge left half done. Conflict markers in a doc or a script are not
// caught by the compiler (a README with two versions of the install steps was once committed).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('../../../', import.meta.url).pathname;
/** Not sources: build output, dependencies, and test mail that may contain such lines on purpose. */
const SKIP_DIRS = new Set(['.git', 'node_modules', 'dist']);
const SKIP_FILE = (rel: string) => rel.endsWith('.eml') || rel.startsWith('test/fixtures/');
const MARKER = /^(<<<<<<< |>>>>>>> |=======$)/m;
const TEXT_SIZE_LIMIT = 1024 * 1024;

function* files(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) yield* files(join(dir, e.name));
    } else if (e.isFile()) yield join(dir, e.name);
  }
}

test('no file of the tree carries merge conflict markers', () => {
  const hits: string[] = [];
  for (const file of files(ROOT)) {
    const rel = relative(ROOT, file);
    if (SKIP_FILE(rel) || statSync(file).size > TEXT_SIZE_LIMIT) continue;
    const text = readFileSync(file);
    if (text.includes(0)) continue; // binary
    const m = MARKER.exec(text.toString('utf8'));
    if (m) hits.push(`${rel}: ${m[0]}`);
  }
  assert.deepEqual(hits, []);
});
