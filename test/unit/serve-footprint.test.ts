// What `serve` loads of Node's own modules: a daemon must not pay for clients it never runs.
// Importing node:http as an ES module made Node 22 and later load undici (fetch, WebSocket), and
// prom-client's index loaded its Pushgateway client (node:https, so TLS), all kept in memory
// for as long as serve runs (bench/RESULTS.md, "Issue 22, fourth pass"). A real serve with its
// metrics endpoint runs (on dist/src, and through bin/relayguard from its bundle), is scraped,
// and reports at exit what it loaded.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { promClient, promParts } from '../../src/ops/prom.js';
import { createRequire } from 'node:module';

const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const bin = fileURLToPath(new URL('../../../bin/relayguard', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rg-serve-footprint-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Node's modules a milter never needs: an HTTP client, TLS, WebSocket, the cluster aggregator. */
const NOT_NEEDED = /^NativeModule (?:https|tls|_tls_wrap|internal\/tls\/wrap|internal\/deps\/undici\/undici)$/;

/**
 * Node's modules the daemon loads when it first needs them, not before: node:fs/promises (with
 * the readline and file-watching modules it brings) at the first body spilled to disk, node:zlib
 * at the first nested zip (bench/RESULTS.md, "Issue 22, fifth pass"). Checked on the bundle, the
 * daemon as installed, with a CommonJS probe: Node's ES module loader (main.js, or an --import
 * probe) loads internal/fs/promises and readline itself.
 */
const ON_DEMAND = /^NativeModule (?:fs\/promises|internal\/fs\/promises|internal\/readline\/interface|zlib)$/;

const PROBE_CODE =
  "process.on('exit', () => process.stderr.write('RG_MODULES ' + JSON.stringify({ script: process.argv[1], " +
  "modules: process.moduleLoadList }) + '\\n'));\n";
const PROBE = join(dir, 'probe.mjs');
writeFileSync(PROBE, PROBE_CODE);
const PROBE_CJS = join(dir, 'probe.cjs');
writeFileSync(PROBE_CJS, PROBE_CODE);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function fetchText(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).once('error', reject);
  });
}

async function until<T>(f: () => Promise<T>, ms: number, what: () => string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (Date.now() > end) throw new Error(`${what()}: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Runs serve with the probe, scrapes it, stops it; what the probe reported. */
async function serveAndScrape(how: 'main.js' | 'bin/relayguard'): Promise<{ script: string; modules: string[] }> {
  const port = await freePort();
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `server:\n  listen: unix:${join(dir, 'milter.sock')}\n  state_dir: ${join(dir, 'state')}\n` +
      'rules:\n  size:\n    max_bytes: 10MB\n',
  );
  const serveArgs = ['serve', '--config', policy, '--metrics', `127.0.0.1:${port}`];
  const rg =
    how === 'main.js'
      ? spawn(process.execPath, ['--import', PROBE, main, ...serveArgs], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(bin, serveArgs, {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: {
            ...process.env,
            PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
            NODE_OPTIONS: `--require ${PROBE_CJS}`,
            RELAYGUARD_SNAPSHOT: '',
          },
        });
  children.push(rg);
  let log = '';
  rg.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise((r) => rg.once('exit', r));
  const health = await until(
    () => fetchText(`http://127.0.0.1:${port}/health`),
    15_000,
    () => `no /health\n${log}`,
  );
  assert.equal(health.status, 200, health.body);
  const metrics = await fetchText(`http://127.0.0.1:${port}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^relayguard_process_cpu_seconds_total \d/m);
  assert.match(metrics.body, /^# TYPE relayguard_messages_total counter$/m);
  rg.kill('SIGTERM');
  await exited;
  const m = /RG_MODULES (\{.*\})/.exec(log);
  assert.ok(m, `no report from the probe:\n${log.slice(-2000)}`);
  return JSON.parse(m[1]!) as { script: string; modules: string[] };
}

describe('serve: what it loads', () => {
  for (const how of ['main.js', 'bin/relayguard'] as const) {
    it(`serves and is scraped without loading undici, TLS, an HTTP client, or what it has not needed yet (${how})`, async () => {
      const r = await serveAndScrape(how);
      // bin/relayguard starts serve from the bundle test/run-all.sh built.
      assert.match(r.script, how === 'main.js' ? /dist\/src\/cli\/main\.js$/ : /dist\/snapshot\/serve\.cjs$/);
      assert.ok(r.modules.includes('NativeModule http'), 'the probe sees the modules serve loaded');
      assert.deepEqual(
        r.modules.filter((x) => NOT_NEEDED.test(x)),
        [],
      );
      if (how === 'bin/relayguard')
        assert.deepEqual(
          r.modules.filter((x) => ON_DEMAND.test(x)),
          [],
        );
    });
  }

  it("prom-client's files relayguard loads are the ones its index exports", () => {
    const index = createRequire(import.meta.url)('prom-client') as Record<string, unknown>;
    const parts = promClient() as unknown as Record<string, unknown>;
    for (const name of ['Registry', 'Counter', 'Gauge', 'Histogram', 'collectDefaultMetrics']) {
      assert.equal(typeof parts[name], 'function', name);
      assert.equal(parts[name], index[name], `prom-client/lib's ${name} is not the index's`);
    }
  });

  it('a prom-client whose exports map closes its files: its index instead', () => {
    const index = { Registry: class {}, Counter: class {} };
    const closed = (id: string): unknown => {
      if (id === 'prom-client') return index;
      throw Object.assign(new Error(`Package subpath './${id.slice(12)}' is not defined by "exports"`), {
        code: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
      });
    };
    assert.equal(promParts(closed), index);
    const missing = () => {
      throw Object.assign(new Error("Cannot find module 'prom-client/lib/registry'"), { code: 'MODULE_NOT_FOUND' });
    };
    assert.throws(() => promParts(missing), /Cannot find module/);
  });
});
