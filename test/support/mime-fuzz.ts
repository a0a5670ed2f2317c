// One differential fuzz run: mutants of the seed messages (mime-mutate.ts) through Python's email
// package, Perl's MIME::Parser and relayguard (every reading it has, in-process), compared with
// mime-compare.ts. Used by test/unit/mime-fuzz-differential.test.ts (a bounded run in npm test)
// and bench/fuzz-mime.ts (long runs).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CorpusEntry } from './corpus.js';
import { compareDumps, dumpers, runDumper, type DiffKind, type Disagreement } from './mime-compare.js';
import { explain } from './mime-explanations.js';
import { leafNames, relayguardReadings } from './relayguard-readings.js';
import { fixtureDir, fixtureNames } from './mime-fixtures.js';
import { mutate, type Mutant, type Seed } from './mime-mutate.js';

/** Corpus messages used as seeds: multiparts up to 64 KiB, at most `max`, in manifest order. */
export function corpusSeeds(corpus: CorpusEntry[], max: number): Seed[] {
  const out: Seed[] = [];
  for (const e of corpus) {
    if (out.length >= max) break;
    if (statSync(e.path).size > 64 * 1024) continue;
    const message = readFileSync(e.path);
    if (/boundary\s*=/i.test(message.toString('latin1'))) out.push({ name: e.name, message });
  }
  return out;
}

/** The hand-made attack shapes (test/fixtures/mime) as seeds. */
export function attackSeeds(): Seed[] {
  return fixtureNames().map((n) => ({ name: `attack/${n}`, message: readFileSync(join(fixtureDir(), `${n}.eml`)) }));
}

export interface FuzzResult {
  mutants: Mutant[];
  /** Mutants whose bytes differ from their seed. */
  changed: number;
  /** Python and Perl disagree: the ambiguous mutants. */
  pythonPerl: Disagreement[];
  /** The ones among them whose seed Python and Perl read alike: ambiguity the mutation made. */
  pythonPerlNew: Disagreement[];
  /** relayguard matches neither Python nor Perl in any of its readings (two entries per mutant). */
  relayguard: Disagreement[];
  /** Attachment names Python or Perl shows that no reading of relayguard has: filter bypasses. */
  missedAttachments: string[];
  /** Disagreements and missed attachments that an explanation (mime-explanations.ts) covers, by its id. */
  explained: Record<string, string[]>;
  /** Which reading relayguard matched on the ambiguous mutants. */
  relayguardMatched: { both: number; python: number; perl: number };
  dir: string;
}

const tolerated = (d: Disagreement | null, kinds: DiffKind[]) => !d || d.kinds.every((k) => kinds.includes(k));

export function runFuzz(seeds: Seed[], count: number, seed: number, keepDir?: string): FuzzResult {
  const mutants = mutate(seeds, count, seed);
  const dir = keepDir ?? mkdtempSync(join(tmpdir(), 'rg-fuzz-'));
  mkdirSync(dir, { recursive: true });
  const files = mutants.map((m, i) => {
    const f = join(dir, `m${String(i).padStart(5, '0')}.eml`);
    writeFileSync(f, m.message);
    return f;
  });
  const seedFiles = seeds.map((s, i) => {
    const f = join(dir, `seed${String(i).padStart(4, '0')}.eml`);
    writeFileSync(f, s.message);
    return f;
  });
  const bySeed = new Map(seeds.map((s) => [s.name, s.message]));
  const changed = mutants.filter((m) => !m.message.equals(bySeed.get(m.name.split('#')[0]!)!)).length;
  try {
    const d = dumpers();
    const py = runDumper(d.python, [...seedFiles, ...files]);
    const pl = runDumper(d.perl, [...seedFiles, ...files]);
    const ambiguousSeeds = new Set(
      seeds
        .filter(
          (_s, i) =>
            !tolerated(compareDumps(py.get(seedFiles[i]!)!, pl.get(seedFiles[i]!)!, ['python', 'perl']), ['text-eol']),
        )
        .map((s) => s.name),
    );
    const pythonPerl: Disagreement[] = [];
    const pythonPerlNew: Disagreement[] = [];
    const relayguard: Disagreement[] = [];
    const missedAttachments: string[] = [];
    const explained: Record<string, string[]> = {};
    const matched = { both: 0, python: 0, perl: 0 };
    files.forEach((f, i) => {
      const label = `${mutants[i]!.name} (${f})`;
      const pp = compareDumps(py.get(f)!, pl.get(f)!, ['python', 'perl']);
      const agree = tolerated(pp, ['text-eol']);
      if (!agree) {
        pythonPerl.push({ ...pp!, file: label });
        if (!ambiguousSeeds.has(mutants[i]!.name.split('#')[0]!)) pythonPerlNew.push({ ...pp!, file: label });
      }
      const readings = relayguardReadings(f);
      const why = () => explain(mutants[i]!.message, readings[0]!, py.get(f)!, pl.get(f)!);
      const lost = [...leafNames([py.get(f)!, pl.get(f)!])].filter((n) => !leafNames(readings).has(n));
      if (lost.length) {
        const e = why();
        // Only an open bug explains a missed attachment: the others are differences without risk.
        if (e?.open) (explained[e.id] ??= []).push(`${label}: misses ${lost.join(', ')}`);
        else missedAttachments.push(`${label}: ${lost.join(', ')}`);
      }
      // Where Python and Perl agree, relayguard's default reading must be theirs; where they do
      // not, one of its readings must be one of theirs. relayguard's dumper gives no sha256_text:
      // byte-identical to Python where Python and Perl differ only in line ends is both.
      const candidates = agree ? readings.slice(0, 1) : readings;
      const v = candidates.map((r) => ({
        py: tolerated(compareDumps(r, py.get(f)!, ['relayguard', 'python']), []),
        pl: tolerated(compareDumps(r, pl.get(f)!, ['relayguard', 'perl']), ['text-eol']),
      }));
      if (agree && v.some((x) => x.py || x.pl)) matched.both++;
      else if (v.some((x) => x.py)) matched.python++;
      else if (v.some((x) => x.pl)) matched.perl++;
      else if (why()) (explained[why()!.id] ??= []).push(label);
      else {
        const vsPy = compareDumps(readings[0]!, py.get(f)!, ['relayguard', 'python'])!;
        const vsPl = compareDumps(readings[0]!, pl.get(f)!, ['relayguard', 'perl'])!;
        relayguard.push({ ...vsPy, file: `${label} vs python` }, { ...vsPl, file: `${label} vs perl` });
      }
    });
    return {
      mutants,
      changed,
      pythonPerl,
      pythonPerlNew,
      relayguard,
      missedAttachments,
      explained,
      relayguardMatched: matched,
      dir,
    };
  } finally {
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Counts of disagreements by the mutation operations of the mutant (for reports). */
export function countByOps(ds: Disagreement[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of ds) {
    const ops = /#\d+ (\S+)/.exec(d.file)?.[1] ?? '?';
    for (const op of ops.split(',')) out[op] = (out[op] ?? 0) + 1;
  }
  return out;
}
