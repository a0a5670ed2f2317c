// Runs the disclaimer over corpus messages the way `relayguard check` does (runCheck, in-process:
// the same Conversation, engine and MTA-side modification code as the CLI, without 1,000 process
// starts) and has test/corpus/check_disclaimer.py (Python's email package) judge every output.
// Shared by test/unit/corpus-disclaimer.test.ts and bench or e2e code that wants the same verdicts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCheck } from '../../src/cli/check.js';
import { loadPolicyFile } from '../../src/rules/policy-schema.js';
import { silentLogger } from '../../src/ops/logging.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { applyModifications, splitMessage } from '../../src/session/offline-message.js';
import type { CorpusEntry } from './corpus.js';
import { repoRoot } from './mime-compare.js';

export type Direction = 'outbound' | 'inbound';

export const ENVELOPES: Record<Direction, { clientIp: string; from: string; rcpts: string[]; token: string }> = {
  outbound: { clientIp: '10.0.0.5', from: 'alice@example.test', rcpts: ['bob@elsewhere.test'], token: 'RGCORPUSOUT' },
  inbound: { clientIp: '192.0.2.25', from: 'carol@elsewhere.test', rcpts: ['alice@example.test'], token: 'RGCORPUSIN' },
};

/** Every failure class check_disclaimer.py reports (see its docstring), plus the harness's own. */
export const FAILURE_CLASSES = [
  'check-refused', // runCheck did not accept the message or threw
  'parse-error',
  'tree-changed',
  'attachment-changed',
  'filename-changed',
  'text-lost',
  'text-prefixed',
  'encoding-changed',
  'charset-changed',
  'original-bytes-changed',
  'text-changed-no-disclaimer',
  'disclaimer-repeated',
  'plain-disclaimer-not-at-end',
  'second-pass-changed',
  'signed-changed',
  'bare-lf-added',
  'delimiter-not-on-own-line',
  'checker-error',
] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

/**
 * Failures allowed per class, in messages per direction. All zero since the disclaimer appends
 * (issue 15); before it, the corpus showed 221 messages with encoding-changed, 98
 * original-bytes-changed, 9 text-prefixed, 3 text-lost, 1 tree-changed and 1
 * delimiter-not-on-own-line per direction.
 */
export const TODAY: Partial<Record<FailureClass, number>> = {};

export interface MessageOutcome {
  name: string;
  direction: Direction;
  failures: Array<{ class: FailureClass; detail: string }>;
  /** Text leaves that got the disclaimer. */
  rewritten: number;
  /** The disclaimer rule's own words when it changed nothing (skip code or reason). */
  ruleSays: string;
}

/** The hand-made shapes of issue 15's failure classes (test/fixtures/disclaimer-shapes/*.eml). */
export function disclaimerShapes(): CorpusEntry[] {
  const dir = join(repoRoot(), 'test/fixtures/disclaimer-shapes');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((f) => ({ path: join(dir, f), name: `shapes/${f.slice(0, -4)}`, pkg: 'hand-made' }));
}

export function disclaimerPolicyFile(): string {
  return join(repoRoot(), 'test/corpus/disclaimer-policy.yaml');
}

export function loadDisclaimerPolicy(): CompiledPolicy {
  const file = disclaimerPolicyFile();
  const r = loadPolicyFile(file);
  if (!r.ok) throw new Error(`${file}: ${r.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('; ')}`);
  return new CompiledPolicy(r.config, file, silentLogger(), { offline: true });
}

/** The message as the MTA passes it on when no rule changes anything (CRLF, headers as split). */
export function baselineOf(raw: Buffer): Promise<Buffer> {
  const { headers, body } = splitMessage(raw);
  return applyModifications(headers, body, []);
}

function ruleWords(rules: Array<{ rule: string; details?: Record<string, unknown>; reason?: string }>): string {
  const t = rules.find((r) => r.rule === 'disclaimer');
  if (!t) return 'no disclaimer trace';
  const d = t.details ?? {};
  return String(d.code ?? d.unchanged ?? d.skipped ?? t.reason ?? 'changed');
}

/** Both passes of every message in both directions, then the Python verdicts. */
export async function runCorpusDisclaimer(
  entries: CorpusEntry[],
  directions: Direction[] = ['outbound', 'inbound'],
): Promise<MessageOutcome[]> {
  const policy = loadDisclaimerPolicy();
  const dir = mkdtempSync(join(tmpdir(), 'rg-corpus-disclaimer-'));
  const jobs: string[] = [];
  const outcomes = new Map<string, MessageOutcome>();
  try {
    let n = 0;
    for (const e of entries) {
      const raw = readFileSync(e.path);
      const baseline = await baselineOf(raw);
      for (const direction of directions) {
        const env = ENVELOPES[direction];
        const id = `${direction}:${e.name}`;
        const outcome: MessageOutcome = { name: e.name, direction, failures: [], rewritten: 0, ruleSays: '' };
        outcomes.set(id, outcome);
        try {
          const first = await runCheck(policy, {
            clientIp: env.clientIp,
            from: env.from,
            rcpts: env.rcpts,
            message: raw,
          });
          outcome.ruleSays = ruleWords(first.rules);
          if (first.action !== 'accept' || !first.output) {
            outcome.failures.push({ class: 'check-refused', detail: `${first.action}: ${first.reason ?? ''}` });
            continue;
          }
          const second = await runCheck(policy, {
            clientIp: env.clientIp,
            from: env.from,
            rcpts: env.rcpts,
            message: first.output,
          });
          const base = join(dir, `${n}.base.eml`);
          const out = join(dir, `${n}.out.eml`);
          const again = join(dir, `${n}.second.eml`);
          n++;
          writeFileSync(base, baseline);
          writeFileSync(out, first.output);
          writeFileSync(again, second.output ?? first.output);
          jobs.push(JSON.stringify({ id, baseline: base, output: out, second: again, token: env.token }));
        } catch (err) {
          outcome.failures.push({ class: 'check-refused', detail: `threw: ${(err as Error).message}` });
        }
      }
    }
    const r = spawnSync('/usr/bin/python3', [join(repoRoot(), 'test/corpus/check_disclaimer.py')], {
      input: jobs.join('\n') + '\n',
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status !== 0) throw new Error(`check_disclaimer.py exited ${r.status}: ${r.stderr.slice(0, 3000)}`);
    for (const line of r.stdout.split('\n')) {
      if (!line.trim()) continue;
      const v = JSON.parse(line) as { id: string; failures: MessageOutcome['failures']; rewritten: number };
      const o = outcomes.get(v.id);
      if (!o) throw new Error(`check_disclaimer.py answered for an unknown job ${v.id}`);
      o.failures.push(...v.failures);
      o.rewritten = v.rewritten;
    }
  } finally {
    await policy.close();
    if (!process.env.RG_KEEP_DISCLAIMER_OUTPUT) rmSync(dir, { recursive: true, force: true });
    else console.error(`corpus disclaimer outputs kept in ${dir}`);
  }
  return [...outcomes.values()];
}
