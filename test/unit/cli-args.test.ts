// The command line never ignores what it is given: every command answers --help (exit 0), refuses
// an option or argument it does not take (exit 2, one-line usage), takes -c for --config; a policy
// file named anywhere is the one checked or refused. In-process through main(), one spawn for
// the program itself (bin symlink).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { captureCommand } from '../support/capture-output.js';
import { COMMANDS, main } from '../../src/cli/main.js';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { closestKey, knownKeys } from '../../src/config/suggest.js';
import { policySchema } from '../../src/rules/policy-schema.js';
import { parsePolicyText } from '../../src/rules/policy-schema.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;
const ROOT = new URL('../../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'rg-cli-args-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** main() with stdout and stderr captured. */
const cli = (...argv: string[]) => captureCommand(() => main(argv));

const badPolicy = join(dir, 'bad.yaml');
writeFileSync(badPolicy, 'rules:\n  size:\n    max_byte: 10\n');
const goodPolicy = join(dir, 'good.yaml');
writeFileSync(goodPolicy, 'rules:\n  size:\n    max_bytes: 10MiB\n');

describe('every command', () => {
  it('answers --help and -h with its usage on stdout, exit 0', async () => {
    for (const cmd of COMMANDS) {
      for (const flag of ['--help', '-h']) {
        const r = await cli(cmd.name, flag);
        assert.equal(r.code, 0, `${cmd.name} ${flag}: ${r.err}`);
        assert.ok(r.out.startsWith(`usage: relayguard ${cmd.usage}\n`), `${cmd.name} ${flag}: ${r.out}`);
      }
    }
  });

  it('refuses an option it does not take: exit 2, the error and one usage line on stderr', async () => {
    for (const cmd of COMMANDS) {
      const r = await cli(cmd.name, '--no-such-option');
      assert.equal(r.code, 2, `${cmd.name}: ${r.err}`);
      assert.equal(r.out, '');
      assert.deepEqual(r.err.split('\n'), [
        `relayguard ${cmd.name}: unknown option --no-such-option`,
        `usage: relayguard ${cmd.usage}`,
        '',
      ]);
    }
  });

  it('refuses a policy file given as an argument instead of checking another file', async () => {
    for (const cmd of COMMANDS) {
      // One more argument than the command takes (check, milter-check and unban take one, quarantine two).
      const before =
        {
          check: ['--client-ip', '192.0.2.1', '--rcpt', 'a@b.test', 'm.eml'],
          'milter-check': ['--client-ip', '192.0.2.1', '--rcpt', 'a@b.test', 'm.eml'],
          unban: ['192.0.2.1'],
          quarantine: ['show', 'ID'],
        }[cmd.name] ?? [];
      const r = await cli(cmd.name, ...before, badPolicy);
      assert.equal(r.code, 2, `${cmd.name}: ${r.out}${r.err}`);
      assert.match(r.err, new RegExp(`unexpected argument "${badPolicy.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`));
      assert.doesNotMatch(r.out, /ok/);
    }
  });

  it('takes -c as --config (and refuses it twice)', async () => {
    const bad = await cli('validate', '-c', badPolicy);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /bad\.yaml:3:5: rules\.size: unknown key "max_byte" \(did you mean "max_bytes"\?\)/);
    const good = await cli('validate', '-c', goodPolicy);
    assert.deepEqual([good.code, good.out], [0, `${goodPolicy}: ok\n`]);
    const pc = await cli('postfix-config', '-c', badPolicy);
    assert.equal(pc.code, 1, 'postfix-config checks the file it is given');
    assert.match(pc.err, /bad\.yaml:3:5/);
    const twice = await cli('validate', '-c', goodPolicy, '--config', badPolicy);
    assert.equal(twice.code, 2);
    assert.match(twice.err, /--config given more than once/);
  });

  it('refuses a switch with a value and an option without one', async () => {
    assert.match((await cli('validate', '--json=yes')).err, /--json takes no value/);
    assert.match((await cli('validate', '--config')).err, /--config needs a value/);
    assert.match((await cli('validate', '--config', '--json')).err, /--config needs a value/);
  });
});

describe('relayguard', () => {
  it('--help lists every command, exit 0; no command is exit 2', async () => {
    const r = await cli('--help');
    assert.equal(r.code, 0);
    for (const cmd of COMMANDS) assert.ok(r.out.includes(`relayguard ${cmd.usage}`), cmd.name);
    assert.equal((await cli()).code, 2);
    assert.equal((await cli('frobnicate')).code, 2);
    const help = await cli('help', 'validate');
    assert.deepEqual([help.code, help.out.split('\n')[0]], [0, 'usage: relayguard validate [--config F] [--json]']);
  });

  it('--version prints the package version', async () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const r = await cli('--version');
    assert.deepEqual([r.code, r.out], [0, `${version}\n`]);
    assert.equal((await cli('--version', 'x')).code, 2);
  });

  it('runs as a program through a symlink, as npm installs the bin', () => {
    const link = join(dir, 'relayguard');
    symlinkSync(MAIN, link);
    const r = spawnSync(process.execPath, [link, 'validate', '-c', badPolicy, '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    const out = JSON.parse(r.stdout) as unknown;
    assert.deepEqual(out, {
      ok: false,
      file: badPolicy,
      errors: [
        {
          line: 3,
          col: 5,
          path: 'rules.size.max_byte',
          message: 'rules.size: unknown key "max_byte" (did you mean "max_bytes"?)',
        },
      ],
    });
  });
});

describe('validate --json', () => {
  it('valid: ok true, no errors, exit 0', async () => {
    const r = await cli('validate', '--json', '-c', goodPolicy);
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.out), { ok: true, file: goodPolicy, errors: [] });
  });

  it('unreadable file: ok false with the reason', async () => {
    const r = await cli('validate', '--json', '-c', join(dir, 'missing.yaml'));
    assert.equal(r.code, 1);
    const out = JSON.parse(r.out) as { ok: boolean; errors: Array<{ message: string }> };
    assert.equal(out.ok, false);
    assert.match(out.errors[0]!.message, /cannot read: ENOENT/);
  });
});

describe('parseArgs', () => {
  it('collects repeated options, keeps "-" and everything after "--" as arguments', () => {
    const p = parseArgs(
      ['--rcpt', 'a', '--rcpt=b', '-', '--', '--odd'],
      { rcpt: { value: true, repeat: true } },
      { min: 0, max: 2 },
    );
    assert.deepEqual(p, { flags: { rcpt: ['a', 'b'] }, positional: ['-', '--odd'] });
    assert.throws(() => parseArgs(['x'], {}), UsageError);
  });
});

describe('did you mean', () => {
  it('knows the keys of every level of the schema', () => {
    assert.ok(knownKeys(policySchema, ['rules', 'size']).includes('max_bytes'));
    assert.ok(knownKeys(policySchema, ['server', 'deadlines']).includes('content'));
    assert.ok(knownKeys(policySchema, []).includes('local_domains'));
    assert.ok(knownKeys(policySchema, ['rules', 'content', 'rules', 0]).includes('phrase'));
  });

  it('suggests only a close key', () => {
    assert.equal(closestKey('max_byte', ['max_bytes', 'mode']), 'max_bytes');
    assert.equal(closestKey('max-bytes', ['max_bytes', 'mode']), 'max_bytes');
    assert.equal(closestKey('lsiten', ['listen', 'metrics']), 'listen');
    assert.equal(closestKey('colour', ['mode', 'header']), undefined);
  });

  it('one error per unknown key, each at its own line', () => {
    const r = parsePolicyText('server:\n  listn: inet:127.0.0.1:1\n  state_dri: /x\n  zzz: 1\n', 'p.yaml');
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(
      r.errors.map((e) => [e.line, e.path, e.message]),
      [
        [2, 'server.listn', 'server: unknown key "listn" (did you mean "listen"?)'],
        [3, 'server.state_dri', 'server: unknown key "state_dri" (did you mean "state_dir"?)'],
        [4, 'server.zzz', 'server: unknown key "zzz"'],
      ],
    );
  });
});
