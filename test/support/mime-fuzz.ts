// One differential fuzz run: mutants of the seed messages (mime-mutate.ts) through Python's email
// package, Perl's MIME::Parser and relayguard (when its dumper is built), compared with
// mime-compare.ts. Used by test/unit/mime-fuzz-differential.test.ts (a bounded run in npm test)
// and bench/fuzz-mime.ts (long runs).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CorpusEntry } from './corpus.js';
import { compareDumps, dumpers, relayguardDumperPresent, runDumper, type DiffKind, type Disagreement, type MimeDump } from './mime-compare.js';
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
  /** relayguard matches neither Python nor Perl (null: relayguard's dumper is not built). */
  relayguard: Disagreement[] | null;
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
      seeds.filter((_s, i) => !tolerated(compareDumps(py.get(seedFiles[i]!)!, pl.get(seedFiles[i]!)!, ['python', 'perl']), ['text-eol'])).map((s) => s.name),
    );
    const rg: Map<string, MimeDump> | null = relayguardDumperPresent() ? runDumper(d.relayguard, files) : null;
    const pythonPerl: Disagreement[] = [];
    const pythonPerlNew: Disagreement[] = [];
    const relayguard: Disagreement[] = [];
    const matched = { both: 0, python: 0, perl: 0 };
    files.forEach((f, i) => {
      const label = `${mutants[i]!.name} (${f})`;
      const pp = compareDumps(py.get(f)!, pl.get(f)!, ['python', 'perl']);
      if (pp && !tolerated(pp, ['text-eol'])) {
        pythonPerl.push({ ...pp, file: label });
        if (!ambiguousSeeds.has(mutants[i]!.name.split('#')[0]!)) pythonPerlNew.push({ ...pp, file: label });
      }
      if (!rg) return;
      const vsPy = compareDumps(rg.get(f)!, py.get(f)!, ['relayguard', 'python']);
      const vsPl = compareDumps(rg.get(f)!, pl.get(f)!, ['relayguard', 'perl']);
      const okPy = tolerated(vsPy, []);
      const okPl = tolerated(vsPl, ['text-eol']);
      if (okPy && okPl) matched.both++;
      else if (okPy) matched.python++;
      else if (okPl) matched.perl++;
      else relayguard.push({ ...vsPy!, file: `${label} vs python` }, { ...vsPl!, file: `${label} vs perl` });
    });
    return { mutants, changed, pythonPerl, pythonPerlNew, relayguard: rg ? relayguard : null, relayguardMatched: matched, dir };
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
