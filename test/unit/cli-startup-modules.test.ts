// The commands that only read the policy do not load what serving mail needs: mailauth alone
// cost `validate` about 0.23 s of CPU, prom-client, libmime, iconv-lite, better-sqlite3 and
// mmdb-lib together about 0.13 s more (bench/RESULTS.md, "CLI start-up"). A fresh process runs
// the command and reports, at exit, which packages it loaded.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const policy = `${repo}examples/postfix/relayguard.yaml`;
const HEAVY = ['mailauth', 'prom-client', 'libmime', 'iconv-lite', 'better-sqlite3', 'mmdb-lib', 'winston', 'redis'];

/** Prints, at exit, the packages under node_modules that the process loaded (CommonJS cache). */
const PROBE_CODE = `import { createRequire } from 'node:module';
process.on('exit', () => {
  const seen = new Set();
  for (const k of Object.keys(createRequire(process.cwd() + '/').cache)) {
    const rest = k.split('/node_modules/').pop().split('/');
    if (k.includes('/node_modules/')) seen.add(rest[0].startsWith('@') ? rest[0] + '/' + rest[1] : rest[0]);
  }
  process.stderr.write('RG_LOADED ' + JSON.stringify([...seen]) + '\\n');
});
`;
const probeDir = mkdtempSync(join(tmpdir(), 'rg-startup-probe-'));
const PROBE = join(probeDir, 'probe.mjs');
writeFileSync(PROBE, PROBE_CODE);
after(() => rmSync(probeDir, { recursive: true, force: true }));

/** Runs a command with the probe; `preload` packages are required first (the control). */
function run(args: string[], preload: string[] = []): { status: number | null; stdout: string; loaded: string[] } {
  const r = spawnSync(process.execPath, [...preload.map((p) => `--require=${p}`), '--import', PROBE, main, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    cwd: repo,
  });
  const m = /RG_LOADED (\[.*\])/.exec(r.stderr ?? '');
  assert.ok(m, `no report from the probe: ${(r.stderr ?? '').slice(0, 500)}`);
  return { status: r.status, stdout: r.stdout ?? '', loaded: JSON.parse(m[1]!) as string[] };
}

describe('CLI start-up: what a command that only reads the policy loads', () => {
  test('validate loads the schema libraries but none of the serving ones', () => {
    const r = run(['validate', '-c', policy]);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /: ok$/m);
    assert.ok(r.loaded.includes('yaml'), `the probe sees the packages loaded: ${r.loaded.join(', ')}`);
    for (const p of HEAVY) assert.ok(!r.loaded.includes(p), `validate loaded ${p}: ${r.loaded.join(', ')}`);
  });

  test('the probe sees a serving package when one is loaded', () => {
    const r = run(['validate', '-c', policy], ['prom-client', 'mailauth']);
    for (const p of ['prom-client', 'mailauth'])
      assert.ok(r.loaded.includes(p), `${p} not seen: ${r.loaded.join(', ')}`);
  });
});
