// The disclaimer on real mail (issue 15, "a real-world corpus in the test suite"): every corpus
// message (test/corpus/SOURCES.md), outbound and inbound, through the offline check path with a
// disclaimer-only policy (test/corpus/disclaimer-policy.yaml), then judged by Python's email
// package (test/corpus/check_disclaimer.py): it parses, same MIME tree, every attachment
// byte-identical, every rewritten text the original text plus the disclaimer once (flowed text
// unflowed first), a second pass changes nothing, signed and encrypted mail untouched, no new
// bare LF, every delimiter on its own line. One test per failure class and direction, so a
// failure names its class; each lists the messages (RG_KEEP_DISCLAIMER_OUTPUT=1 keeps the files).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { loadCorpus } from '../support/corpus.js';
import {
  disclaimerShapes,
  FAILURE_CLASSES,
  runCorpusDisclaimer,
  TODAY,
  type Direction,
  type MessageOutcome,
} from '../support/corpus-disclaimer.js';

const DIRECTIONS: Direction[] = ['outbound', 'inbound'];

let outcomes: MessageOutcome[] = [];
let seconds = 0;

function report(list: MessageOutcome[], cls: string): string {
  const lines = list.map(
    (o) =>
      `  ${o.name}: ${o.failures
        .filter((f) => f.class === cls)
        .map((f) => f.detail)
        .join('; ')}`,
  );
  return `${list.length} messages: ${cls}\n${lines.slice(0, 40).join('\n')}${lines.length > 40 ? `\n  ... and ${lines.length - 40} more` : ''}`;
}

describe('disclaimer over the real-world corpus (offline check path, judged by Python)', () => {
  before(async () => {
    const started = Date.now();
    outcomes = await runCorpusDisclaimer(loadCorpus());
    seconds = (Date.now() - started) / 1000;
  });

  it('ran every message in both directions, and the disclaimer was added to most', (t) => {
    const counts: Record<string, number> = {};
    for (const o of outcomes)
      for (const f of o.failures) counts[`${o.direction} ${f.class}`] = (counts[`${o.direction} ${f.class}`] ?? 0) + 1;
    const skips: Record<string, number> = {};
    for (const o of outcomes)
      if (o.rewritten === 0) skips[`${o.direction} ${o.ruleSays}`] = (skips[`${o.direction} ${o.ruleSays}`] ?? 0) + 1;
    t.diagnostic(`${outcomes.length} runs in ${seconds.toFixed(1)} s; failures by class: ${JSON.stringify(counts)}`);
    t.diagnostic(`messages without a disclaimer, by what the rule said: ${JSON.stringify(skips)}`);
    assert.ok(outcomes.length >= 500, `only ${outcomes.length} runs`);
    for (const d of DIRECTIONS) {
      const mine = outcomes.filter((o) => o.direction === d);
      const withText = mine.filter((o) => o.rewritten > 0).length;
      // A rule that silently gave up on everything would pass every other test here.
      assert.ok(
        withText >= mine.length * 0.5,
        `${d}: the disclaimer reached only ${withText} of ${mine.length} messages`,
      );
    }
  });

  for (const d of DIRECTIONS) {
    for (const cls of FAILURE_CLASSES) {
      const allowed = TODAY[cls] ?? 0;
      it(`${d}: no ${cls}${allowed ? ` (at most today's ${allowed}, issue 15)` : ''}`, (t) => {
        const bad = outcomes.filter((o) => o.direction === d && o.failures.some((f) => f.class === cls));
        if (bad.length && bad.length <= allowed)
          t.diagnostic(
            `${bad.length} messages (today's ratchet: ${allowed}), e.g. ${bad
              .slice(0, 3)
              .map((o) => o.name)
              .join(', ')}`,
          );
        if (bad.length < allowed)
          t.diagnostic(`${cls}: ${bad.length}, below today's ${allowed}: lower TODAY['${cls}']`);
        assert.ok(bad.length <= allowed, report(bad, cls));
      });
    }
  }
});

/**
 * The hand-made shapes of issue 15's failure classes (test/fixtures/disclaimer-shapes/README.md),
 * judged like the corpus. Every one failed on the disclaimer before the append rewrite (c65dcdd).
 */

describe('disclaimer on the hand-made shapes of issue 15 (test/fixtures/disclaimer-shapes)', () => {
  let shapes: MessageOutcome[] = [];
  before(async () => {
    shapes = await runCorpusDisclaimer(disclaimerShapes());
  });
  for (const e of disclaimerShapes()) {
    const name = e.name.replace(/^shapes\//, '');
    it(`${name}: the disclaimer once, the original intact, in both directions`, () => {
      const mine = shapes.filter((o) => o.name === e.name);
      assert.equal(mine.length, 2);
      const problems = mine.flatMap((o) => [
        ...o.failures.map((f) => `${o.direction}: ${f.class}: ${f.detail}`),
        ...(o.rewritten ? [] : [`${o.direction}: no disclaimer (the rule said: ${o.ruleSays})`]),
      ]);
      assert.deepEqual(problems, []);
    });
  }
});
