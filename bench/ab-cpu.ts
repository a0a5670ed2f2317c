// A/B comparison of relayguard's CPU per message between two builds, on a noisy machine: both
// builds run side by side on the same policy, warm, and are measured in alternating rounds, so
// load from elsewhere hits both alike. One message per milter connection, as Postfix sends them.
//
//   node dist/bench/ab-cpu.js --a /path/to/old/dist/src/cli/main.js [--b NEW (default: this build)]
//        [--policy disclaimer] [--size text-5k|multipart-100k] [--rounds 6] [--messages 600]
//        [--concurrency 20] [--warmup 600] [--dir /tmp/rg-ab] [--cpu-prof DIR (profiles B)]
//        [--a-node-args='--max-semi-space-size=4'] [--b-node-args=...] (one build against itself with other
//        V8 flags; with `=`, since the value starts with a dash)
import { mkdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchLayout, clamdUp } from './lib/bench-postfix.js';
import { multipartMessage, textMessage, MESSAGE_KINDS, type MessageKind } from './lib/messages.js';
import { crlf } from './lib/milter-send.js';
import { oneOf, readOptions, UsageError, whole, words } from './lib/options.js';
import { POLICY_VARIANTS, scansWithClamd, type PolicyVariant } from './lib/policies.js';
import { killDaemonsOnExit, procUsage, type Daemon } from './lib/proc.js';
import { relayguardMain, startBenchRelayguard, type BenchRelayguard } from './lib/relayguard-proc.js';
import { fmt, median } from './lib/stats.js';
import { runLoad } from './milter-load.js';

/** Ports of the A/B run's clamd (away from bench/run.sh's and milter-load's). */
const AB_BASE_PORT = 10_940;

interface Options {
  a: string;
  b: string;
  policy: PolicyVariant;
  size: MessageKind;
  rounds: number;
  messages: number;
  concurrency: number;
  warmup: number;
  dir: string;
  cpuProf: string;
  aNodeArgs: string[];
  bNodeArgs: string[];
}

function options(argv: string[]): Options {
  return readOptions(
    'ab-cpu',
    {
      args: argv,
      options: {
        a: { type: 'string' },
        b: { type: 'string', default: relayguardMain },
        policy: { type: 'string', default: 'disclaimer' },
        size: { type: 'string', default: 'text-5k' },
        rounds: { type: 'string', default: '6' },
        messages: { type: 'string', default: '600' },
        concurrency: { type: 'string', default: '20' },
        warmup: { type: 'string', default: '600' },
        dir: { type: 'string', default: '/tmp/rg-ab' },
        'cpu-prof': { type: 'string', default: '' },
        'a-node-args': { type: 'string', default: '' },
        'b-node-args': { type: 'string', default: '' },
      },
    },
    ({ values: v }) => {
      if (!v.a) throw new UsageError("--a (the other build's main.js) is required");
      return {
        a: v.a,
        b: v.b,
        policy: oneOf(v.policy, 'policy', POLICY_VARIANTS),
        size: oneOf(v.size, 'size', MESSAGE_KINDS),
        rounds: whole(v.rounds, 'rounds'),
        messages: whole(v.messages, 'messages'),
        concurrency: whole(v.concurrency, 'concurrency'),
        warmup: whole(v.warmup, 'warmup', 0),
        dir: v.dir,
        cpuProf: v['cpu-prof'],
        aNodeArgs: words(v['a-node-args']),
        bNodeArgs: words(v['b-node-args']),
      };
    },
  );
}

interface RoundResult {
  /** relayguard's CPU ms per message. */
  cpu: number;
  /** clamd's CPU ms per message in the same round (NaN without clamd). */
  clamdCpu: number;
  /** Messages per second of wall time (noisy on a shared machine: a diagnostic). */
  rate: number;
}

/** `messages` messages, each on its own connection, `concurrency` connections at a time. */
async function measure(
  rg: BenchRelayguard,
  message: Buffer,
  messages: number,
  concurrency: number,
  clamdPid?: number,
): Promise<RoundResult> {
  const before = procUsage(rg.daemon.pid).cpuMs;
  const clamdBefore = clamdPid ? procUsage(clamdPid).cpuMs : NaN;
  const started = performance.now();
  let sent = 0;
  while (sent < messages) {
    const n = Math.min(concurrency, messages - sent);
    const r = await runLoad(rg.listen, message, n, 1, Number.POSITIVE_INFINITY);
    if (r.errors.length || r.accepted !== n)
      throw new Error(`${rg.policy}: ${r.errors[0] ?? JSON.stringify(r.otherVerdicts)}`);
    sent += n;
  }
  return {
    cpu: (procUsage(rg.daemon.pid).cpuMs - before) / messages,
    clamdCpu: clamdPid ? (procUsage(clamdPid).cpuMs - clamdBefore) / messages : NaN,
    rate: messages / ((performance.now() - started) / 1000),
  };
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  killDaemonsOnExit();
  const message = crlf(o.size === 'text-5k' ? textMessage() : multipartMessage());
  const daemons: Daemon[] = [];
  try {
    // Policies that scan get one clamd, shared by both builds.
    let clamdAddress = 'tcp:127.0.0.1:1';
    let clamdPid: number | undefined;
    if (scansWithClamd(o.policy)) {
      const layout = benchLayout(join(o.dir, 'clamd'), AB_BASE_PORT);
      mkdirSync(layout.logDir, { recursive: true });
      const clamd = await clamdUp(layout);
      daemons.push(clamd);
      clamdPid = clamd.pid;
      clamdAddress = `tcp:127.0.0.1:${layout.clamdPort}`;
    }
    const start = async (label: string, main: string, nodeArgs: string[] = []) => {
      const dir = join(o.dir, label);
      mkdirSync(join(dir, 'sock'), { recursive: true });
      const rg = await startBenchRelayguard({
        variant: o.policy,
        listen: `unix:${join(dir, 'sock', 'ab.sock')}`,
        dir,
        clamdAddress,
        main,
        nodeArgs,
      });
      daemons.push(rg.daemon);
      return rg;
    };
    const profile: string[] = [];
    if (o.cpuProf) {
      rmSync(o.cpuProf, { recursive: true, force: true });
      mkdirSync(o.cpuProf, { recursive: true });
      profile.push('--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`);
    }
    const builds = [await start('a', o.a, o.aNodeArgs), await start('b', o.b, [...o.bNodeArgs, ...profile])] as const;
    for (const rg of builds) await measure(rg, message, o.warmup, o.concurrency);
    const rounds: [RoundResult[], RoundResult[]] = [[], []];
    const load = [loadavg()[0]!];
    for (let r = 0; r < o.rounds; r++) {
      // Alternate which build goes first, so a trend in the load favours neither.
      const order = r % 2 ? [1, 0] : [0, 1];
      for (const i of order) rounds[i]!.push(await measure(builds[i]!, message, o.messages, o.concurrency, clamdPid));
    }
    load.push(loadavg()[0]!);
    const samples = rounds.map((rs) => rs.map((x) => x.cpu)) as [number[], number[]];
    const [a, b] = samples.map(median) as [number, number];
    const ratios = samples[0].map((x, i) => samples[1][i]! / x);
    const extra = (i: 0 | 1) => {
      const rs = rounds[i];
      const clamd = clamdPid ? `; clamd CPU ms/msg median ${fmt(median(rs.map((x) => x.clamdCpu)), 2)}` : '';
      return `${clamd}; msg/s median ${fmt(median(rs.map((x) => x.rate)))}; peak RSS ${fmt(procUsage(builds[i].daemon.pid).hwmKiB / 1024, 1)} MiB`;
    };
    process.stdout.write(
      [
        `A/B ${o.policy} ${o.size}: ${o.rounds} rounds x ${o.messages} messages, one per connection, ${o.concurrency} at a time; load average ${load.map((x) => x.toFixed(1)).join(' -> ')}`,
        `  A ${o.a} ${o.aNodeArgs.join(' ')}: CPU ms/msg median ${fmt(a, 2)} (${samples[0].map((x) => fmt(x, 2)).join(' ')})${extra(0)}`,
        `  B ${o.b} ${o.bNodeArgs.join(' ')}: CPU ms/msg median ${fmt(b, 2)} (${samples[1].map((x) => fmt(x, 2)).join(' ')})${extra(1)}`,
        `  B/A median ${fmt(b / a, 2)}; per round ${ratios.map((x) => fmt(x, 2)).join(' ')}`,
      ].join('\n') + '\n',
    );
  } finally {
    for (const d of daemons) await d.stop(30_000);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => {
    process.stderr.write(`ab-cpu: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
