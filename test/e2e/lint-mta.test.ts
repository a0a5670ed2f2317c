// lint-mta through the real Postfix: the stack's configuration passes; each weakened setting is
// reported with its severity and the line that fixes it; the serve start-up hook finds the same.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadPolicyFile } from '../../src/rules/policy-schema.js';
import { logMtaLint, type Finding } from '../../src/mta/lint.js';
import { createLogger } from '../../src/ops/logging.js';
import { Writable } from 'node:stream';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ensureStack,
  freshStateDir,
  OPEN_RELAY_RESTRICTIONS,
  postconf,
  preparePolicy,
  restorePostconf,
  run,
  runRelayguard,
  stack,
} from './harness.js';

let policyPath: string;

interface LintJson {
  ok: boolean;
  source: string;
  findings: Finding[];
}

async function lint(
  args: string[] = [],
  opts: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<{ code: number | null; out: LintJson; stderr: string }> {
  const r = await runRelayguard(['lint-mta', '--config', policyPath, '--json', ...args], opts);
  if (!r.stdout.trim()) return { code: r.code, out: { ok: false, source: '', findings: [] }, stderr: r.stderr };
  return { code: r.code, out: JSON.parse(r.stdout) as LintJson, stderr: r.stderr };
}

const has = (fs: Finding[], parameter: string, severity: Finding['severity'], re: RegExp) =>
  fs.some((f) => f.parameter === parameter && f.severity === severity && re.test(f.message));

before(async () => {
  await ensureStack();
  await restorePostconf();
  policyPath = preparePolicy({ stateDir: freshStateDir() });
});

after(async () => {
  await restorePostconf();
});

describe('lint-mta against the test Postfix (postconf -c $MAIL_CONFIG -n)', () => {
  test('the stack configuration has no errors (exit 0)', async () => {
    const { code, out } = await lint();
    assert.equal(out.source, `postconf -c ${stack.postfixConfigDir} -n`);
    assert.deepEqual(
      out.findings.filter((f) => f.severity === 'error'),
      [],
    );
    assert.equal(code, 0);
  });

  test('each weakened setting is flagged (exit 1)', async () => {
    await postconf({
      disable_vrfy_command: 'no',
      smtpd_relay_restrictions: OPEN_RELAY_RESTRICTIONS,
      message_size_limit: '0',
      milter_default_action: 'accept',
      smtpd_milters: `inet:127.0.0.1:8891, inet:127.0.0.1:${stack.milterPort}`,
      milter_command_timeout: '10s',
      smtpd_tls_security_level: 'none',
    });
    try {
      const { code, out } = await lint();
      assert.equal(code, 1);
      assert.equal(out.ok, false);
      const f = out.findings;
      assert.ok(has(f, 'disable_vrfy_command', 'error', /VRFY is enabled/), JSON.stringify(f, null, 1));
      assert.ok(has(f, 'smtpd_relay_restrictions', 'error', /static:OK.*open relay/));
      assert.ok(has(f, 'message_size_limit', 'error', /= 0/));
      assert.ok(has(f, 'milter_default_action', 'error', /fail-open/));
      assert.ok(has(f, 'smtpd_milters', 'error', /after the DKIM milter inet:127\.0\.0\.1:8891/));
      assert.ok(has(f, 'milter_command_timeout', 'warning', /not longer than relayguard's deadline of 20s/));
      assert.ok(has(f, 'smtpd_tls_security_level', 'error', /rule 9 requires TLS/));
      for (const x of f) assert.match(x.fix, /^[a-z_]+ = \S/);

      // The text form prints each finding with its fix, and a summary.
      const text = await runRelayguard(['lint-mta', '--config', policyPath]);
      assert.equal(text.code, 1);
      assert.match(
        text.stdout,
        /^error: disable_vrfy_command: VRFY is enabled.*\n {4}fix: disable_vrfy_command = yes$/m,
      );
      assert.match(text.stdout, /: \d+ error\(s\), \d+ warning\(s\)$/m);
    } finally {
      await restorePostconf();
    }
  });

  test('--postconf FILE and --postconf - read saved postconf -n output instead', async () => {
    const saved = await run('postconf', ['-c', stack.postfixConfigDir, '-n']);
    const file = join(stack.baseDir, `postconf-${process.pid}.txt`);
    writeFileSync(file, saved.stdout);
    const fromFile = await lint(['--postconf', file], { env: { MAIL_CONFIG: '/nonexistent/postfix' } });
    assert.equal(fromFile.code, 0, JSON.stringify(fromFile.out));
    assert.equal(fromFile.out.source, file);
    const weak = `${saved.stdout}disable_vrfy_command = no\n`;
    const fromStdin = await lint(['--postconf', '-'], { input: weak });
    assert.equal(fromStdin.code, 1);
    assert.equal(fromStdin.out.source, 'stdin');
    assert.deepEqual(
      fromStdin.out.findings.filter((x) => x.severity === 'error').map((x) => x.parameter),
      ['disable_vrfy_command'],
    );
  });

  test('postconf that cannot run is an error, not a pass', async () => {
    const r = await runRelayguard(['lint-mta', '--config', policyPath], {
      env: { MAIL_CONFIG: '/nonexistent/postfix' },
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /postconf -c \/nonexistent\/postfix -n/);
  });

  test('the serve start-up check logs the same findings as warnings', async () => {
    const loaded = loadPolicyFile(policyPath);
    assert.ok(loaded.ok);
    await postconf({ disable_vrfy_command: 'no' });
    try {
      let logged = '';
      const sink = new Writable({ write: (c: Buffer, _e, cb) => ((logged += c.toString('utf8')), cb()) });
      const findings = await logMtaLint(loaded.config, createLogger({ format: 'json', level: 'info' }, sink), {
        configDir: stack.postfixConfigDir,
      });
      assert.ok(findings.some((f) => f.parameter === 'disable_vrfy_command' && f.severity === 'error'));
      assert.match(logged, /"level":"warn".*mta lint.*disable_vrfy_command: VRFY is enabled/);
      // No Postfix to ask: skipped quietly, no findings invented.
      const none = await logMtaLint(loaded.config, createLogger({ format: 'json', level: 'info' }, sink), {
        configDir: '/nonexistent/postfix',
      });
      assert.deepEqual(none, []);
      assert.match(logged, /mta lint skipped: postconf -c \/nonexistent\/postfix -n/);
    } finally {
      await restorePostconf();
    }
  });
});
