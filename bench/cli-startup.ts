// Start-up time of CLI commands, one build against another on a busy machine: fresh processes
// of build A and build B in alternating rounds, each timed by bash's `time` (wall, and the CPU
// time, user + system, of the process and its children), so the medians and B/A per round can
// be read while other work shares the cores. CPU time is the steadier figure under load.
//
// A side is a main.js (run as `node [--node-arg ...] main.js COMMAND`) or an executable such as
// bin/relayguard, which then finds --node's directory first in PATH (so it picks that Node's
// start-up snapshot, tools/cli-snapshot.ts).
//
//   node dist/bench/cli-startup.js --a OLD/dist/src/cli/main.js [--b bin/relayguard]
//        [--rounds 15] [--node /opt/relayguard-node/24/bin/node] [--node-arg=--jitless ...]
//        -- validate -c examples/postfix/relayguard.yaml
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { readOptions, whole } from './lib/options.js';
import { fmt, max, median, min } from './lib/stats.js';

interface Sample {
  wall: number;
  cpu: number;
}

/** `time` in bash: wall, user and system seconds with three decimals. */
const TIMED = 'TIMEFORMAT="RG_TIME %3R %3U %3S"; { time "$@" >/dev/null 2>&1; } 2>&1';

function runOnce(node: string, side: string, args: string[], nodeArgs: string[]): Sample {
  const argv = side.endsWith('.js') ? [node, ...nodeArgs, side, ...args] : [side, ...args];
  const r = spawnSync('bash', ['-c', TIMED, 'bash', ...argv], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, PATH: `${dirname(node)}:${process.env.PATH ?? ''}` },
  });
  const m = /RG_TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(r.stdout ?? '');
  if (!m)
    throw new Error(`${side} ${args.join(' ')}: no timing (exit ${r.status}): ${(r.stdout + r.stderr).slice(0, 400)}`);
  return { wall: Number(m[1]) * 1000, cpu: (Number(m[2]) + Number(m[3])) * 1000 };
}

function main(): void {
  const argv = process.argv.slice(2);
  const dash = argv.indexOf('--');
  const command = dash >= 0 ? argv.slice(dash + 1) : ['validate'];
  const { a, b, rounds, node, nodeArgs } = readOptions(
    'cli-startup',
    {
      args: dash >= 0 ? argv.slice(0, dash) : argv,
      options: {
        a: { type: 'string', default: '' },
        b: { type: 'string', default: 'dist/src/cli/main.js' },
        rounds: { type: 'string', default: '15' },
        node: { type: 'string', default: process.execPath },
        'node-arg': { type: 'string', multiple: true, default: [] },
      },
    },
    ({ values: v }) => ({
      a: v.a ? resolve(v.a) : '',
      b: resolve(v.b),
      rounds: whole(v.rounds, 'rounds'),
      node: v.node,
      nodeArgs: v['node-arg'],
    }),
  );
  const builds = a ? [a, b] : [b];
  const samples: Sample[][] = builds.map(() => []);
  const load = [loadavg()[0]!];
  // One unmeasured run each: the page cache holds the files afterwards, as on a used machine.
  for (const m of builds) runOnce(node, m, command, nodeArgs);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? [...builds.keys()].reverse() : [...builds.keys()];
    for (const i of order) samples[i]!.push(runOnce(node, builds[i]!, command, nodeArgs));
  }
  load.push(loadavg()[0]!);
  console.log(
    `relayguard ${command.join(' ')}: ${rounds} alternating rounds, node ${node}, load average ${load.map((x) => x.toFixed(1)).join(' -> ')}`,
  );
  builds.forEach((m, i) => {
    const s = samples[i]!;
    const w = s.map((x) => x.wall);
    const c = s.map((x) => x.cpu);
    console.log(
      `  ${a ? (i ? 'B' : 'A') : ''} ${m}\n    wall ms median ${fmt(median(w))} (${fmt(min(w))}-${fmt(max(w))}), CPU ms median ${fmt(median(c))} (${fmt(min(c))}-${fmt(max(c))})`,
    );
  });
  if (a) {
    const ratio = (k: keyof Sample) => samples[1]!.map((s, r) => s[k] / samples[0]![r]![k]);
    console.log(`  B/A per round, median: wall ${fmt(median(ratio('wall')), 2)}, CPU ${fmt(median(ratio('cpu')), 2)}`);
  }
}

main();
