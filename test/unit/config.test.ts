// Policy loading: every error with file:line:col, unknown keys refused, shipped files valid.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadPolicyFile, parsePolicyText } from '../../src/rules/policy-schema.js';
import { parseDuration, parseSize } from '../../src/primitives/units.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

describe('policy files', () => {
  it('the default policy and the reference gateway policy are valid', () => {
    for (const f of ['policies/default.yaml', 'examples/postfix/relayguard.yaml']) {
      const r = loadPolicyFile(f);
      assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
    }
  });

  it('reports YAML syntax errors by line and column', () => {
    const r = parsePolicyText('server:\n  listen: [a\nrules: {}\n', 'bad.yaml');
    assert.equal(r.ok, false);
    if (!r.ok) assert.ok(r.errors[0]!.line >= 2);
  });

  it('reports duplicate keys, unknown keys and bad values at their position', () => {
    const text = ['server:', '  listen: inet:127.0.0.1:10025', '  listen: inet:127.0.0.1:10026', ''].join('\n');
    const dup = parsePolicyText(text, 'dup.yaml');
    assert.equal(dup.ok, false);
    if (!dup.ok) assert.deepEqual([dup.errors[0]!.line, dup.errors[0]!.col], [3, 3]);

    const bad = parsePolicyText(
      [
        'rules:',
        '  trace_header:',
        '    mode: enforced',
        '    colour: blue',
        'networks:',
        '  internal: [10.0.0.0/33]',
      ].join('\n'),
      'b.yaml',
    );
    assert.equal(bad.ok, false);
    if (!bad.ok) {
      const where = bad.errors.map((e) => `${e.line}:${e.col}`);
      assert.deepEqual(where, ['3:11', '4:5', '6:14']);
      assert.match(bad.errors[1]!.message, /unknown key "colour"/);
    }
  });

  it('reports references to things the policy does not define (cross checks)', () => {
    const r = parsePolicyText(
      [
        'networks:',
        '  groups: { partner: [198.51.100.0/24] }',
        'rules:',
        '  tls:',
        '    require:',
        '      networks: [partnr]',
      ].join('\n'),
      'x.yaml',
    );
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.deepEqual([r.errors[0]!.line, r.errors[0]!.col], [6, 18]);
      assert.match(r.errors[0]!.message, /no network group "partnr"/);
    }
  });

  it('relayguard validate prints file:line:col and exits 1', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rg-validate-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const f = join(dir, 'p.yaml');
    writeFileSync(f, 'rules:\n  trace_header:\n    mode: sometimes\n');
    const r = spawnSync(process.execPath, [CLI, 'validate', '--config', f], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:11: rules\\.trace_header\\.mode`),
    );
    const ok = execFileSync(process.execPath, [CLI, 'validate'], { encoding: 'utf8' });
    assert.match(ok, /default\.yaml: ok/);
  });
});

describe('units', () => {
  it('durations and sizes', () => {
    assert.equal(parseDuration('1500ms'), 1500);
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseSize('2MiB'), 2_097_152);
    assert.equal(parseSize('4M'), 4 * 1024 * 1024);
    assert.throws(() => parseDuration('soon'));
    assert.throws(() => parseSize('2 parsecs'));
  });
});
