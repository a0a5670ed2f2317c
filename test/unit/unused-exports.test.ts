// Keeps src/ free of dead exports (issue 19): an export that nothing outside its file uses is
// removed, or loses its `export` when its file uses it (a type used only in its file may stay
// exported: it often names a parameter or result of an exported function).
// test/support/unused-exports.ts finds them; `node dist/test/support/unused-exports.js --fix`
// drops the needless `export` keywords.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isNeedless, unusedExports } from '../support/unused-exports.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');

test('every export of src/ is used outside its file (by src, test or bench)', () => {
  const found = unusedExports(ROOT, join(ROOT, 'tsconfig.json')).filter(isNeedless);
  const lines = found.map((u) => `${u.file}: ${u.name} (${u.usedLocally ? 'used in its file only: drop `export`' : 'unused: remove it'})`);
  assert.deepEqual(lines, [], `exports nothing outside their file uses:\n${lines.join('\n')}`);
});
