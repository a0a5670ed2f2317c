// postfix-config against a copy of the test Postfix's configuration directory (the slot's own
// instance is not touched): only the settings that differ are printed, as postconf -e commands;
// --apply runs them with a dated backup, prints the diff, folds parameters an admin set twice,
// and leaves `postconf -n` free of "overriding earlier entry" warnings; a second run finds nothing.
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureStack, freshStateDir, preparePolicy, run, runRelayguard, stack } from './harness.js';

let copy: string;
let policy: string;

const backups = () => readdirSync(copy).filter((n) => n.startsWith('main.cf.relayguard-'));
const pc = (args: string[]) =>
  runRelayguard(['postfix-config', '--config', policy, ...args], { env: { MAIL_CONFIG: copy } });

before(async () => {
  await ensureStack();
  copy = mkdtempSync(join(stack.baseDir, 'pf-copy-'));
  cpSync(stack.postfixConfigDir, copy, { recursive: true });
  rmSync(join(copy, 'main.cf.baseline'));
  // What the old advice ("add to main.cf, later lines win") left behind: repeated parameters.
  appendFileSync(
    join(copy, 'main.cf'),
    '\n# added for relayguard\nmynetworks = 127.0.0.0/8, 10.0.0.0/8\nmessage_size_limit = 1000000\n',
  );
  policy = preparePolicy({ stateDir: freshStateDir() });
});

after(() => {
  if (copy) rmSync(copy, { recursive: true, force: true });
});

describe('postfix-config against a copy of the test Postfix (MAIL_CONFIG)', () => {
  test('prints only what differs, as postconf -e commands with the reason; flagged replacements', async () => {
    const warned = await run('postconf', ['-c', copy, '-n']);
    assert.match(warned.stderr, /overriding earlier entry: mynetworks/);
    const r = await pc([]);
    assert.equal(r.code, 0, r.stderr);
    const commands = r.stdout.split('\n').filter((l) => l.startsWith('postconf '));
    // The test Postfix already has VRFY off, the milter wired in, tempfail: none of that is repeated.
    assert.ok(
      !commands.some((c) => /disable_vrfy_command|'smtpd_milters =|milter_default_action/.test(c)),
      commands.join('\n'),
    );
    // The admin's last line (1000000) is below the policy's 2 MiB: back to Postfix's default.
    assert.ok(commands.includes(`postconf -c '${copy}' -e 'message_size_limit = 10240000'`), commands.join('\n'));
    for (const c of commands)
      assert.match(
        r.stdout,
        new RegExp(`^# \\S[^\\n]*\\n(# CHECK FIRST: [^\\n]*\\n)?${c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'),
      );
    assert.match(r.stdout, /# CHECK FIRST: replaces Postfix's default smtpd_tls_protocols = >=TLSv1/);
  });

  test('--apply: dated backup, the diff, one entry per parameter, no warnings', async () => {
    const original = readFileSync(join(copy, 'main.cf'), 'utf8');
    const r = await pc(['--apply']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const [backup] = backups();
    assert.ok(backup && /^main\.cf\.relayguard-\d{8}-\d{6}$/.test(backup), backups().join(' '));
    assert.equal(readFileSync(join(copy, backup), 'utf8'), original);
    assert.match(r.stdout, new RegExp(`backup: ${join(copy, backup).replace(/\./g, '\\.')}`));
    assert.match(
      r.stdout,
      /^set more than once, now once \(the value Postfix used\): mynetworks, message_size_limit$/m,
    );
    assert.match(r.stdout, new RegExp(`^--- ${copy}/main\\.cf\\.relayguard-`, 'm'));
    assert.match(r.stdout, /^\+message_size_limit = 10240000$/m);
    assert.match(r.stdout, /^-message_size_limit = 1000000$/m);
    const after = await run('postconf', ['-c', copy, '-n']);
    assert.equal(after.code, 0);
    assert.doesNotMatch(after.stderr, /overriding earlier entry|multiple entries/);
    assert.match(after.stdout, /^message_size_limit = 10240000$/m);
    assert.match(after.stdout, /^mynetworks = 127\.0\.0\.0\/8, 10\.0\.0\.0\/8$/m);
    const lint = await runRelayguard(['lint-mta', '--config', policy], { env: { MAIL_CONFIG: copy } });
    assert.equal(lint.code, 0, lint.stdout);
    assert.match(lint.stdout, /: 0 error\(s\), 0 warning\(s\)$/m);
  });

  test('a second run has nothing left to change and writes no backup', async () => {
    const r = await pc([]);
    assert.match(r.stdout, /# nothing to change: postconf -c .* already has every setting the policy needs/);
    assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('postconf ')).length, 0);
    const again = await pc(['--apply']);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /nothing changed/);
    assert.equal(backups().length, 1);
  });

  test('--apply where postconf cannot run: exit 1, nothing written', async () => {
    const r = await runRelayguard(['postfix-config', '--config', policy, '--apply'], {
      env: { MAIL_CONFIG: join(copy, 'missing') },
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /postconf -c .*missing -n/);
  });
});
