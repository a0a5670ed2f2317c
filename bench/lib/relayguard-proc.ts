// Starts `relayguard serve` for the load, memory and profiling tools on a bench policy.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { accepts, alive, startDaemon, waitFor, type Daemon, type SocketAddress } from './proc.js';
import { writePolicy, type PolicyVariant } from './policies.js';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
/** BENCH_RELAYGUARD_MAIN: another build (e.g. a patched copy) for an A/B comparison. */
export const relayguardMain = process.env.BENCH_RELAYGUARD_MAIN ?? join(repoRoot, 'dist', 'src', 'cli', 'main.js');

/** Extra node options for the relayguard processes, e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
export function benchNodeArgs(): string[] {
  return (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
}

export function parseAddress(spec: string): SocketAddress {
  if (spec.startsWith('unix:')) return { kind: 'unix', path: spec.slice(5) };
  const m = /^inet:([^:]+):(\d+)$/.exec(spec);
  if (!m) throw new Error(`bad address ${spec}: use unix:/path or inet:HOST:PORT`);
  return { kind: 'inet', host: m[1]!, port: Number(m[2]) };
}

export interface BenchRelayguard {
  daemon: Daemon;
  policy: string;
  listen: SocketAddress;
}

export async function startBenchRelayguard(opts: {
  variant: PolicyVariant;
  listen: string;
  dir: string;
  clamdAddress: string;
  postfixConfigDir?: string;
  nodeArgs?: string[];
  /** Another build's dist/src/cli/main.js (A/B runs); default relayguardMain. */
  main?: string;
}): Promise<BenchRelayguard> {
  const policyDir = join(opts.dir, 'policies');
  const stateDir = join(opts.dir, 'state');
  const logDir = join(opts.dir, 'log');
  for (const d of [policyDir, stateDir, logDir]) mkdirSync(d, { recursive: true });
  const policy = writePolicy(opts.variant, {
    referencePolicy: join(repoRoot, 'examples', 'postfix', 'relayguard.yaml'),
    outDir: policyDir,
    stateDir,
    postfixConfigDir: opts.postfixConfigDir ?? join(opts.dir, 'pf', 'etc'),
    clamdAddress: opts.clamdAddress,
  });
  const listen = parseAddress(opts.listen);
  const daemon = startDaemon(
    `relayguard-${opts.variant}`,
    process.execPath,
    [
      ...(opts.nodeArgs ?? []),
      opts.main ?? relayguardMain,
      'serve',
      '--config',
      policy,
      '--listen',
      opts.listen,
      '--metrics',
      'off',
    ],
    join(logDir, `relayguard-${opts.variant}.log`),
  );
  await waitFor(
    async () => {
      if (!alive(daemon.pid)) throw new Error(`relayguard exited; see ${daemon.logFile}`);
      return (await accepts(listen)) ? true : undefined;
    },
    30_000,
    `relayguard on ${opts.listen}`,
  );
  return { daemon, policy, listen };
}
