// The differential MIME fuzzer of issue 16, bounded for npm test: 300 mutants of the hand-made
// attack shapes and of real corpus messages (boundaries, blanks, prefixes, missing delimiters,
// headers without a colon, duplicate Content-Type, folding, case, URL-safe base64, x-uuencode,
// CRLF/LF mixes) go through Python's email package, Perl's MIME::Parser and relayguard. Where
// Python and Perl disagree the shape is ambiguous and relayguard must read it as one of them;
// where they agree it must read it as both. Longer runs: bench/fuzz-mime.ts.
//
// Also the attack-shape fixtures (test/fixtures/mime): Python and Perl still show what their
// readings.json says, and relayguard reads each as one of them and sees every attachment that
// either shows (a part one reading hides is a way past the filters).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { join } from 'node:path';
import { loadCorpus } from '../support/corpus.js';
import { compareDumps, formatReport } from '../support/mime-compare.js';
import { leafNames, relayguardReadings } from '../support/relayguard-readings.js';
import { FUZZ_EXPLANATIONS } from '../support/mime-explanations.js';
import { currentReadings, fixtureDir, fixtureNames, loadReadings } from '../support/mime-fixtures.js';
import { attackSeeds, corpusSeeds, countByOps, runFuzz, type FuzzResult } from '../support/mime-fuzz.js';
import { mutate } from '../support/mime-mutate.js';

const MUTANTS = 300;
const SEED = Number(process.env.RG_FUZZ_SEED ?? 16);
/** RG_FUZZ_STRICT=1: the open bugs of mime-explanations.ts fail the run too. */
const STRICT = process.env.RG_FUZZ_STRICT === '1';

describe('attack-shape fixtures (test/fixtures/mime)', () => {
  it('Python and Perl still read every fixture as its readings.json records', () => {
    const now = currentReadings();
    assert.ok(now.size >= 11, `only ${now.size} fixtures`);
    for (const [name, r] of now) {
      const rec = loadReadings(name);
      assert.deepEqual(
        { python: r.python, perl: r.perl, must_see: r.must_see },
        { python: rec.python, perl: rec.perl, must_see: rec.must_see },
        `${name}: the recorded readings are out of date (node dist/test/support/mime-fixtures.js --record)`,
      );
    }
  });

  it('relayguard reads each fixture as Python or Perl does (in one of its readings) and sees every attachment either shows', () => {
    const problems: string[] = [];
    for (const name of fixtureNames()) {
      const file = join(fixtureDir(), `${name}.eml`);
      const rec = loadReadings(name);
      const readings = relayguardReadings(file);
      const as = (parts: typeof rec.python) => ({ file, ...(Array.isArray(parts) ? { parts } : parts) });
      const ok = readings.some((r) => {
        const vsPy = compareDumps(r, as(rec.python), ['relayguard', 'python']);
        const vsPl = compareDumps(r, as(rec.perl), ['relayguard', 'perl']);
        return !vsPy || !vsPl || vsPl.kinds.every((k) => k === 'text-eol');
      });
      if (!ok) {
        const vsPy = compareDumps(readings[0]!, as(rec.python), ['relayguard', 'python']);
        const vsPl = compareDumps(readings[0]!, as(rec.perl), ['relayguard', 'perl']);
        problems.push(`${name}: reads it as neither (${rec.about})\n${vsPy?.diff}\n${vsPl?.diff}`);
      }
      const seen = leafNames(readings);
      const missed = rec.must_see.filter((f) => !seen.has(f));
      if (missed.length) problems.push(`${name}: no reading of relayguard shows ${missed.join(', ')} (${rec.about})`);
    }
    assert.deepEqual(problems, []);
  });
});

describe(`differential MIME fuzzing (${MUTANTS} mutants, seed ${SEED})`, () => {
  let result: FuzzResult;
  before(() => {
    const seeds = [...attackSeeds(), ...corpusSeeds(loadCorpus(), 60)];
    result = runFuzz(seeds, MUTANTS, SEED);
  });

  it('is deterministic and mutates', () => {
    const seeds = attackSeeds();
    const a = mutate(seeds, 50, SEED);
    const b = mutate(seeds, 50, SEED);
    assert.deepEqual(
      a.map((m) => m.message.toString('latin1')),
      b.map((m) => m.message.toString('latin1')),
    );
    assert.ok(result.changed >= MUTANTS * 0.9, `only ${result.changed} of ${MUTANTS} mutants differ from their seed`);
  });

  it('reaches shapes where Python and Perl disagree (the fuzzer finds ambiguity)', (t) => {
    t.diagnostic(
      `Python/Perl disagree on ${result.pythonPerl.length} of ${MUTANTS} mutants, ${result.pythonPerlNew.length} of them from a seed they read alike`,
    );
    t.diagnostic(`made by the mutation, by operation: ${JSON.stringify(countByOps(result.pythonPerlNew))}`);
    assert.ok(
      result.pythonPerlNew.length > 0,
      'no mutation made Python and Perl disagree: the mutations do not reach the hard cases',
    );
  });

  it('relayguard reads every mutant as Python or Perl does, in one of its readings, or an explanation covers it', (t) => {
    t.diagnostic(
      `relayguard matches both on ${result.relayguardMatched.both}, only python on ${result.relayguardMatched.python}, only perl on ${result.relayguardMatched.perl}`,
    );
    for (const e of FUZZ_EXPLANATIONS) {
      const hits = result.explained[e.id] ?? [];
      if (hits.length)
        t.diagnostic(`${e.open ? 'OPEN ' : ''}${e.id}: ${hits.length} mutants, e.g. ${hits.slice(0, 3).join('; ')}`);
    }
    if (STRICT) {
      const open = FUZZ_EXPLANATIONS.filter((e) => e.open && result.explained[e.id]?.length);
      assert.deepEqual(
        open.map((e) => `${e.id}: ${result.explained[e.id]!.length}`),
        [],
        'RG_FUZZ_STRICT=1: open bugs found by the fuzzer',
      );
    }
    assert.equal(
      result.relayguard.length,
      0,
      formatReport(`relayguard reads differently (replay: RG_FUZZ_SEED=${SEED})`, result.relayguard),
    );
  });

  it('no reading of relayguard misses an attachment that Python or Perl shows', () => {
    assert.deepEqual(
      result.missedAttachments,
      [],
      `attachment names a client shows that the content rule never sees (replay: RG_FUZZ_SEED=${SEED})`,
    );
  });
});
