// Milter-protocol load client: many concurrent milter connections straight to relayguard (no
// Postfix), each sending messages the way Postfix does. Reports errors, stalls and latency.
//
//   node dist/bench/milter-load.js [--connections 500] [--messages 4] [--size text-5k|multipart-100k]
//        [--policy trace|policy|disclaimer|full] [--listen unix:/tmp/rg-bench/load.sock|inet:127.0.0.1:10790]
//        [--connect ADDR (an already running milter instead of starting relayguard)]
//        [--stall-ms 5000] [--cpu-prof DIR]
import { mkdirSync, rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { benchLayout, clamdUp } from './lib/bench-postfix.js';
import {
  multipartMessage,
  textMessage,
  BENCH_RECIPIENT,
  BENCH_SENDER,
  MESSAGE_KINDS,
  type MessageKind,
} from './lib/messages.js';
import { closeMilter, crlf, openMilter, sendMessage, type MessageResult } from './lib/milter-send.js';
import { oneOf, readOptions, whole } from './lib/options.js';
import { POLICY_VARIANTS, scansWithClamd, type PolicyVariant } from './lib/policies.js';
import { killDaemonsOnExit, procUsage, type Daemon, type SocketAddress } from './lib/proc.js';
import { benchNodeArgs, parseAddress, startBenchRelayguard } from './lib/relayguard-proc.js';
import { fmt, max, median } from './lib/stats.js';

/** What Postfix waits for one reply at most (milter_command_timeout; content replies get 300 s). */
const POSTFIX_MILTER_TIMEOUT_MS = 30_000;

interface Options {
  connections: number;
  messages: number;
  size: MessageKind;
  policy: PolicyVariant;
  listen: string;
  connect: string;
  stallMs: number;
  cpuProf: string;
  dir: string;
  basePort: number;
}

function options(argv: string[]): Options {
  return readOptions(
    'milter-load',
    {
      args: argv,
      options: {
        connections: { type: 'string', default: '500' },
        messages: { type: 'string', default: '4' },
        size: { type: 'string', default: 'text-5k' },
        policy: { type: 'string', default: 'full' },
        listen: { type: 'string', default: 'unix:/tmp/rg-bench/sock/load.sock' },
        connect: { type: 'string', default: '' },
        'stall-ms': { type: 'string', default: '5000' },
        'cpu-prof': { type: 'string', default: '' },
        dir: { type: 'string', default: '/tmp/rg-bench' },
      },
    },
    ({ values: v }) => ({
      connections: whole(v.connections, 'connections'),
      messages: whole(v.messages, 'messages'),
      size: oneOf(v.size, 'size', MESSAGE_KINDS),
      policy: oneOf(v.policy, 'policy', POLICY_VARIANTS),
      listen: v.listen,
      connect: v.connect,
      stallMs: whole(v['stall-ms'], 'stall-ms'),
      cpuProf: v['cpu-prof'],
      dir: v.dir,
      basePort: 3230,
    }),
  );
}

export interface LoadReport {
  connections: number;
  messages: number;
  accepted: number;
  otherVerdicts: Record<string, number>;
  errors: string[];
  stalls: number;
  longestGapMs: number;
  firstMessageMs: number;
  latencyMs: { p50: number; p99: number; max: number };
  wallMs: number;
  rate: number;
}

/** Runs `connections` concurrent sessions of `messages` messages each against `addr`. */
export async function runLoad(
  addr: SocketAddress,
  message: Buffer,
  connections: number,
  messages: number,
  stallMs: number,
): Promise<LoadReport> {
  const results: MessageResult[] = [];
  const errors: string[] = [];
  const t0 = performance.now();
  // A stall: once messages flow, a stretch of stallMs in which none finished although some were
  // in flight. (Before the first one finishes, every connection is still on its first message:
  // that wait is reported as the time to the first message.)
  let lastProgress: number | null = null;
  let firstMs = NaN;
  let stalls = 0;
  let longestGap = 0;
  const progress = () => {
    const now = performance.now();
    if (lastProgress === null) firstMs = now - t0;
    else {
      const gap = now - lastProgress;
      longestGap = Math.max(longestGap, gap);
      if (gap > stallMs) stalls++;
    }
    lastProgress = now;
  };
  // Open every connection first: the point is that they are all open at the same time.
  const clients = await Promise.all(
    Array.from({ length: connections }, (_, i) =>
      openMilter(addr).then(
        (c) => c,
        (err: Error) => {
          errors.push(`connection ${i}: ${err.message}`);
          return null;
        },
      ),
    ),
  );
  await Promise.all(
    clients.map(async (c, i) => {
      if (!c) return;
      try {
        for (let m = 0; m < messages; m++) {
          results.push(
            await sendMessage(
              c,
              {
                clientIp: '127.0.0.1',
                clientName: 'localhost',
                helo: `client${i}.bench.test`,
                from: BENCH_SENDER,
                rcpts: [BENCH_RECIPIENT],
              },
              message,
              {
                queueId: `B${i}X${m}`,
                timeoutMs: POSTFIX_MILTER_TIMEOUT_MS,
              },
            ),
          );
          progress();
        }
        closeMilter(c);
      } catch (err) {
        errors.push(`connection ${i}: ${(err as Error).message}`);
        c.client.close();
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const lat = results.map((r) => r.ms).sort((a, b) => a - b);
  const otherVerdicts: Record<string, number> = {};
  for (const r of results)
    if (r.verdict !== 'accept')
      otherVerdicts[`${r.stage}:${r.verdict}`] = (otherVerdicts[`${r.stage}:${r.verdict}`] ?? 0) + 1;
  return {
    connections,
    messages: connections * messages,
    accepted: results.filter((r) => r.verdict === 'accept').length,
    otherVerdicts,
    errors,
    stalls,
    longestGapMs: longestGap,
    firstMessageMs: firstMs,
    latencyMs: { p50: median(lat), p99: lat[Math.floor(lat.length * 0.99)] ?? NaN, max: max(lat) },
    wallMs,
    rate: (results.length * 1000) / wallMs,
  };
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  killDaemonsOnExit();
  const message = crlf(o.size === 'text-5k' ? textMessage() : multipartMessage());
  const daemons: Daemon[] = [];
  let rgPid: number | null = null;
  try {
    let addr: SocketAddress;
    if (o.connect) {
      addr = parseAddress(o.connect);
    } else {
      const layout = benchLayout(o.dir, o.basePort);
      mkdirSync(layout.logDir, { recursive: true });
      mkdirSync(layout.socketDir, { recursive: true });
      if (scansWithClamd(o.policy)) daemons.push(await clamdUp(layout));
      const nodeArgs: string[] = benchNodeArgs();
      if (o.cpuProf) {
        rmSync(o.cpuProf, { recursive: true, force: true });
        mkdirSync(o.cpuProf, { recursive: true });
        nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`);
      }
      const rg = await startBenchRelayguard({
        variant: o.policy,
        listen: o.listen,
        dir: o.dir,
        clamdAddress: `tcp:127.0.0.1:${layout.clamdPort}`,
        nodeArgs,
      });
      daemons.unshift(rg.daemon);
      rgPid = rg.daemon.pid;
      addr = rg.listen;
    }
    const before = rgPid ? procUsage(rgPid) : null;
    const r = await runLoad(addr, message, o.connections, o.messages, o.stallMs);
    const after = rgPid ? procUsage(rgPid) : null;
    const lines = [
      `milter load: ${r.connections} concurrent connections x ${o.messages} messages (${o.size}), policy ${o.connect ? o.connect : o.policy}`,
      `  accepted ${r.accepted}/${r.messages}, other verdicts ${JSON.stringify(r.otherVerdicts)}, errors ${r.errors.length} (a reply later than ${POSTFIX_MILTER_TIMEOUT_MS / 1000} s counts as one), stalls (${o.stallMs} ms without any message finishing) ${r.stalls}, longest gap ${fmt(r.longestGapMs)} ms, first message after ${fmt(r.firstMessageMs)} ms`,
      `  latency ms p50 ${fmt(r.latencyMs.p50, 1)} p99 ${fmt(r.latencyMs.p99, 1)} max ${fmt(r.latencyMs.max, 1)}; wall ${fmt(r.wallMs)} ms; ${fmt(r.rate)} msg/s`,
    ];
    if (before && after)
      lines.push(
        `  relayguard CPU ${fmt((after.cpuMs - before.cpuMs) / r.messages, 2)} ms/msg, VmHWM ${fmt(after.hwmKiB / 1024, 1)} MiB`,
      );
    for (const e of r.errors.slice(0, 10)) lines.push(`  error: ${e}`);
    process.stdout.write(lines.join('\n') + '\n');
    process.exitCode = r.errors.length === 0 && r.stalls === 0 && r.accepted === r.messages ? 0 : 1;
  } finally {
    // SIGTERM lets node write the --cpu-prof profile.
    for (const d of daemons) await d.stop(30_000);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => {
    process.stderr.write(`milter-load: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
