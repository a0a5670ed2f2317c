// bin/relayguard drops NODE_EXTRA_CA_CERTS for the commands that never open a TLS connection:
// Node 20 reads and parses that file at every start, TLS or not (40-50 ms with Debian's CA bundle,
// bench/RESULTS.md "Issue 22, fifth pass"). These tests hold the list to its promise: the script
// gives those commands no such variable and the others theirs, and no module a listed command can
// load (its whole import graph, packages included) imports TLS or HTTPS.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { build } from 'esbuild';

const bin = fileURLToPath(new URL('../../../bin/relayguard', import.meta.url));
const cliDir = fileURLToPath(new URL('../../src/cli/', import.meta.url));
const main = join(cliDir, 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'rg-tls-free-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const TLS_MODULES = new Set(['tls', 'node:tls', 'https', 'node:https', 'http2', 'node:http2']);
const NOT_COMMANDS = new Set(['', 'help', '-h', '--help', '-V', '--version']);
/** In a graph but loaded only on a path relayguard never takes: winston's HTTP transport is a
 *  lazy getter of `winston.transports` (relayguard writes to a stream; checked below). */
const NEVER_LOADED = new Set(['node_modules/winston/lib/winston/transports/http.js']);
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

/** The built-in TLS modules imported anywhere in the graph of `entry`, with their importers. */
async function tlsImportsOf(entry: string): Promise<string[]> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    loader: { '.node': 'empty' },
  });
  const found: string[] = [];
  for (const [file, input] of Object.entries(result.metafile.inputs))
    for (const imp of input.imports)
      if (imp.external && TLS_MODULES.has(imp.path) && !NEVER_LOADED.has(file)) found.push(`${file} -> ${imp.path}`);
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

  it('the check sees TLS where it is imported (audit)', async () => {
    const found = await tlsImportsOf(join(cliDir, 'audit.js'));
    assert.ok(
      found.some((f) => f.endsWith('-> node:tls')),
      found.join('\n'),
    );
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
