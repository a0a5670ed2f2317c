// Long runs of the differential MIME fuzzer (issue 16); test/unit/mime-fuzz-differential.test.ts
// runs 300 mutants of the same generator in npm test.
//
//   node dist/bench/fuzz-mime.js [--count 5000] [--seed 1] [--batch 1000] [--keep DIR]
//
// Mutants of the attack shapes (test/fixtures/mime) and of corpus multiparts go through Python's
// email package, Perl's MIME::Parser and relayguard (every reading it has, in-process),
// in batches with consecutive seeds. Prints, per batch and in total, how often Python and Perl
// disagree (the ambiguous shapes), every mutant relayguard reads as neither, with its diff, and
// every attachment name Python or Perl shows that no reading of relayguard has.
// --keep DIR keeps the mutants (DIR/batch-N/mNNNNN.eml) to replay a finding. Exit 1 when
// relayguard disagreed with both on any mutant or missed an attachment.
import { join } from 'node:path';
import { loadCorpus } from '../test/support/corpus.js';
import { formatReport } from '../test/support/mime-compare.js';
import { attackSeeds, corpusSeeds, countByOps, runFuzz } from '../test/support/mime-fuzz.js';
import { readOptions, whole } from './lib/options.js';

const { count, seed, batch, keep } = readOptions(
  'fuzz-mime',
  {
    args: process.argv.slice(2),
    options: {
      count: { type: 'string', default: '5000' },
      seed: { type: 'string', default: '1' },
      batch: { type: 'string', default: '1000' },
      keep: { type: 'string' },
    },
  },
  ({ values: v }) => ({
    count: whole(v.count, 'count'),
    seed: whole(v.seed, 'seed', 0),
    batch: whole(v.batch, 'batch'),
    keep: v.keep,
  }),
);
const seeds = [...attackSeeds(), ...corpusSeeds(loadCorpus(), 200)];
const started = Date.now();
let ambiguous = 0;
let made = 0;
let failures = 0;
let missed = 0;
const ops: Record<string, number> = {};
const explained: Record<string, number> = {};
for (let done = 0, b = 0; done < count; done += batch, b++) {
  const n = Math.min(batch, count - done);
  const r = runFuzz(seeds, n, seed + b, keep ? join(keep, `batch-${b}`) : undefined);
  ambiguous += r.pythonPerl.length;
  made += r.pythonPerlNew.length;
  for (const [k, v] of Object.entries(countByOps(r.pythonPerlNew))) ops[k] = (ops[k] ?? 0) + v;
  for (const [id, hits] of Object.entries(r.explained)) explained[id] = (explained[id] ?? 0) + hits.length;
  failures += r.relayguard.length / 2;
  missed += r.missedAttachments.length;
  if (r.relayguard.length)
    console.log(formatReport(`batch ${b} (seed ${seed + b}): relayguard reads differently`, r.relayguard));
  for (const m of r.missedAttachments)
    console.log(`batch ${b} (seed ${seed + b}): attachment missed by every reading of relayguard: ${m}`);
  console.log(
    `batch ${b} (seed ${seed + b}): ${n} mutants, Python/Perl disagree on ${r.pythonPerl.length} (${r.pythonPerlNew.length} made by the mutation), relayguard reads ${r.relayguard.length / 2} as neither and misses attachments in ${r.missedAttachments.length}`,
  );
}
console.log(
  `total: ${count} mutants in ${((Date.now() - started) / 1000).toFixed(1)} s; Python/Perl disagree on ${ambiguous} (${made} made by the mutation)`,
);
console.log(`made by operation: ${JSON.stringify(ops)}`);
console.log(`explained (test/support/mime-explanations.ts; OPEN ones are bugs): ${JSON.stringify(explained)}`);
console.log(`relayguard reads ${failures} mutants as neither parser and misses attachments in ${missed}`);
process.exitCode = failures || missed ? 1 : 0;
