// Packaging: `npm pack` gives a tarball that installs globally and whose `relayguard` binary
// validates the bundled default policy and serves it (a milter client negotiates with it).
//
// The install runs with --ignore-scripts and then copies the two native addons (better-sqlite3,
// re2) from this checkout's node_modules: compiling them again costs two minutes on two cores
// and `npm ci` has just proven that they build. What this test guards is the package itself:
// the `files` list, the bin entry and its shebang, and that nothing at run time needs a
// devDependency or a file outside the tarball.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestMilterClient } from '../support/milter-client.js';
import { pollUntil, portAccepts, repoRoot, run, stack } from './harness.js';

const NATIVE_ADDONS = ['better-sqlite3', 're2'];
const NPM_TIMEOUT_MS = 240_000;

let work: string;
let bin: string;
let installed: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'rg-pack-'));
  const pack = await run('npm', ['pack', '--pack-destination', work, '--ignore-scripts'], { timeoutMs: NPM_TIMEOUT_MS, cwd: repoRoot });
  assert.equal(pack.code, 0, pack.stdout + pack.stderr);
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, `npm pack wrote no tarball: ${pack.stdout}`);
  const prefix = join(work, 'prefix');
  const install = await run('npm', ['install', '--global', '--prefix', prefix, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', join(work, tarball)], {
    timeoutMs: NPM_TIMEOUT_MS,
    cwd: work,
  });
  assert.equal(install.code, 0, install.stdout + install.stderr);
  installed = join(prefix, 'lib', 'node_modules', 'relayguard');
  for (const addon of NATIVE_ADDONS) {
    const target = join(installed, 'node_modules', addon);
    assert.ok(existsSync(target), `${addon} is installed as a dependency of the package`);
    cpSync(join(repoRoot, 'node_modules', addon, 'build'), join(target, 'build'), { recursive: true });
  }
  bin = join(prefix, 'bin', 'relayguard');
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the npm package', () => {
  test('holds the compiled program, the policies, the examples and the docs, and no tests or sources', () => {
    for (const p of ['dist/src/cli/main.js', 'policies/default.yaml', 'examples/postfix/relayguard.yaml', 'examples/postfix/main.cf', 'docs/operations.md', 'README.md']) {
      assert.ok(existsSync(join(installed, p)), `${p} is in the package`);
    }
    for (const p of ['dist/test', 'src', 'test', 'bench']) assert.equal(existsSync(join(installed, p)), false, `${p} is not in the package`);
  });

  test('the globally installed binary validates the bundled default policy', async () => {
    const r = await run(bin, ['validate'], { timeoutMs: 30_000, cwd: work });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /policies\/default\.yaml: ok/);
    assert.match(r.stdout, new RegExp(installed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'the default policy is the installed one');
  });

  test('`relayguard serve` from the global install listens and negotiates with an MTA', async () => {
    // Off every slot's port grid, so it never meets a test stack's relayguard.
    const port = stack.milterPort + 60;
    assert.equal(await portAccepts(port), false, `127.0.0.1:${port} is free`);
    const child = spawn(bin, ['serve', '--listen', `inet:127.0.0.1:${port}`, '--metrics', 'off'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await pollUntil(async () => ((await portAccepts(port, 200)) ? true : undefined), 15_000, `relayguard serve listening on ${port}\n${output}`);
      const c = await TestMilterClient.open(port);
      try {
        const n = await c.negotiate();
        assert.equal(n.version, 6);
        c.connectCmd('client.test', '198.51.100.7');
        assert.equal((await c.next()).code, 'c');
      } finally {
        c.close();
      }
      assert.match(output, /relayguard listening on inet:127\.0\.0\.1:\d+ with policy .*default\.yaml/);
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, `relayguard serve exits 0 on SIGTERM\n${output}`);
    }
  });
});
