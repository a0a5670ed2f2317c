// `relayguard postfix-config --apply`: runs the `postconf -e` changes against the live main.cf,
// after a dated backup of it, and shows what changed as a diff. Parameters that main.cf sets
// more than once (the "add to main.cf, later lines win" habit) are folded into one entry first,
// keeping the value Postfix uses, so that afterwards no Postfix tool warns "overriding earlier
// entry". When postconf fails half-way the backup is put back: nothing is lost.
import { exitError, runProgram, type ExecResult } from '../ops/exec.js';
import { constants, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { paramValue, parsePostconf } from './postconf.js';
import type { PostfixChange } from './postfix-changes.js';
import { unifiedDiff } from './text-diff.js';

export interface ApplyOptions {
  program: string;
  configDir: string;
  timeoutMs: number;
  /** For tests: the time in the backup's name. */
  now?: Date;
}

export interface ApplyResult {
  backup: string | null;
  /** Unified diff of main.cf, backup -> now ("" when nothing changed). */
  diff: string;
  /** Parameters that were set more than once and are now set once. */
  folded: string[];
  /** Warnings `postconf -n` still prints afterwards (should be none). */
  warnings: string[];
}

/** Names main.cf sets more than once, in order of first appearance. */
export function repeatedParameters(mainCf: string): string[] {
  const seen = new Map<string, number>();
  for (const line of mainCf.split(/\r?\n/)) {
    const m = /^([A-Za-z0-9_.-]+)\s*=/.exec(line);
    if (m) seen.set(m[1]!, (seen.get(m[1]!) ?? 0) + 1);
  }
  return [...seen].filter(([, n]) => n > 1).map(([k]) => k);
}

/** main.cf.relayguard-20261207-051500 (UTC), beside main.cf. */
export function backupName(mainCf: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${mainCf}.relayguard-${stamp}`;
}

/** Copies main.cf to a backup name not taken yet (a second run in the same second gets "-2"). */
function keepBackup(mainCf: string, now: Date): string {
  const name = backupName(mainCf, now);
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? name : `${name}-${n}`;
    try {
      copyFileSync(mainCf, candidate, constants.COPYFILE_EXCL);
      return candidate;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 100) throw err;
    }
  }
}

/** postconf's answers are small. */
const MAX_POSTCONF_OUTPUT = 4 * 1024 * 1024;

/** Runs postconf; its warnings (stderr) matter here, so the whole result comes back. */
async function postconf(opts: ApplyOptions, args: string[]): Promise<ExecResult> {
  const full = ['-c', opts.configDir, ...args];
  const r = await runProgram(opts.program, full, { timeoutMs: opts.timeoutMs, maxOutputBytes: MAX_POSTCONF_OUTPUT });
  if (r.code !== 0) throw exitError(opts.program, full, r);
  return r;
}

export async function applyPostfixChanges(changes: readonly PostfixChange[], opts: ApplyOptions): Promise<ApplyResult> {
  const mainCf = join(opts.configDir, 'main.cf');
  const before = readFileSync(mainCf, 'utf8');
  const repeated = repeatedParameters(before);
  const toSet = changes.filter((c) => !c.suggestion);
  if (!toSet.length && !repeated.length) return { backup: null, diff: '', folded: [], warnings: [] };

  const backup = keepBackup(mainCf, opts.now ?? new Date());
  // The value Postfix uses for a repeated parameter is its last one: keep it, once.
  const live = parsePostconf(before);
  const assignments = new Map<string, string>(repeated.map((n) => [n, paramValue(live, n)]));
  for (const c of toSet) assignments.set(c.name, c.value);
  try {
    if (repeated.length) await postconf(opts, ['-X', ...repeated]);
    await postconf(opts, ['-e', ...[...assignments].map(([n, v]) => `${n} = ${v}`)]);
  } catch (err) {
    copyFileSync(backup, mainCf);
    throw new Error(`${(err as Error).message}; main.cf restored from ${backup}`, { cause: err });
  }
  const after = readFileSync(mainCf, 'utf8');
  const check = await postconf(opts, ['-n']);
  const warnings = check.stderr.split('\n').filter((l) => /warning:/.test(l));
  return { backup, diff: unifiedDiff(before, after, backup, mainCf), folded: repeated, warnings };
}
