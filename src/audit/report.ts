// The audit report in three forms: a table for people, JSON for scripts ({"ok", "probes": [...]})
// and JUnit XML for CI dashboards (one testcase per probe, a failure element when it failed).
import { hostname } from 'node:os';
import type { AuditReport } from './probes.js';

const NAME_WIDTH_MIN = 8;

export function formatTable(r: AuditReport): string {
  const width = Math.max(NAME_WIDTH_MIN, ...r.probes.map((p) => p.name.length));
  const lines = [`relayguard audit ${r.id} of ${r.smtp} (${r.started})`, `${'PROBE'.padEnd(width)}  RESULT  DETAIL`];
  for (const p of r.probes) lines.push(`${p.name.padEnd(width)}  ${(p.ok ? 'ok' : 'FAIL').padEnd(6)}  ${p.detail}`);
  const failed = r.probes.filter((p) => !p.ok).length;
  lines.push(failed ? `${failed} of ${r.probes.length} probes FAILED` : `all ${r.probes.length} probes passed`);
  return lines.join('\n') + '\n';
}

export function formatJson(r: AuditReport): string {
  return JSON.stringify({ ok: r.ok, id: r.id, smtp: r.smtp, started: r.started, probes: r.probes }, null, 2) + '\n';
}

/** XML 1.0 text: escapes markup and drops characters XML cannot carry. */
export function xmlEscape(s: string): string {
  return s
    .replace(/[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

export function formatJunit(r: AuditReport): string {
  const failures = r.probes.filter((p) => !p.ok).length;
  const seconds = (msTotal: number) => (msTotal / 1000).toFixed(3);
  const total = r.probes.reduce((s, p) => s + p.ms, 0);
  const suite = `relayguard audit ${r.smtp}`;
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="relayguard audit" tests="${r.probes.length}" failures="${failures}" errors="0" time="${seconds(total)}">`,
    `  <testsuite name="${xmlEscape(suite)}" tests="${r.probes.length}" failures="${failures}" errors="0" skipped="0" time="${seconds(total)}" timestamp="${xmlEscape(r.started)}" hostname="${xmlEscape(hostname())}">`,
    `    <properties><property name="audit_id" value="${xmlEscape(r.id)}"/><property name="smtp" value="${xmlEscape(r.smtp)}"/></properties>`,
  ];
  for (const p of r.probes) {
    const open = `    <testcase classname="relayguard.audit" name="${xmlEscape(p.name)}" time="${seconds(p.ms)}"`;
    if (p.ok) out.push(`${open}><system-out>${xmlEscape(p.detail)}</system-out></testcase>`);
    else
      out.push(
        `${open}><failure message="${xmlEscape(p.detail)}" type="ProbeFailed">${xmlEscape(p.detail)}</failure></testcase>`,
      );
  }
  out.push('  </testsuite>', '</testsuites>');
  return out.join('\n') + '\n';
}
