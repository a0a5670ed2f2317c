// check --expect: an offline result compared with a test case's expectation.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { PACKAGE_ROOT } from '../../src/cli/command.js';
import { compareExpectation, expectationReport, firstDifference, loadExpectation } from '../../src/cli/check-expect.js';

const root = mkdtempSync(join(tmpdir(), 'rg-expect-'));
after(() => rmSync(root, { recursive: true, force: true }));

function caseDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(root, 'case-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe('check --expect', () => {
  it('matches action and smtp regex; reports each mismatch diff-style', () => {
    const dir = caseDir({ 'e.yaml': 'action: reject\nsmtp: "^554 5\\\\.7\\\\.1 "\n' });
    const exp = loadExpectation(join(dir, 'e.yaml'));
    assert.deepEqual(compareExpectation(exp, { action: 'reject', smtp: '554 5.7.1 <x@y>: Relay access denied' }), []);
    assert.deepEqual(compareExpectation(exp, { action: 'accept', smtp: null }), [
      '-action: reject\n+action: accept',
      '-smtp: /^554 5\\.7\\.1 /\n+smtp: (no reply)',
    ]);
  });

  it('reads JSON too, and compares the delivered message relative to the expectation file (CRLF = LF)', () => {
    const dir = caseDir({
      'e.json': '{"action": "accept", "output": "out.eml"}',
      'out.eml': 'Subject: a\n\nline 1\nline 2\n',
    });
    const file = join(dir, 'e.json');
    assert.equal(
      expectationReport(file, {
        action: 'accept',
        smtp: null,
        output: Buffer.from('Subject: a\r\n\r\nline 1\r\nline 2\r\n'),
      }),
      null,
    );
    const report = expectationReport(file, {
      action: 'accept',
      smtp: null,
      output: Buffer.from('Subject: a\r\n\r\nline 1\r\nline two\r\n'),
    });
    assert.match(
      report!,
      /result differs from the expectation\n--- .*out\.eml\n\+\+\+ delivered message\n@@ line 4 @@\n Subject: a\n \n line 1\n-line 2\n/,
    );
    assert.match(report!, /\n\+line two\n/);
    assert.match(
      expectationReport(file, { action: 'reject', smtp: '550 x' })!,
      /-output: .*out\.eml\n\+output: \(none: the message is not delivered\)/,
    );
  });

  it('refuses an expectation it cannot read', () => {
    const dir = caseDir({ 'bad.yaml': 'action: maybe\nsmtp: "("\nextra: 1\n' });
    assert.throws(() => loadExpectation(join(dir, 'bad.yaml')), /action: .*; smtp: not a regular expression; .*extra/);
  });

  it('shows the first difference with context', () => {
    assert.equal(firstDifference('a\nb\nc', 'a\nB\nc', ['x', 'y']), '--- x\n+++ y\n@@ line 2 @@\n a\n-b\n-c\n+B\n+c');
  });
});

describe('relayguard check --expect (the command)', () => {
  const dir = caseDir({
    'policy.yaml': 'local_domains: [example.test]\nrules:\n  relay: {}\n',
    'm.eml': 'From: a@outside.test\nTo: b@elsewhere.test\nSubject: t\n\nhello\n',
    'refused.yaml': 'action: reject\nsmtp: "^554 5\\\\.7\\\\.1 .*Relay access denied"\n',
    'accepted.yaml': 'action: accept\n',
  });
  const check = (expect: string) => {
    const args = [
      join(PACKAGE_ROOT, 'dist/src/cli/main.js'),
      'check',
      '--config',
      join(dir, 'policy.yaml'),
      '--client-ip',
      '203.0.113.9',
      '--from',
      'a@outside.test',
      '--rcpt',
      'b@elsewhere.test',
      '--expect',
      join(dir, expect),
      '--json',
      join(dir, 'm.eml'),
    ];
    try {
      execFileSync(process.execPath, args, { stdio: 'pipe' });
      return { code: 0, stderr: '' };
    } catch (err) {
      const e = err as { status: number; stderr: Buffer };
      return { code: e.status, stderr: e.stderr.toString() };
    }
  };

  it('exits 0 when the result is as expected, 1 with the difference otherwise', () => {
    assert.deepEqual(check('refused.yaml'), { code: 0, stderr: '' });
    const r = check('accepted.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /accepted\.yaml: result differs from the expectation\n-action: accept\n\+action: reject\n/);
  });
});
