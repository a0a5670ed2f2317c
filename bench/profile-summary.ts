// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by file, so the
// report says where relayguard's time goes before anything is optimised.
//
//   node dist/bench/profile-summary.js PROFILE.cpuprofile [--top 30]
import { readFileSync } from 'node:fs';
import { amount, readOptions, UsageError, whole } from './lib/options.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Drops the samples of the first `skipMs` (start-up: module loading, JIT warm-up). */
export function skipStart(profile: Profile, skipMs: number): Profile {
  let t = 0;
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i] ?? 0;
    if (t >= skipMs * 1000) {
      samples.push(id);
      timeDeltas.push(profile.timeDeltas[i] ?? 0);
    }
  });
  return { ...profile, samples, timeDeltas };
}

export function summarise(profile: Profile, top = 30): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs]
    .filter(([id]) => /\(idle\)/.test(byId.get(id)?.callFrame.functionName ?? ''))
    .reduce((a, [, us]) => a + us, 0);
  const busy = total - idle;
  const short = (url: string) => url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:');
  const fnTotals = new Map<string, number>();
  const fileTotals = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    if (/\(idle\)/.test(n.callFrame.functionName)) continue;
    const file = short(n.callFrame.url) || '(native/VM)';
    const key = `${n.callFrame.functionName || '(anonymous)'} ${file}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    fnTotals.set(key, (fnTotals.get(key) ?? 0) + us);
    const group = file.startsWith('node_modules/') ? file.split('/').slice(0, 2).join('/') : file;
    fileTotals.set(group, (fileTotals.get(group) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const lines = [
    `busy ${(busy / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms sampled`,
    '',
    'self time by file or package:',
  ];
  for (const [k, us] of [...fileTotals].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${k}`);
  lines.push('', 'self time by function:');
  for (const [k, us] of [...fnTotals].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${k}`);
  return lines.join('\n');
}

/** Total (inclusive) time of frames whose function or file matches `re`, as a share of busy time. */
export function inclusiveShare(profile: Profile, re: RegExp): number {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  let hit = 0;
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const n0 = byId.get(id)!;
    if (/\(idle\)/.test(n0.callFrame.functionName)) return;
    busy += dt;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      if (re.test(`${n.callFrame.functionName} ${n.callFrame.url}`)) {
        hit += dt;
        break;
      }
    }
  });
  return busy ? hit / busy : 0;
}

if (process.argv[1]?.endsWith('profile-summary.js')) {
  const { file, top, skipMs, inclusive } = readOptions(
    'profile-summary',
    {
      args: process.argv.slice(2),
      allowPositionals: true,
      options: {
        top: { type: 'string', default: '30' },
        'skip-ms': { type: 'string', default: '0' },
        inclusive: { type: 'string', multiple: true, default: [] },
      },
    },
    ({ values: v, positionals }) => {
      if (positionals.length !== 1)
        throw new UsageError(
          'usage: profile-summary.js PROFILE.cpuprofile [--top N] [--skip-ms MS] [--inclusive REGEX]...',
        );
      return {
        file: positionals[0]!,
        top: whole(v.top, 'top'),
        skipMs: amount(v['skip-ms'], 'skip-ms'),
        inclusive: v.inclusive.map((re) => new RegExp(re)),
      };
    },
  );
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const profile = skipMs > 0 ? skipStart(raw, skipMs) : raw;
  process.stdout.write(summarise(profile, top) + '\n');
  for (const re of inclusive)
    process.stdout.write(`inclusive ${re}: ${(100 * inclusiveShare(profile, re)).toFixed(1)}%\n`);
}
