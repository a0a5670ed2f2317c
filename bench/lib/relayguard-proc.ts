// Starts `relayguard serve` for the load, memory and profiling tools on a bench policy.
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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

/** How to start one build's `serve`: a command, its arguments and its environment. */
export interface ServeCommand {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/**
 * `serve` the way systemd starts it: through the build's bin/relayguard, which sets the daemon's
 * environment (glibc's malloc), so the memory measured is the memory an installation has. Node
 * is this process's Node, with `nodeArgs`, through a `node` in front of PATH (bin/relayguard runs
 * the first `node` in PATH; the shim execs, so the daemon keeps the pid that is measured). A
 * build without bin/relayguard starts on its main.js.
 */
export function serveCommand(main: string, nodeArgs: string[], serveArgs: string[], shimDir: string): ServeCommand {
  const bin = resolve(dirname(main), '../../../bin/relayguard');
  if (!existsSync(bin))
    return { cmd: process.execPath, args: [...nodeArgs, main, 'serve', ...serveArgs], env: process.env };
  mkdirSync(shimDir, { recursive: true });
  const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  writeFileSync(
    join(shimDir, 'node'),
    `#!/bin/sh\nexec ${[process.execPath, ...nodeArgs].map(quote).join(' ')} "$@"\n`,
  );
  chmodSync(join(shimDir, 'node'), 0o755);
  return {
    cmd: bin,
    args: ['serve', ...serveArgs],
    env: { ...process.env, PATH: `${shimDir}:${process.env.PATH ?? '/usr/bin:/bin'}` },
  };
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
  const serve = serveCommand(
    opts.main ?? relayguardMain,
    opts.nodeArgs ?? [],
    ['--config', policy, '--listen', opts.listen, '--metrics', 'off'],
    join(opts.dir, 'node-shim'),
  );
  const daemon = startDaemon(
    `relayguard-${opts.variant}`,
    serve.cmd,
    serve.args,
    join(logDir, `relayguard-${opts.variant}.log`),
    serve.env,
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
