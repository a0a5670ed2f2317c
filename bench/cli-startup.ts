// Start-up time of CLI commands, one build against another on a busy machine: fresh processes
// of build A and build B in alternating rounds, each reporting its own wall time from process
// start to exit and its CPU time (user + system), so the medians and B/A per round can be read
// while other work shares the cores. CPU time is the steadier figure under load.
//
//   node dist/bench/cli-startup.js --a OLD/dist/src/cli/main.js [--b dist/src/cli/main.js]
//        [--rounds 15] [--node /opt/relayguard-node/24/bin/node] -- validate -c examples/postfix/relayguard.yaml
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fmt, max, median, min } from './lib/stats.js';

/** Printed by every measured process when it exits: ms since it started, CPU ms. */
const PROBE =
  'data:text/javascript,process.on("exit",()=>{const c=process.cpuUsage();process.stderr.write("\\nRG_STARTUP "+performance.now().toFixed(1)+" "+((c.user+c.system)/1000).toFixed(1)+"\\n")})';

interface Sample {
  wall: number;
  cpu: number;
}

function runOnce(node: string, main: string, args: string[], nodeArgs: string[]): Sample {
  const r = spawnSync(node, [...nodeArgs, '--import', PROBE, main, ...args], { encoding: 'utf8', timeout: 60_000 });
  const m = /RG_STARTUP ([\d.]+) ([\d.]+)/.exec(r.stderr ?? '');
  if (!m) throw new Error(`${main} ${args.join(' ')}: no timing (exit ${r.status}): ${(r.stderr ?? '').slice(0, 400)}`);
  return { wall: Number(m[1]), cpu: Number(m[2]) };
}

function main(): void {
  const argv = process.argv.slice(2);
  const dash = argv.indexOf('--');
  const opts = dash >= 0 ? argv.slice(0, dash) : argv;
  const command = dash >= 0 ? argv.slice(dash + 1) : ['validate'];
  let a = '';
  let b = resolve('dist/src/cli/main.js');
  let rounds = 15;
  let node = process.execPath;
  const nodeArgs: string[] = [];
  for (let i = 0; i < opts.length; i++) {
    const v = () => opts[++i] ?? '';
    switch (opts[i]) {
      case '--a':
        a = resolve(v());
        break;
      case '--b':
        b = resolve(v());
        break;
      case '--rounds':
        rounds = Number(v());
        break;
      case '--node':
        node = v();
        break;
      case '--node-arg':
        nodeArgs.push(v());
        break;
      default:
        throw new Error(`unknown option ${opts[i]}`);
    }
  }
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
