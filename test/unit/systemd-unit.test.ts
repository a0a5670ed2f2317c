// The shipped systemd unit: Type=notify (serve sends READY=1, see sd-notify.test.ts) and the
// hardening `systemd-analyze security` asks for, scored offline on the unit file (the score
// docs/operations.md shows; this fails when a change makes it worse).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/cli/command.js';

const UNIT = join(PACKAGE_ROOT, 'examples', 'systemd', 'relayguard.service');
/** The exposure docs/operations.md states (systemd 252's scale: 0 safest, 10 unsafe). */
const DOCUMENTED_EXPOSURE = 1.5;
const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;

describe('examples/systemd/relayguard.service', () => {
  const unit = readFileSync(UNIT, 'utf8');

  it('is Type=notify with NotifyAccess=all (systemd-notify, a child, sends READY=1)', () => {
    assert.match(unit, /^Type=notify$/m);
    assert.match(unit, /^NotifyAccess=all$/m);
  });

  it(
    `scores ${DOCUMENTED_EXPOSURE} or better in systemd-analyze security, as the docs say`,
    { skip: analyze ? false : 'no systemd-analyze' },
    () => {
      const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', UNIT], { encoding: 'utf8' });
      const m = /Overall exposure level for relayguard\.service: ([\d.]+)/.exec(r.stdout + r.stderr);
      assert.ok(m, r.stdout + r.stderr);
      assert.ok(Number(m[1]) <= DOCUMENTED_EXPOSURE, `exposure ${m[1]}`);
      const docs = readFileSync(join(PACKAGE_ROOT, 'docs', 'operations.md'), 'utf8');
      assert.match(docs, new RegExp(`Overall exposure level for relayguard\\.service: ${m[1]!.replace('.', '\\.')}`));
    },
  );
});
