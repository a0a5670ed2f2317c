// The real-world mail corpus (test/corpus/SOURCES.md): built by test/corpus/collect.sh from Debian
// packages on first use, then reused (the script returns in about a second when nothing changed).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './mime-compare.js';

export interface CorpusEntry {
  /** Absolute path of the message. */
  path: string;
  /** Path relative to the corpus directory, e.g. "cpython/msg_01.txt.eml". */
  name: string;
  /** The Debian package it comes from. */
  pkg: string;
}

export function corpusDir(): string {
  return process.env.RG_CORPUS_DIR ?? '/tmp/rg-corpus';
}

/** Builds the corpus if needed and lists its messages; throws with collect.sh's output if it cannot. */
export function loadCorpus(): CorpusEntry[] {
  const dir = corpusDir();
  const r = spawnSync('bash', [join(repoRoot(), 'test/corpus/collect.sh'), dir], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) {
    throw new Error(
      `test/corpus/collect.sh failed (exit ${r.status}; it needs root and Debian 12's apt):\n${(r.stderr ?? '').slice(-3000)}`,
    );
  }
  const rows = readFileSync(join(dir, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1);
  return rows.map((row) => {
    const [name, , pkg] = row.split('\t') as [string, string, string];
    return { path: join(dir, 'msgs', name), name, pkg };
  });
}
