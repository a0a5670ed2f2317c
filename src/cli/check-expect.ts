// `relayguard check --expect FILE`: compare the offline result with what a test case expects,
// so policy changes can be regression-tested without an MTA. The file (YAML or JSON):
//
//   action: reject                  # accept | reject | tempfail | discard | quarantine
//   smtp: '^550 5\.7\.1 '           # optional: a regular expression the SMTP reply must match
//   output: expected.eml            # optional: the message as delivered (relative to FILE)
//
// Line ends are compared as LF, so an expected .eml edited on any system compares equal.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';

const ACTIONS = ['accept', 'reject', 'tempfail', 'discard', 'quarantine'] as const;
/** Lines shown around the first difference of the delivered message. */
const DIFF_CONTEXT_LINES = 3;

const expectationSchema = z
  .object({
    action: z.enum(ACTIONS),
    smtp: z
      .string()
      .refine(
        (s) => {
          try {
            new RegExp(s);
            return true;
          } catch {
            return false;
          }
        },
        { message: 'not a regular expression' },
      )
      .optional(),
    output: z.string().min(1).optional(),
  })
  .strict();

export type Expectation = z.infer<typeof expectationSchema> & { file: string };

export interface CheckedResult {
  action: string;
  smtp: string | null;
  output?: Buffer;
}

export function loadExpectation(file: string): Expectation {
  const data: unknown = parse(readFileSync(file, 'utf8'));
  const r = expectationSchema.safeParse(data);
  if (!r.success)
    throw new Error(`${file}: ${r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  return { ...r.data, file };
}

/** A unified-diff-like view of the first difference between two texts. */
export function firstDifference(expected: string, actual: string, labels: [string, string]): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - DIFF_CONTEXT_LINES);
  const out = [`--- ${labels[0]}`, `+++ ${labels[1]}`, `@@ line ${i + 1} @@`];
  for (let k = from; k < i; k++) out.push(` ${a[k]}`);
  for (let k = i; k < Math.min(a.length, i + DIFF_CONTEXT_LINES + 1); k++) out.push(`-${a[k]}`);
  for (let k = i; k < Math.min(b.length, i + DIFF_CONTEXT_LINES + 1); k++) out.push(`+${b[k]}`);
  return out.join('\n');
}

const lf = (b: Buffer) => b.toString('latin1').replace(/\r\n/g, '\n');

/** Every way `result` differs from `exp`; empty when it matches. */
export function compareExpectation(exp: Expectation, result: CheckedResult): string[] {
  const problems: string[] = [];
  if (result.action !== exp.action) problems.push(`-action: ${exp.action}\n+action: ${result.action}`);
  if (exp.smtp !== undefined && !new RegExp(exp.smtp).test(result.smtp ?? '')) {
    problems.push(`-smtp: /${exp.smtp}/\n+smtp: ${result.smtp ?? '(no reply)'}`);
  }
  if (exp.output !== undefined) {
    const path = resolve(dirname(exp.file), exp.output);
    const expected = lf(readFileSync(path));
    if (!result.output) problems.push(`-output: ${path}\n+output: (none: the message is not delivered)`);
    else if (lf(result.output) !== expected)
      problems.push(firstDifference(expected, lf(result.output), [path, 'delivered message']));
  }
  return problems;
}

/** For check.ts: the mismatch report, or null when the result is as expected. */
export function expectationReport(file: string, result: CheckedResult): string | null {
  const problems = compareExpectation(loadExpectation(file), result);
  return problems.length ? `${file}: result differs from the expectation\n${problems.join('\n')}\n` : null;
}
