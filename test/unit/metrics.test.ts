// The metrics a scrape sees (the reference policy loaded, so every rule's metrics exist) pass
// `promtool check metrics` and the same naming rules checked here without promtool (no double
// prefix, _total only on counters); the example alert rules pass `promtool check rules` and their
// unit tests; the Grafana dashboard is valid JSON whose queries name only metrics that exist.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { silentLogger } from '../../src/ops/logging.js';
import { messagesTotal, phaseSeconds, registry } from '../../src/ops/metrics.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { PACKAGE_ROOT } from '../../src/cli/command.js';
import '../../src/cli/serve.js';

const promtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;
const NO_PROMTOOL = 'no promtool (Debian package prometheus; test/e2e/stack.sh packages installs it)';
const dir = mkdtempSync(join(tmpdir(), 'rg-metrics-'));
let policy: CompiledPolicy;
let exposition = '';

before(async () => {
  const file = join(PACKAGE_ROOT, 'examples', 'postfix', 'relayguard.yaml');
  const text = readFileSync(file, 'utf8').replace(/state_dir: .*/, `state_dir: ${dir}`);
  const r = parsePolicyText(text, file);
  assert.ok(r.ok);
  policy = new CompiledPolicy(r.config, file, silentLogger());
  messagesTotal.inc({ action: 'accept', direction: 'inbound', phase: 'eom' });
  phaseSeconds.observe({ phase: 'eom' }, 0.01);
  exposition = await registry.metrics();
});

after(async () => {
  await policy?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** name -> type, from the # TYPE lines. */
function types(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** Metric names a PromQL expression refers to, with histogram suffixes taken off. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(relayguard_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''));
}

describe('metrics', () => {
  it('every name starts with relayguard_, no relayguard_process_process_, _total only on counters', () => {
    const t = types(exposition);
    assert.ok(t.size > 20, [...t.keys()].join(' '));
    for (const [name, type] of t) {
      assert.match(name, /^relayguard_/);
      assert.doesNotMatch(name, /relayguard_process_process_|relayguard_.*relayguard_/);
      if (type !== 'counter') assert.doesNotMatch(name, /_total$/, `${name} is a ${type}`);
      if (type === 'counter') assert.match(name, /_total$/, name);
    }
    for (const expected of [
      'relayguard_process_cpu_seconds_total',
      'relayguard_clamd_circuit_open',
      'relayguard_clamd_scans_in_progress',
      'relayguard_offenders_banned',
    ])
      assert.ok(t.has(expected), expected);
  });

  it('passes promtool check metrics', { skip: promtool ? false : NO_PROMTOOL }, () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it(
    'examples/prometheus/alerts.yml passes promtool check rules and its unit tests',
    { skip: promtool ? false : NO_PROMTOOL },
    () => {
      const dirP = join(PACKAGE_ROOT, 'examples', 'prometheus');
      const check = spawnSync('promtool', ['check', 'rules', join(dirP, 'alerts.yml')], { encoding: 'utf8' });
      assert.equal(check.status, 0, check.stdout + check.stderr);
      const unit = spawnSync('promtool', ['test', 'rules', join(dirP, 'alerts.test.yml')], { encoding: 'utf8' });
      assert.equal(unit.status, 0, unit.stdout + unit.stderr);
    },
  );

  it('the alert rules and the Grafana dashboard name only metrics that exist', () => {
    const known = types(exposition);
    const alerts = readFileSync(join(PACKAGE_ROOT, 'examples', 'prometheus', 'alerts.yml'), 'utf8');
    const dashboard = JSON.parse(
      readFileSync(join(PACKAGE_ROOT, 'examples', 'grafana', 'relayguard.json'), 'utf8'),
    ) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
      templating: { list: Array<{ query?: unknown }> };
    };
    const exprs = [
      ...[...alerts.matchAll(/expr: (?:\|\n((?:\s{10}.*\n)+)|(.*))/g)].map((m) => (m[1] ?? m[2])!),
      ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
      ...dashboard.templating.list.map((v) => JSON.stringify(v.query ?? '')),
    ];
    const used = new Set(exprs.flatMap(metricNames));
    assert.ok(used.size >= 12, [...used].join(' '));
    for (const name of used) assert.ok(known.has(name), `${name} is not a metric relayguard exports`);
    // The dashboard covers what the issue asks: decisions per rule and verdict, phase latency, clamd, bans.
    const all = exprs.join('\n');
    for (const m of [
      'relayguard_rule_verdicts_total',
      'relayguard_phase_duration_seconds_bucket',
      'relayguard_clamd_circuit_open',
      'relayguard_offender_bans_total',
    ])
      assert.ok(all.includes(m), m);
  });
});
