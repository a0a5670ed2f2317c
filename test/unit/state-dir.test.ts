// Where state goes when the default /var/lib/relayguard is not writable for this user:
// $STATE_DIRECTORY, then $XDG_STATE_HOME/relayguard, then ./.relayguard; an explicitly chosen
// state_dir is never replaced.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_STATE_DIR, resolveStateDir } from '../../src/ops/state-dir.js';

/** A host where only these directories (and what lies under them) are writable. */
const only =
  (...dirs: string[]) =>
  (p: string) =>
    dirs.some((d) => p === d || p.startsWith(`${d}/`));
const tmp = mkdtempSync(join(tmpdir(), 'rg-state-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('state directory fallback', () => {
  it('keeps the default when it is writable (root, or the systemd unit)', () => {
    assert.deepEqual(
      resolveStateDir(DEFAULT_STATE_DIR, {}, () => true),
      { dir: DEFAULT_STATE_DIR },
    );
  });

  it('falls back in order, with a note naming the directory', () => {
    const systemdDir = join(tmp, 'systemd');
    const xdg = join(tmp, 'xdg');
    const writable = only(systemdDir, xdg, resolve('.'));
    const systemd = resolveStateDir(
      DEFAULT_STATE_DIR,
      { STATE_DIRECTORY: `${systemdDir}:/other`, XDG_STATE_HOME: xdg },
      (p) => writable(p) || p === tmp,
    );
    assert.equal(systemd.dir, systemdDir);
    assert.match(systemd.note!, new RegExp(`^state in ${systemdDir}: /var/lib/relayguard is not writable`));
    assert.equal(
      resolveStateDir(DEFAULT_STATE_DIR, { XDG_STATE_HOME: xdg }, (p) => p === tmp).dir,
      join(xdg, 'relayguard'),
    );
    assert.equal(resolveStateDir(DEFAULT_STATE_DIR, {}, writable).dir, resolve('.relayguard'));
  });

  it('never replaces a state_dir the admin chose', () => {
    assert.deepEqual(
      resolveStateDir('/srv/relayguard', { STATE_DIRECTORY: '/tmp/x' }, () => false),
      { dir: '/srv/relayguard' },
    );
  });
});
