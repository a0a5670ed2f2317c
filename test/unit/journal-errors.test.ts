// Why relayguard refused to start, validate or reload, as the journal files it: systemd runs
// `validate` (ExecStartPre), `serve` and `reload` (ExecReload) with stderr connected to the
// journal, and an error line without a priority is filed as info, so `journalctl -p err` would
// not show it. Under the journal every error line starts with `<3>`; anywhere else it is plain.
// Real child processes whose stderr is (or is not) the stream JOURNAL_STREAM names.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { withErrorPriority } from '../../src/ops/journal-stream.js';

const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const bin = fileURLToPath(new URL('../../../bin/relayguard', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rg-journal-errors-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const badPolicy = join(dir, 'bad.yaml');
writeFileSync(badPolicy, 'rules:\n  size:\n    max_bytes: lots\n');
const goodPolicy = join(dir, 'good.yaml');
writeFileSync(goodPolicy, `server:\n  state_dir: ${join(dir, 'state')}\nrules:\n  size:\n    max_bytes: 10MB\n`);

/** Runs a command with stderr in a file; `journal`: JOURNAL_STREAM names that file. */
function stderrOf(
  args: string[],
  journal: boolean,
  via: 'main.js' | 'bin' = 'main.js',
): { status: number; err: string } {
  const file = join(dir, `stderr-${Math.random().toString(36).slice(2)}.txt`);
  const fd = openSync(file, 'w');
  const st = fstatSync(fd);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` };
  if (journal) env.JOURNAL_STREAM = `${st.dev}:${st.ino}`;
  else delete env.JOURNAL_STREAM;
  const [cmd, argv] = via === 'bin' ? [bin, args] : [process.execPath, [main, ...args]];
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'ignore', fd], env, timeout: 30_000 });
  closeSync(fd);
  return { status: r.status ?? -1, err: readFileSync(file, 'utf8') };
}

function lines(text: string): string[] {
  return text.split('\n').filter(Boolean);
}

describe('errors at start, validate and reload under the journal', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['serve with a bad policy', ['serve', '--config', badPolicy], /bad\.yaml:3:\d+: /],
    ['validate with a bad policy', ['validate', '--config', badPolicy], /bad\.yaml:3:\d+: /],
    [
      'reload without its pid file',
      ['reload', '--config', goodPolicy, '--pid-file', join(dir, 'none.pid')],
      /cannot read /,
    ],
    ['serve with an option it does not take', ['serve', '--bogus'], /^relayguard serve: .*bogus/],
    ['an unknown command', ['serve-all'], /unknown command "serve-all"/],
  ];
  for (const [what, args, expected] of cases) {
    it(`${what}: every line <3> in the journal, plain elsewhere`, () => {
      const inJournal = stderrOf(args, true);
      const plain = stderrOf(args, false);
      assert.notEqual(inJournal.status, 0);
      assert.equal(plain.status, inJournal.status);
      assert.ok(lines(inJournal.err).length > 0, 'no error written');
      for (const line of lines(inJournal.err)) assert.match(line, /^<3>/, line);
      assert.equal(inJournal.err.replace(/^<3>/gm, ''), plain.err);
      assert.ok(
        lines(plain.err).some((l) => expected.test(l)),
        plain.err,
      );
      for (const line of lines(plain.err)) assert.doesNotMatch(line, /^<\d>/, line);
    });
  }

  it('stdout stays plain under the journal: validate --json of a bad policy', () => {
    const file = join(dir, 'json-stdout.txt');
    const errFd = openSync(join(dir, 'json-stderr.txt'), 'w');
    const st = fstatSync(errFd);
    const outFd = openSync(file, 'w');
    const r = spawnSync(process.execPath, [main, 'validate', '--json', '--config', badPolicy], {
      stdio: ['ignore', outFd, errFd],
      env: { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` },
      timeout: 30_000,
    });
    closeSync(outFd);
    closeSync(errFd);
    assert.equal(r.status, 1);
    const out = readFileSync(file, 'utf8');
    assert.equal((JSON.parse(out) as { ok: boolean }).ok, false);
    assert.doesNotMatch(out, /<3>/);
  });

  it('through bin/relayguard as systemd starts it (the snapshot for validate, the bundle for serve)', () => {
    for (const args of [
      ['validate', '--config', badPolicy],
      ['serve', '--config', badPolicy],
    ]) {
      const r = stderrOf(args, true, 'bin');
      assert.equal(r.status, 1, r.err);
      assert.ok(lines(r.err).length > 0);
      for (const line of lines(r.err)) assert.match(line, /^<3>.*bad\.yaml:3:\d+: /, line);
    }
  });
});

describe('withErrorPriority', () => {
  it('marks every line journald sees, and only those', () => {
    assert.equal(withErrorPriority('a\nb\n'), '<3>a\n<3>b\n');
    assert.equal(withErrorPriority('a\n\nb'), '<3>a\n\n<3>b');
    // journald splits on LF only: a CR or a line separator inside a quoted value stays in its line.
    assert.equal(withErrorPriority('p.yaml:1:1: bad "x\ry\u2028z"\n'), '<3>p.yaml:1:1: bad "x\ry\u2028z"\n');
  });
});
