// bin/relayguard starts serve with glibc's malloc set for a long-running daemon (two arenas, blocks
// of 64 KiB and more mapped on their own; bench/RESULTS.md "Issue 22, fourth pass"), keeps what the environment already sets (an administrator's Environment= in the
// unit), and leaves the short commands alone. A `node` first in PATH prints what it was given.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const bin = fileURLToPath(new URL('../../../bin/relayguard', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rg-bin-env-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const fakeNode = join(dir, 'node');
writeFileSync(
  fakeNode,
  '#!/bin/sh\necho "arena=${MALLOC_ARENA_MAX-unset} mmap=${MALLOC_MMAP_THRESHOLD_-unset} args=$*"\n',
);
chmodSync(fakeNode, 0o755);

function started(args: string[], extra: Record<string, string> = {}): string {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` };
  delete env.MALLOC_ARENA_MAX;
  delete env.MALLOC_MMAP_THRESHOLD_;
  Object.assign(env, extra);
  const r = spawnSync(bin, args, { encoding: 'utf8', env, timeout: 10_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe('bin/relayguard: the environment serve starts with', () => {
  it('serve gets two malloc arenas and a 64 KiB mmap threshold', () => {
    const line = started(['serve', '--config', '/etc/relayguard/relayguard.yaml']);
    assert.match(
      line,
      /^arena=2 mmap=65536 args=\S+\/dist\/(?:src\/cli\/main\.js|snapshot\/serve\.cjs) serve --config \/etc\/relayguard\/relayguard\.yaml$/,
    );
  });

  it("an administrator's own values are kept", () => {
    assert.match(started(['serve'], { MALLOC_ARENA_MAX: '4' }), /^arena=4 mmap=65536 /);
    assert.match(started(['serve'], { MALLOC_MMAP_THRESHOLD_: '131072' }), /^arena=2 mmap=131072 /);
  });

  it('the other commands start without them', () => {
    for (const args of [['validate'], ['--help'], ['quarantine', 'list']])
      assert.match(started(args), /^arena=unset mmap=unset args=/, args.join(' '));
  });
});
