// Rule 6: content filtering at end of message, per direction. Attachments are judged by name
// (also inside zips), type and size; text parts are searched by phrases, RE2 regular
// expressions and data-leak detectors (payment card numbers); a message whose MIME structure is
// too deep or has too many parts is refused rather than parsed. Each finding's action is
// reject, quarantine or tag (a header naming the rules), and the strongest one decides.
import { messageInput } from '../mime/parse/shared.js';
import { mimeAmbiguousTotal } from '../ops/mime-metrics.js';
import { modify, pass, reject, tempfail, type Modification, type SmtpOverride, type Verdict } from '../policy/types.js';
import { contentAudit } from './content/audit.js';
import { defineRule } from '../policy/rule-env.js';
import { compileContent, scanMessage, type Finding, type FindingAction, type ScanReport } from './content/scanner.js';
import { contentSchema } from './content/schema.js';

/** RFC 3463 X.6.0: other or undefined media error - the MIME structure itself is refused. */
const STRUCTURE_REFUSED: SmtpOverride = { code: 554, enhanced: '5.6.0' };
const STRUCTURE_TEMPFAIL: SmtpOverride = { code: 451, enhanced: '4.6.0' };
/** RFC 3463 X.7.1: delivery not authorized, message refused. */
const CONTENT_REFUSED: SmtpOverride = { code: 550, enhanced: '5.7.1' };

const STRENGTH: readonly FindingAction[] = ['reject', 'tempfail', 'quarantine', 'tag'];

export const contentRule = defineRule({
  name: 'content',
  summary:
    'Blocks dangerous attachments (also in zips), searches text for phrases, patterns and card numbers, refuses MIME bombs.',
  schema: contentSchema,
  mta: {
    init: () => [
      '  content:',
      '    # enforce: attachments of these types (also inside zips) and MIME bombs are refused (550 5.7.1,',
      '    # 554 5.6.0).',
      '    mode: monitor',
      '    attachments:',
      '      direction: both',
      '      blocked_extensions: [exe, scr, js, vbs, bat, cmd, com, ps1]',
      '      action: reject',
      '    limits:',
      '      max_depth: 20',
      '      max_parts: 500',
      '      action: reject',
    ],
  },
  audit: contentAudit,
  create(config) {
    const compiled = compileContent(config);
    return {
      name: 'content',
      mode: config.mode,
      needs: { actions: ['quarantine', 'addHeader'] },
      handlers: {
        async eom({ msg, signal }) {
          if (!msg) return pass();
          const report = await scanMessage(messageInput(msg), compiled, msg.direction, signal);
          for (const kind of report.ambiguities) mimeAmbiguousTotal.inc({ kind });
          return verdictOf(report, config.tag_header);
        },
      },
    };
  },
});

function verdictOf(report: ScanReport, tagHeader: string): Verdict {
  const details = traceOf(report);
  if (report.findings.length === 0) return pass(details);
  const strongest = STRENGTH.find((a) => report.findings.some((f) => f.action === a))!;
  const deciding = report.findings.filter((f) => f.action === strongest);
  const reason = summarise(deciding);
  const tagged = [...new Set(report.findings.filter((f) => f.action === 'tag').map((f) => f.rule))];
  const mods: Modification[] = tagged.length ? [{ type: 'addHeader', name: tagHeader, value: tagged.join(', ') }] : [];
  const structural = deciding[0]!.rule === 'limits';
  switch (strongest) {
    case 'reject':
      return reject(reason, structural ? STRUCTURE_REFUSED : CONTENT_REFUSED, details);
    case 'tempfail':
      return tempfail(reason, 'policy', STRUCTURE_TEMPFAIL, details);
    case 'quarantine':
      // The hold keeps the tags: whoever releases the message sees why it was held.
      return { action: 'quarantine', reason, cause: 'policy', ...(mods.length ? { mods } : {}), details };
    case 'tag':
      return modify(mods, details);
  }
  return pass(details);
}

function summarise(findings: Finding[]): string {
  const first = findings[0]!.reason;
  return findings.length > 1 ? `${first} (and ${findings.length - 1} more)` : first;
}

function traceOf(report: ScanReport): Record<string, unknown> {
  const details: Record<string, unknown> = { parts: report.walk.parts, scan: report.walk.status };
  if (report.findings.length)
    details.findings = report.findings.map((f) => ({
      rule: f.rule,
      action: f.action,
      reason: f.reason,
      ...(f.part ? { part: f.part } : {}),
    }));
  if (report.windowed.length) details.windowed_parts = report.windowed;
  if (report.ambiguities.length) details.ambiguous = report.ambiguities;
  return details;
}
