// Packaging: `npm pack` gives a tarball that installs globally and whose `relayguard` binary
// validates the bundled default policy and serves it (a milter client negotiates with it).
//
// Offline, so that it never hangs on the registry: the tarball is unpacked, its dependencies are
// installed from the lockfile with `npm ci --omit=dev --offline` (from npm's cache, which `npm ci`
// of this checkout filled), or, when the cache lacks them, copied from this checkout's
// node_modules (the lockfile's non-dev packages only); then `npm install --global --offline`
// links the unpacked package and its bin. Install scripts are not run: the two native addons
// (better-sqlite3, re2) are copied from this checkout, where `npm ci` has just built them. What
// this test guards is the package itself: the `files` list, the bin entry and its shebang, and
// that nothing at run time needs a devDependency or a file outside the tarball.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';
import { pollUntil, portAccepts, repoRoot, run, stack, type RunResult } from './harness.js';

const NATIVE_ADDONS = ['better-sqlite3', 're2'];
/** Everything npm does here together; under the runner's 180 s per file, so a stuck npm fails with its output. */
const NPM_BUDGET_MS = 150_000;
/** npm never asks the registry: offline, no retries, no update check. */
const NPM_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  npm_config_offline: 'true',
  npm_config_fetch_retries: '0',
  npm_config_fetch_timeout: '5000',
  npm_config_update_notifier: 'false',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
};

let work: string;
let bin: string;
let installed: string;
let tarballFiles: string[];

async function npm(args: string[], cwd: string, deadline: number): Promise<RunResult> {
  const left = deadline - Date.now();
  if (left <= 0) throw new Error(`npm ${args.join(' ')}: no time left of the ${NPM_BUDGET_MS / 1000} s budget`);
  return run('npm', args, { timeoutMs: left, cwd, env: NPM_ENV });
}

/** The lockfile's run-time packages (not dev), copied from this checkout's node_modules. */
function copyRuntimeModules(target: string): string[] {
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  const copied: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path.startsWith('node_modules/') || entry.dev || entry.devOptional) continue;
    const from = join(repoRoot, path);
    assert.ok(
      existsSync(from),
      `${path} (a run-time dependency in package-lock.json) is missing from this checkout: run npm ci`,
    );
    cpSync(from, join(target, path), { recursive: true, dereference: false });
    copied.push(path);
  }
  return copied;
}

before(async () => {
  const deadline = Date.now() + NPM_BUDGET_MS;
  work = mkdtempSync(join(tmpdir(), 'rg-pack-'));
  const pack = await npm(['pack', '--pack-destination', work, '--ignore-scripts'], repoRoot, deadline);
  assert.equal(pack.code, 0, pack.stdout + pack.stderr);
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, `npm pack wrote no tarball: ${pack.stdout}`);
  const list = await run('tar', ['tzf', join(work, tarball)], { cwd: work });
  tarballFiles = list.stdout.split('\n').filter(Boolean);

  const pkg = join(work, 'relayguard');
  mkdirSync(pkg);
  const untar = await run('tar', ['xzf', join(work, tarball), '-C', pkg, '--strip-components=1'], { cwd: work });
  assert.equal(untar.code, 0, untar.stderr);
  cpSync(join(repoRoot, 'package-lock.json'), join(pkg, 'package-lock.json'));
  const ci = await npm(['ci', '--omit=dev', '--ignore-scripts'], pkg, deadline);
  if (ci.code !== 0) {
    // Typically ENOTCACHED (node_modules copied rather than installed here): the checkout's modules.
    process.stderr.write(
      `package test: npm ci --offline failed, using this checkout's node_modules instead:\n${(ci.stderr || ci.stdout).split('\n').slice(-5).join('\n')}\n`,
    );
    rmSync(join(pkg, 'node_modules'), { recursive: true, force: true });
    copyRuntimeModules(pkg);
  }
  for (const addon of NATIVE_ADDONS) {
    const target = join(pkg, 'node_modules', addon);
    assert.ok(existsSync(target), `${addon} is installed as a dependency of the package`);
    cpSync(join(repoRoot, 'node_modules', addon, 'build'), join(target, 'build'), { recursive: true });
  }
  const prefix = join(work, 'prefix');
  const link = await npm(['install', '--global', '--prefix', prefix, '--ignore-scripts', pkg], work, deadline);
  assert.equal(link.code, 0, link.stdout + link.stderr);
  installed = realpathSync(join(prefix, 'lib', 'node_modules', 'relayguard'));
  bin = join(prefix, 'bin', 'relayguard');
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the npm package', () => {
  test('holds the compiled program, the policies, the examples and the docs, and no tests or sources', () => {
    for (const p of [
      'dist/src/cli/main.js',
      'policies/default.yaml',
      'examples/postfix/relayguard.yaml',
      'examples/postfix/main.cf',
      'docs/operations.md',
      'README.md',
    ]) {
      assert.ok(existsSync(join(installed, p)), `${p} is in the package`);
    }
    for (const p of ['dist/test', 'src', 'test', 'bench'])
      assert.equal(existsSync(join(installed, p)), false, `${p} is not in the package`);
  });

  test('ships its licence and changelog, and no source maps (their sources are not shipped)', () => {
    for (const f of ['package/LICENSE', 'package/CHANGELOG.md', 'package/package.json'])
      assert.ok(tarballFiles.includes(f), `${f} is in the tarball`);
    assert.match(readFileSync(join(installed, 'LICENSE'), 'utf8'), /^MIT License/);
    assert.deepEqual(
      tarballFiles.filter((f) => f.endsWith('.map')),
      [],
    );
  });

  test('the installed binary answers --version and --help, and refuses a file it would not check', async () => {
    const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    const v = await run(bin, ['--version'], { timeoutMs: 30_000, cwd: work });
    assert.deepEqual([v.code, v.stdout], [0, `${version}\n`]);
    const h = await run(bin, ['validate', '--help'], { timeoutMs: 30_000, cwd: work });
    assert.equal(h.code, 0, h.stderr);
    const refused = await run(bin, ['validate', 'some.yaml'], { timeoutMs: 30_000, cwd: work });
    assert.equal(refused.code, 2);
    assert.doesNotMatch(refused.stdout, /ok/);
  });

  test('the globally installed binary validates the bundled default policy', async () => {
    const r = await run(bin, ['validate'], { timeoutMs: 30_000, cwd: work });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /policies\/default\.yaml: ok/);
    assert.match(
      r.stdout,
      new RegExp(installed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
      'the default policy is the installed one',
    );
  });

  test('`relayguard serve` from the global install listens and negotiates with an MTA', async () => {
    // Off every slot's port grid, so it never meets a test stack's relayguard.
    const port = stack.milterPort + 60;
    assert.equal(await portAccepts(port), false, `127.0.0.1:${port} is free`);
    const child = spawn(bin, ['serve', '--listen', `inet:127.0.0.1:${port}`, '--metrics', 'off'], {
      cwd: work,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await pollUntil(
        async () => ((await portAccepts(port, 200)) ? true : undefined),
        15_000,
        `relayguard serve listening on ${port}\n${output}`,
      );
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
