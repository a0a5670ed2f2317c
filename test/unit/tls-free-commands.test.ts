// bin/relayguard drops NODE_EXTRA_CA_CERTS for the commands that never open a TLS connection:
// Node 20 reads and parses that file at every start, TLS or not (about 40 ms with Debian's CA
// bundle, bench/RESULTS.md "Issue 22, fifth pass"). These tests hold the list to its promise: the
// script gives those commands no such variable and the others theirs; in a listed command's whole
// import graph (packages and the ones loaded on first use included) TLS is imported only behind
// the offender ledger's Redis client; and the commands that read the policy, run on one whose
// ledger is Redis over TLS, load no TLS module.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { build, type Metafile, type PluginBuild } from 'esbuild';

const bin = fileURLToPath(new URL('../../../bin/relayguard', import.meta.url));
const cliDir = fileURLToPath(new URL('../../src/cli/', import.meta.url));
const distSrc = fileURLToPath(new URL('../../src/', import.meta.url));
const main = join(cliDir, 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'rg-tls-free-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const TLS_MODULES = new Set(['tls', 'node:tls', 'https', 'node:https', 'http2', 'node:http2']);
const NOT_COMMANDS = new Set(['', 'help', '-h', '--help', '-V', '--version']);
/**
 * In a listed command's graph, but not on its way: winston's HTTP transport is a lazy getter of
 * `winston.transports` that relayguard never reads (checked below); the Redis client is opened by
 * the offender ledger, which only serve, check, offenders and unban open (the run below gives the
 * listed commands a policy whose ledger is `rediss://`).
 */
const NOT_ON_THEIR_WAY = [/^node_modules\/winston\/lib\/winston\/transports\/http\.js$/, /^node_modules\/@redis\//];
const srcDir = fileURLToPath(new URL('../../../src/', import.meta.url));

/** The commands bin/relayguard unsets NODE_EXTRA_CA_CERTS for, read from the script itself. */
function listedInBin(): string[] {
  const script = readFileSync(bin, 'utf8');
  const m = /^case \$\{1-\} in\n\s+(.+)\)\n\s+unset NODE_EXTRA_CA_CERTS ;;/m.exec(script);
  assert.ok(m, 'bin/relayguard has no case that unsets NODE_EXTRA_CA_CERTS');
  return m[1]!.split('|').map((w) => w.trim().replace(/^''$/, ''));
}

const fakeNode = join(dir, 'node');
writeFileSync(fakeNode, '#!/bin/sh\necho "ca=${NODE_EXTRA_CA_CERTS-unset}"\n');
chmodSync(fakeNode, 0o755);

function caSeenBy(args: string[]): string {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` };
  env.NODE_EXTRA_CA_CERTS = '/etc/ssl/certs/ca-certificates.crt';
  const r = spawnSync(bin, args, { encoding: 'utf8', env, timeout: 10_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/**
 * Follows what our modules load on first use (`loadOnFirstUse(import.meta.url, 'redis')`, or
 * `createRequire(import.meta.url)('node:http')`), which a bundler does not see as an import, by
 * reading it as a require.
 */
const firstUseLoads = {
  name: 'first-use-loads',
  setup(b: PluginBuild) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(distSrc)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      const followed = text
        .replace(/\bloadOnFirstUse\(import\.meta\.url, ('[^']+')\)/g, '(() => require($1))')
        .replaceAll('createRequire(import.meta.url)(', 'require(');
      return followed === text ? undefined : { contents: followed, loader: 'js' };
    });
  },
};

/** Every module in the graph of `entry` (ours, packages, first-use loads), with its imports. */
async function graphOf(entry: string): Promise<Metafile['inputs']> {
  const result = await build({
    plugins: [firstUseLoads],
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    loader: { '.node': 'empty' },
  });
  return result.metafile.inputs;
}

/** The built-in TLS modules imported anywhere in the graph of `entry`, with their importers. */
async function tlsImportsOf(entry: string): Promise<string[]> {
  const found: string[] = [];
  for (const [file, input] of Object.entries(await graphOf(entry)))
    for (const imp of input.imports)
      if (imp.external && TLS_MODULES.has(imp.path) && !NOT_ON_THEIR_WAY.some((re) => re.test(file)))
        found.push(`${file} -> ${imp.path}`);
  return found;
}

describe('bin/relayguard: NODE_EXTRA_CA_CERTS for the commands without TLS', () => {
  const listed = listedInBin();
  const commands = listed.filter((c) => !NOT_COMMANDS.has(c));

  it('lists the short commands and none that may open TLS', () => {
    for (const c of ['validate', 'quarantine', '--help', '--version']) assert.ok(listed.includes(c), c);
    for (const c of ['serve', 'audit', 'check', 'offenders', 'unban']) assert.ok(!listed.includes(c), c);
  });

  it('the listed commands start without it, the others keep it', () => {
    for (const c of listed) assert.equal(caSeenBy(c === '' ? [] : [c]), 'ca=unset', c || '(no command)');
    for (const c of ['serve', 'audit', 'check', 'offenders', 'unban'])
      assert.equal(caSeenBy([c]), 'ca=/etc/ssl/certs/ca-certificates.crt', c);
  });

  it('no module a listed command can load imports TLS or HTTPS', async () => {
    for (const c of commands) {
      const entry = join(cliDir, `${c}.js`);
      assert.deepEqual(await tlsImportsOf(entry), [], `${c} (${entry})`);
    }
  });

  it("relayguard never uses winston's HTTP transport", () => {
    const r = spawnSync('grep', ['-rlE', 'transports\\.Http|transports/http', srcDir], { encoding: 'utf8' });
    assert.equal(r.status, 1, `found in: ${r.stdout}`);
  });

  it('the check sees TLS where it is imported (audit) and where it is loaded on first use (the Redis ledger)', async () => {
    const found = await tlsImportsOf(join(cliDir, 'audit.js'));
    assert.ok(
      found.some((f) => f.endsWith('-> node:tls')),
      found.join('\n'),
    );
    const redisTls = Object.entries(await graphOf(join(distSrc, 'deps', 'offender-ledger-redis.js'))).filter(
      ([file, input]) => file.includes('node_modules/@redis/') && input.imports.some((i) => TLS_MODULES.has(i.path)),
    );
    assert.ok(redisTls.length > 0, 'the Redis client imports TLS: the allowance above is for something real');
  });

  it('the listed commands that read the policy load no TLS module with a ledger in Redis over TLS', () => {
    const policy = join(dir, 'rediss.yaml');
    writeFileSync(
      policy,
      `server:\n  state_dir: ${join(dir, 'state')}\n  state: rediss://127.0.0.1:1/0\n  pid_file: ${join(dir, 'none.pid')}\n` +
        'rules:\n  offenders:\n    mode: enforce\n  size:\n    max_bytes: 10MB\n',
    );
    const postconf = join(dir, 'postconf.txt');
    writeFileSync(postconf, 'smtpd_milters = inet:127.0.0.1:10025\n');
    const probe = join(dir, 'tls-probe.cjs');
    writeFileSync(
      probe,
      "process.on('exit', () => process.stderr.write('RG_TLS ' + process.moduleLoadList.some((m) => m === 'NativeModule tls') + '\\n'));\n",
    );
    const runs: string[][] = [
      ['validate', '--config', policy],
      ['postfix-config', '--config', policy],
      ['lint-mta', '--config', policy, '--postconf', postconf],
      ['reload', '--config', policy],
      ['quarantine', 'list', '--config', policy],
    ];
    for (const args of runs) {
      const r = spawnSync(process.execPath, ['--require', probe, main, ...args], {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, MAIL_CONFIG: join(dir, 'no-postfix') },
      });
      const m = /RG_TLS (true|false)/.exec(r.stderr);
      assert.ok(m, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(m[1], 'false', `${args.join(' ')} loaded TLS (exit ${r.status}): ${r.stderr}`);
    }
    const control = spawnSync(process.execPath, ['--require', probe, '--require', 'node:tls', main, '--version'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.match(control.stderr, /RG_TLS true/);
  });

  it('--help and --version load no TLS module (and the probe sees one when it is loaded)', () => {
    const probe =
      'data:text/javascript,process.on("exit",()=>process.stderr.write("RG_TLS "+process.moduleLoadList.some(m=>m==="NativeModule tls")))';
    const tlsLoaded = (nodeArgs: string[], arg: string): boolean => {
      const r = spawnSync(process.execPath, [...nodeArgs, '--import', probe, main, arg], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      const m = /RG_TLS (true|false)/.exec(r.stderr);
      assert.ok(m, r.stderr);
      return m[1] === 'true';
    };
    for (const arg of ['--help', '--version']) assert.equal(tlsLoaded([], arg), false, arg);
    assert.equal(tlsLoaded(['--require', 'node:tls'], '--version'), true, 'the control');
  });
});
