// server.heap: that the flags of each profile take effect when set at run time (as serve sets
// them), on the Node line running the test, and that the policy file accepts only the profiles.
// Each profile runs in a fresh process: the flags are process-wide and V8's sizing depends on
// what the heap went through before.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { HEAP_PROFILE_NAMES, HEAP_PROFILES, type HeapProfile } from '../../src/ops/heap-profile.js';
import { parsePolicyText } from '../../src/rules/policy-schema.js';

const MIB = 1024 * 1024;
const moduleUrl = pathToFileURL(new URL('../../src/ops/heap-profile.js', import.meta.url).pathname).href;

/** A message-like load: short-lived objects, a window of recent ones alive (messages in flight). */
const WORKLOAD = `
import { getHeapSpaceStatistics } from 'node:v8';
import { applyHeapProfile } from ${JSON.stringify(moduleUrl)};
const refused = applyHeapProfile(process.argv[1]);
if (refused) throw new Error(refused);
const size = (name) => getHeapSpaceStatistics().find((s) => s.space_name === name).space_size;
const window = new Array(20000);
let young = 0;
for (let i = 0; i < 2000000; i++) {
  window[i % window.length] = { i, text: 'line ' + i, pair: [i, i + 1] };
  if (i % 10000 === 0) young = Math.max(young, size('new_space'));
}
process.stdout.write(JSON.stringify({ young }));
`;

function youngGeneration(profile: HeapProfile): number {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', WORKLOAD, profile], { encoding: 'utf8' });
  return (JSON.parse(out) as { young: number }).young;
}

describe('server.heap', () => {
  it('small keeps the young generation a fraction of what V8 grows it to on its own', () => {
    const small = youngGeneration('small');
    const large = youngGeneration('large');
    assert.ok(small <= 16 * MIB, `small: young generation ${small / MIB} MiB`);
    assert.ok(small * 3 <= large, `small ${small / MIB} MiB against large ${large / MIB} MiB`);
  });

  it("large is this Node line's own V8 defaults, and every flag of a profile exists here", () => {
    const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    for (const flag of HEAP_PROFILES.large) {
      const [name] = flag.split('=');
      assert.ok(options.includes(`default: ${flag}\n`), `${name}: V8's default here is not ${flag}`);
    }
    for (const flag of HEAP_PROFILES.small)
      assert.ok(options.includes(`${flag.split('=')[0]} (`), `${flag}: unknown here`);
  });

  it('takes small or large, defaults to small, and refuses anything else', () => {
    const read = (heap: string) => parsePolicyText(heap ? `server:\n  heap: ${heap}\n` : '', 'p.yaml');
    const d = read('');
    assert.ok(d.ok && d.config.server.heap === 'small');
    assert.deepEqual(HEAP_PROFILE_NAMES, ['small', 'large']);
    const l = read('large');
    assert.ok(l.ok && l.config.server.heap === 'large');
    const bad = read('tiny');
    assert.ok(!bad.ok);
    assert.match(bad.errors[0]!.message, /small|large/);
  });

  it("serve runs with the policy's profile and says so; a reload that changes it says so too", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relayguard-heap-'));
    const policy = join(dir, 'policy.yaml');
    const write = (heap: string) =>
      writeFileSync(
        policy,
        `server:\n  listen: unix:${join(dir, 'milter.sock')}\n  state_dir: ${join(dir, 'state')}\n  heap: ${heap}\n` +
          'rules: { trace_header: { mode: enforce } }\n',
      );
    write('large');
    const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    const rg = spawn(process.execPath, [main, 'serve', '--config', policy, '--metrics', 'off'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    rg.stdout.on('data', (c: Buffer) => (out += c.toString()));
    rg.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise((r) => rg.once('exit', r));
    const waitFor = async (re: RegExp) => {
      for (let i = 0; i < 750 && !re.test(out); i++) await sleep(20);
      assert.match(out, re);
    };
    try {
      await waitFor(/listening on unix:.*; heap large\)/);
      write('small');
      rg.kill('SIGHUP');
      await waitFor(/server\.heap is now small/);
      await waitFor(/reload: policy .* active/);
      assert.doesNotMatch(out, /not applied/);
    } finally {
      rg.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
