// The CLI's start-up snapshot (tools/cli-snapshot.ts, src/cli/snapshot-entry.ts, bin/relayguard):
// test/run-all.sh builds it for the Node that runs the suite. Every command run from the snapshot
// must print and exit exactly as the same command run on dist/src/cli/main.js, including the
// code the snapshot holds but did not run while it was made (check, offenders, lint-mta) and
// the native addon and packages it loads from node_modules (re2, better-sqlite3). bin/relayguard
// must use the snapshot only when it was made from this code, by this Node binary, completely,
// in this checkout, with no V8 flags in NODE_OPTIONS; a moved checkout must read its own files.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createOffenderLedger } from '../../src/deps/offender-ledger.js';
import { ledgerPolicyOf, offendersSchema } from '../../src/rules/offenders.js';
import { snapshotPath } from '../../tools/cli-snapshot.js';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const bin = join(repo, 'bin', 'relayguard');
const main = join(repo, 'dist', 'src', 'cli', 'main.js');
const serveBundle = join(repo, 'dist', 'snapshot', 'serve.cjs');
const examplePolicy = join(repo, 'examples', 'postfix', 'relayguard.yaml');

const work = mkdtempSync(join(tmpdir(), 'rg-cli-snapshot-'));
after(() => rmSync(work, { recursive: true, force: true }));

const badPolicy = join(work, 'bad.yaml');
writeFileSync(badPolicy, 'server:\n  listen: 12\nrules:\n  size:\n    max_bytes: lots\n  nope: {}\n');
const regexRules = (bad: boolean) =>
  [
    'rules:',
    '  content:',
    '    rules:',
    '      - name: lottery',
    "        regex: 'you (have )?won .{0,40}lottery'",
    '        action: tag',
    ...(bad ? ['      - name: bad', "        regex: '(\\w+) \\1'", '        action: reject'] : []),
    '',
  ].join('\n');
const regexPolicy = join(work, 'regex.yaml');
writeFileSync(regexPolicy, regexRules(false));
const badRegexPolicy = join(work, 'bad-regex.yaml');
writeFileSync(badRegexPolicy, regexRules(true));
const message = join(work, 'm.eml');
writeFileSync(message, 'From: a@outside.test\r\nTo: u@example.com\r\nSubject: hi\r\n\r\nYou have won the lottery\r\n');
const stateDir = join(work, 'state');
const offendersPolicy = join(work, 'offenders.yaml');
writeFileSync(offendersPolicy, `server:\n  state_dir: ${stateDir}\nrules:\n  offenders:\n    mode: enforce\n`);

/** This Node first in PATH, so bin/relayguard starts the Node the suite runs on. */
const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` };
  delete e.NODE_OPTIONS;
  delete e.RELAYGUARD_SNAPSHOT;
  return { ...e, ...extra };
};

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], e: NodeJS.ProcessEnv = env()): Run {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000, cwd: work, env: e });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * The command bin/relayguard execs, from `sh -x` (the last `exec` line). It runs for real: `args`
 * must make it exit at once (a `serve` without --help would start a daemon).
 */
function execLine(args: string[], e: NodeJS.ProcessEnv = env(), script = bin): string {
  const r = spawnSync('sh', ['-x', script, ...args], { encoding: 'utf8', timeout: 60_000, cwd: work, env: e });
  const lines = (r.stderr ?? '').split('\n').filter((l) => l.startsWith('+ exec '));
  assert.ok(lines.length > 0, `no exec in the trace of bin/relayguard ${args.join(' ')}: ${r.stderr}`);
  return lines.at(-1)!;
}

/** Clock readings differ from run to run: log timestamps and the trace's per-rule milliseconds. */
const steady = (s: string) =>
  s
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z/g, 'TIME')
    .replace(/"ms": [\d.]+/g, '"ms": N')
    .replace(/\b[\d.]+ ms\b/g, 'N ms');

const COMMANDS: string[][] = [
  ['validate', '-c', examplePolicy],
  ['validate'],
  ['validate', '-c', badPolicy],
  ['validate', '--json', '-c', badPolicy],
  ['validate', '-c', regexPolicy],
  ['validate', '-c', badRegexPolicy],
  ['validate', '-c', join(work, 'missing.yaml')],
  ['validate', '--bogus'],
  ['validate', '--help'],
  ['nosuchcommand'],
  ['check', '--client-ip', '203.0.113.5', '--from', 'a@outside.test', '--rcpt', 'u@example.com', message],
  ['check', '--json', '-c', regexPolicy, '--client-ip', '203.0.113.5', '--rcpt', 'u@example.com', message],
  ['offenders', '--json', '-c', offendersPolicy],
  ['lint-mta', '--postconf', '/dev/null'],
  ['postfix-config', '-c', examplePolicy, '--postconf', '/dev/null'],
  ['quarantine', 'list', '-c', examplePolicy],
];

describe('the CLI start-up snapshot', () => {
  // A ledger with one banned client, for `offenders` (better-sqlite3, loaded from the snapshot).
  before(async () => {
    const ledger = createOffenderLedger({ state_dir: stateDir }, ledgerPolicyOf(offendersSchema.parse({})));
    for (let i = 0; i < 5; i++) await ledger.record('203.0.113.9', 'rejection', 'test');
    await ledger.close();
  });

  it('test/run-all.sh built one for this Node, from this build', () => {
    const blob = snapshotPath(process.execPath);
    assert.ok(existsSync(blob), `no ${blob}: run npm run build (or node dist/tools/cli-snapshot.js)`);
    assert.ok(statSync(blob).mtimeMs > statSync(main).mtimeMs, 'the snapshot is older than dist/src/cli/main.js');
  });

  it('bin/relayguard starts the commands from it, serve from its bundle, --help and --version on main.js', () => {
    const blob = snapshotPath(process.execPath);
    for (const args of [['validate'], ['quarantine', 'list'], ['check', '--help']])
      assert.ok(execLine(args).includes(`--snapshot-blob ${blob} ${main}`), args.join(' '));
    for (const args of [
      ['serve', '--help'],
      ['serve', '-c', 'x.yaml'],
    ])
      assert.ok(execLine(args).endsWith(` ${serveBundle} ${args.join(' ')}`), args.join(' '));
    for (const args of [['--help'], ['--version'], []]) {
      const line = execLine(args);
      assert.ok(!line.includes('--snapshot-blob'), `${args.join(' ')}: ${line}`);
      assert.ok(line.includes(main), line);
    }
  });

  it("not with V8 flags in NODE_OPTIONS (serve's bundle still), nor either with RELAYGUARD_SNAPSHOT=off", () => {
    const flags = env({ NODE_OPTIONS: '--max-old-space-size=256' });
    assert.ok(!execLine(['validate'], flags).includes('--snapshot-blob'));
    assert.ok(execLine(['serve', '--help'], flags).includes(serveBundle), 'the bundle is plain JavaScript: any flags');
    assert.ok(!execLine(['validate'], env({ RELAYGUARD_SNAPSHOT: 'off' })).includes('--snapshot-blob'));
    assert.ok(execLine(['serve', '--help'], env({ RELAYGUARD_SNAPSHOT: 'off' })).endsWith(`${main} serve --help`));
    // And the command still works there.
    const r = run([bin, 'validate', '-c', examplePolicy], env({ NODE_OPTIONS: '--max-old-space-size=256' }));
    assert.equal(r.status, 0, r.stderr);
  });

  for (const args of [
    ['serve', '--help'],
    ['serve', '--bogus'],
    ['serve', '-c', badPolicy],
    ['serve', 'extra'],
  ]) {
    it(`relayguard ${args.join(' ').replaceAll(work, 'TMP')} from the bundle: the same as on main.js`, () => {
      const plain = run([process.execPath, main, ...args]);
      const bundled = run([process.execPath, serveBundle, ...args]);
      assert.equal(bundled.status, plain.status, `exit codes; stderr from the bundle: ${bundled.stderr}`);
      assert.notEqual(plain.status, null);
      assert.equal(steady(bundled.stdout), steady(plain.stdout));
      assert.equal(steady(bundled.stderr), steady(plain.stderr));
    });
  }

  it("serve's bundle runs serve only, and its source map leads back to src/", () => {
    const r = run([process.execPath, serveBundle, 'validate']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /runs serve only: start relayguard with bin\/relayguard/);
    const map = JSON.parse(readFileSync(`${serveBundle}.map`, 'utf8')) as { sources: string[] };
    assert.ok(
      map.sources.some((f) => f.endsWith('src/cli/serve.ts')),
      map.sources.slice(0, 5).join(' '),
    );
  });

  for (const args of COMMANDS) {
    it(`relayguard ${args.join(' ').replaceAll(work, 'TMP')}: the same output and exit code as without it`, () => {
      const plain = run([process.execPath, main, ...args]);
      const snap = run([bin, ...args]);
      assert.equal(snap.status, plain.status, `exit codes; stderr with the snapshot: ${snap.stderr}`);
      assert.equal(steady(snap.stdout), steady(plain.stdout));
      assert.equal(steady(snap.stderr), steady(plain.stderr));
    });
  }

  it('the commands do something: ok, errors, the regex refused, the rule verdicts, the ledger', () => {
    const out = (args: string[]) => {
      const r = run([bin, ...args]);
      return `${r.status} ${r.stdout}${r.stderr}`;
    };
    assert.match(out(COMMANDS[0]!), /^0 .*relayguard\.yaml: ok/);
    assert.match(out(COMMANDS[2]!), /^1 .*bad\.yaml:2:\d+: .*listen/s);
    assert.match(out(COMMANDS[4]!), /^0 .*regex\.yaml: ok/);
    assert.match(
      out(COMMANDS[5]!),
      /^1 .*bad-regex\.yaml:8:\d+: rules\.content\.rules\.1\.regex: invalid regular expression/s,
    );
    assert.match(out(COMMANDS[11]!), /"rule": "content"[^}]*lottery/s);
    assert.match(out(COMMANDS[12]!), /^0 \{.*"203\.0\.113\.9"/s);
  });

  it('is not used once anything it holds is newer: a module of dist/src, the installed packages', () => {
    const root = copyCheckout(join(work, 'stale'), { adopt: true });
    const copyBin = join(root, 'bin', 'relayguard');
    assert.ok(execLine(['validate'], env(), copyBin).includes('--snapshot-blob'), 'used before');
    const later = new Date(Date.now() + 60_000);
    // tsc --watch writes only the modules that changed.
    assert.ok(execLine(['serve', '--help'], env(), copyBin).includes('serve.cjs'), 'the bundle used before');
    utimesSync(join(root, 'dist', 'src', 'rules', 'size.js'), later, later);
    assert.ok(!execLine(['validate'], env(), copyBin).includes('--snapshot-blob'), 'a module changed');
    assert.ok(
      execLine(['serve', '--help'], env(), copyBin).endsWith('main.js serve --help'),
      'the bundle, a module changed',
    );
    utimesSync(join(root, 'dist', 'src', 'rules', 'size.js'), new Date(0), new Date(0));
    assert.ok(execLine(['validate'], env(), copyBin).includes('--snapshot-blob'), 'used again');
    utimesSync(join(root, 'node_modules', '.package-lock.json'), later, later);
    assert.ok(!execLine(['validate'], env(), copyBin).includes('--snapshot-blob'), 'a package changed');
  });

  it('a snapshot that is empty or only partly written is not used', () => {
    const root = copyCheckout(join(work, 'partial'), { adopt: true });
    const blob = join(root, 'dist', 'snapshot', basename(snapshotPath(process.execPath)));
    assert.ok(
      execLine(['validate'], env(), join(root, 'bin', 'relayguard')).includes('--snapshot-blob'),
      'used before',
    );
    writeFileSync(blob, '');
    assert.ok(!execLine(['validate'], env(), join(root, 'bin', 'relayguard')).includes('--snapshot-blob'));
    writeFileSync(join(root, 'dist', 'snapshot', 'serve.cjs'), '');
    assert.ok(execLine(['serve', '--help'], env(), join(root, 'bin', 'relayguard')).endsWith('main.js serve --help'));
    assert.equal(run([join(root, 'bin', 'relayguard'), 'validate', '-c', examplePolicy]).status, 0);
  });

  it('a moved checkout reads its own files: its bin/relayguard does not use the snapshot made elsewhere', () => {
    const root = copyCheckout(join(work, 'moved'));
    const movedBin = join(root, 'bin', 'relayguard');
    assert.ok(!execLine(['validate'], env(), movedBin).includes('--snapshot-blob'));
    assert.ok(execLine(['serve', '--help'], env(), movedBin).endsWith(`${root}/dist/src/cli/main.js serve --help`));
    // The moved checkout's default policy differs from the original's: validate must read it.
    writeFileSync(join(root, 'policies', 'default.yaml'), 'server:\n  listen: 12\n');
    const r = run([movedBin, 'validate']);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`${root}/policies/default\\.yaml:2:\\d+: .*listen`));
    // Started from that snapshot by hand, it refuses rather than read the other checkout's files.
    const blob = join(root, 'dist', 'snapshot', basename(snapshotPath(process.execPath)));
    const direct = run([
      process.execPath,
      '--snapshot-blob',
      blob,
      join(root, 'dist', 'src', 'cli', 'main.js'),
      'validate',
    ]);
    assert.equal(direct.status, 1);
    assert.match(direct.stderr, /this start-up snapshot was made for .*, not .*moved/);
    // So does serve's bundle, started by hand from the copy.
    const bundled = run([process.execPath, join(root, 'dist', 'snapshot', 'serve.cjs'), 'serve', '--help']);
    assert.equal(bundled.status, 1, bundled.stdout);
    assert.match(bundled.stderr, /this bundle was made in .*, not for .*moved/);
  });

  it('made with V8 flags in NODE_OPTIONS (a build environment), it still runs without them', () => {
    const root = copyCheckout(join(work, 'flags'));
    const b = spawnSync(process.execPath, [join(root, 'dist', 'tools', 'cli-snapshot.js')], {
      encoding: 'utf8',
      timeout: 120_000,
      env: env({ NODE_OPTIONS: '--max-old-space-size=2048 --stack-trace-limit=50' }),
    });
    assert.equal(b.status, 0, b.stderr);
    const copyBin = join(root, 'bin', 'relayguard');
    assert.ok(execLine(['validate'], env(), copyBin).includes('--snapshot-blob'), 'its own checkout uses it');
    const r = run([copyBin, 'validate', '-c', examplePolicy]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /relayguard\.yaml: ok/);
  });
});

/**
 * A copy of what a checkout needs to run the CLI, with the snapshot and its mtimes (cp -a); its
 * node_modules holds links to this checkout's packages and its own .package-lock.json. `adopt`:
 * the copy's dist/snapshot/root names the copy, as if it had been built there.
 */
function copyCheckout(root: string, opts: { adopt?: boolean } = {}): string {
  for (const part of [
    'bin',
    'policies',
    'examples',
    'package.json',
    join('dist', 'src'),
    join('dist', 'tools'),
    join('dist', 'snapshot'),
  ])
    cpSync(join(repo, part), join(root, part), { recursive: true, preserveTimestamps: true });
  const modules = join(root, 'node_modules');
  mkdirSync(modules);
  for (const entry of readdirSync(join(repo, 'node_modules')))
    if (entry !== '.package-lock.json') symlinkSync(join(repo, 'node_modules', entry), join(modules, entry));
  cpSync(join(repo, 'node_modules', '.package-lock.json'), join(modules, '.package-lock.json'), {
    preserveTimestamps: true,
  });
  if (opts.adopt) writeFileSync(join(root, 'dist', 'snapshot', 'root'), `${realpathSync(root)}\n`);
  return root;
}
