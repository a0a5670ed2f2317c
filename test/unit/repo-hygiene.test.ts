// The tree as committed: no merge left half done. Conflict markers in a doc or a script are not
// caught by the compiler (a README with two versions of the install steps was once committed).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

test('no tracked file carries merge conflict markers', () => {
  let hits = '';
  try {
    hits = execFileSync('git', ['grep', '-n', '-I', '-E', '^(<<<<<<< |>>>>>>> |=======$)', '--', '.', ':!*.eml', ':!test/fixtures/**'], { encoding: 'utf8' });
  } catch (err) {
    // git grep exits 1 when nothing matches.
    if ((err as { status?: number }).status !== 1) throw err;
  }
  assert.equal(hits, '', `conflict markers:\n${hits}`);
});
