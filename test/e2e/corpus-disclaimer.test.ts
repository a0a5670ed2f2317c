// A sample of the real-world corpus (test/corpus/SOURCES.md) through the real Postfix with the
// disclaimer-only policy (test/corpus/disclaimer-policy.yaml), outbound and inbound: what smtp-sink
// receives is judged by test/corpus/check_disclaimer.py (Python's email package) exactly as the
// in-process corpus test judges the offline path (test/unit/corpus-disclaimer.test.ts), and must
// be what the offline path produces. The sample is every 15th message of the manifest (about 20),
// leaving out messages with lines longer than Postfix's SMTP client sends unbroken (990 bytes).
//
// Two checks of the unit test cannot be made here: smtp-sink strips the CR of every line, so bare
// LF is not visible, and the second pass runs in-process on the delivered message. Failure
// classes that the unit test still allows today (TODAY in test/support/corpus-disclaimer.ts) are
// reported as a diagnostic only.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCheck } from '../../src/cli/check.js';
import { loadCorpus, type CorpusEntry } from '../support/corpus.js';
import {
  baselineOf,
  disclaimerPolicyFile,
  ENVELOPES,
  loadDisclaimerPolicy,
  TODAY,
  type Direction,
  type FailureClass,
} from '../support/corpus-disclaimer.js';
import { repoRoot } from '../support/mime-compare.js';
import {
  clearQueues,
  ensureStack,
  run,
  smtp,
  startRelayguard,
  waitForDeliveryDetails,
  type RelayguardProcess,
} from './harness.js';

const OUTSIDE = { addr: '203.0.113.9', helo: 'mail.outside.test' };
const SMTP_LINE_LIMIT = 990;

/** The envelope of each direction through Postfix (the stack relays to partner.test). */
const THROUGH_POSTFIX: Record<Direction, { from: string; to: string[]; xclient?: typeof OUTSIDE }> = {
  outbound: { from: 'alice@example.test', to: ['bob@partner.test'] },
  inbound: { from: 'sender@outside.test', to: ['user@example.test'], xclient: OUTSIDE },
};

function sample(corpus: CorpusEntry[]): CorpusEntry[] {
  return corpus.filter(
    (e, i) =>
      i % 15 === 0 &&
      readFileSync(e.path, 'latin1')
        .split(/\r?\n/)
        .every((l) => l.length <= SMTP_LINE_LIMIT),
  );
}

const crlf = (s: Buffer) => Buffer.from(s.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
const bodyOf = (m: Buffer) => {
  const t = m.toString('latin1').replace(/\r\n/g, '\n');
  return t.slice(t.indexOf('\n\n') + 2);
};

let rg: RelayguardProcess;
let entries: CorpusEntry[] = [];
const dir = mkdtempSync(join(tmpdir(), 'rg-corpus-e2e-'));

before(async () => {
  entries = sample(loadCorpus());
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard({ config: disclaimerPolicyFile() });
});

after(async () => {
  await rg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the disclaimer on a corpus sample through Postfix', () => {
  for (const direction of ['outbound', 'inbound'] as Direction[]) {
    test(`${direction}: every sampled message keeps its parts, gets the disclaimer once, and is what the offline path gives`, async (t) => {
      assert.ok(entries.length >= 15, `only ${entries.length} sampled messages`);
      const policy = loadDisclaimerPolicy();
      const problems: string[] = [];
      const jobs: string[] = [];
      try {
        for (const [i, e] of entries.entries()) {
          const raw = readFileSync(e.path);
          const via = THROUGH_POSTFIX[direction];
          const sent = await smtp({
            from: via.from,
            to: via.to,
            data: raw,
            ...(via.xclient ? { xclient: via.xclient } : {}),
          });
          if (!sent.ok) {
            problems.push(`${e.name}: not accepted: ${sent.dataReply?.full ?? sent.error}`);
            continue;
          }
          // The raw bytes: 8-bit text in another charset must not go through a UTF-8 string.
          const delivered = crlf((await waitForDeliveryDetails(sent.queueId!)).raw);
          const env = ENVELOPES[direction];
          const offline = await runCheck(policy, {
            clientIp: env.clientIp,
            from: env.from,
            rcpts: env.rcpts,
            message: raw,
          });
          if (offline.output && bodyOf(offline.output) !== bodyOf(delivered))
            problems.push(`${e.name}: the delivered body differs from the offline check's`);
          const second = await runCheck(policy, {
            clientIp: env.clientIp,
            from: env.from,
            rcpts: env.rcpts,
            message: delivered,
          });
          const files = ['base', 'out', 'second'].map((k) => join(dir, `${direction}-${i}.${k}.eml`));
          writeFileSync(files[0]!, await baselineOf(raw));
          writeFileSync(files[1]!, delivered);
          writeFileSync(files[2]!, second.output ?? delivered);
          jobs.push(
            JSON.stringify({ id: e.name, baseline: files[0], output: files[1], second: files[2], token: env.token }),
          );
        }
      } finally {
        await policy.close();
      }
      const r = await run('/usr/bin/python3', [join(repoRoot(), 'test/corpus/check_disclaimer.py')], {
        input: jobs.join('\n') + '\n',
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      let rewritten = 0;
      const byClass: Record<string, number> = {};
      for (const line of r.stdout.split('\n').filter((l) => l.trim())) {
        const v = JSON.parse(line) as {
          id: string;
          failures: Array<{ class: string; detail: string }>;
          rewritten: number;
        };
        if (v.rewritten > 0) rewritten++;
        for (const f of v.failures) {
          byClass[f.class] = (byClass[f.class] ?? 0) + 1;
          // Today's failure classes (TODAY, counted by the unit test on the whole corpus) are
          // reported, not failed, until issue 15's rewrite removes them there.
          if (!TODAY[f.class as FailureClass]) problems.push(`${v.id}: ${f.class}: ${f.detail}`);
        }
      }
      t.diagnostic(
        `${entries.length} messages, ${rewritten} with the disclaimer; failures by class: ${JSON.stringify(byClass)}`,
      );
      assert.ok(
        rewritten >= entries.length / 2,
        `the disclaimer reached only ${rewritten} of ${entries.length} messages`,
      );
      assert.deepEqual(problems, []);
    });
  }
});
