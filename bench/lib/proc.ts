// Process plumbing for the benchmark and the fault runs: start daemons with their output in a
// log file, read a process's own CPU accounting and memory high-water mark from /proc, wait for
// sockets, stop exactly the processes we started (by pid, never by name).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_MS = 50;
/** Clock ticks per second for utime/stime in /proc/PID/stat (USER_HZ; 100 on every Linux build we know). */
export const CLOCK_TICKS_PER_S = 100;

export interface ProcUsage {
  /** utime + stime of the process itself, in milliseconds. */
  cpuMs: number;
  /** VmHWM: peak resident set size, KiB. */
  hwmKiB: number;
  /** VmRSS: current resident set size, KiB. */
  rssKiB: number;
}

/** CPU time and memory of one process from /proc (its own accounting, not its children's). */
export function procUsage(pid: number): ProcUsage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { cpuMs: ((utime + stime) * 1000) / CLOCK_TICKS_PER_S, hwmKiB: kib('VmHWM'), rssKiB: kib('VmRSS') };
}

/** Sum of procUsage over several processes (a daemon with worker processes). */
export function usageOf(pids: number[]): ProcUsage {
  const all = pids.filter(alive).map(procUsage);
  return {
    cpuMs: all.reduce((a, u) => a + u.cpuMs, 0),
    hwmKiB: all.reduce((a, u) => a + u.hwmKiB, 0),
    rssKiB: all.reduce((a, u) => a + u.rssKiB, 0),
  };
}

/** Running and not a zombie (orphans may be reaped slowly here). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Direct children of `pid` (e.g. a multiplexor's workers), from /proc. */
export function childrenOf(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text ? text.split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

export async function waitFor<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  ms: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

export type SocketAddress = { kind: 'inet'; host: string; port: number } | { kind: 'unix'; path: string };

/** True once something accepts a connection on the address. */
export function accepts(addr: SocketAddress, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    if (addr.kind === 'unix' && !existsSync(addr.path)) return resolve(false);
    const s = addr.kind === 'unix' ? connect(addr.path) : connect(addr.port, addr.host);
    const done = (ok: boolean) => (s.destroy(), resolve(ok));
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export interface Daemon {
  name: string;
  pid: number;
  child: ChildProcess | null;
  logFile: string;
  /** SIGTERM, then SIGKILL after `ms`; resolves when the process is gone. */
  stop(ms?: number): Promise<void>;
}

/** Starts a foreground daemon with stdout and stderr appended to `logFile`. */
export function startDaemon(
  name: string,
  cmd: string,
  args: string[],
  logFile: string,
  env: NodeJS.ProcessEnv = process.env,
): Daemon {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env, detached: false });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
  child.on('error', () => undefined);
  liveDaemons.add(child);
  child.once('exit', () => liveDaemons.delete(child));
  return daemonHandle(name, child.pid, child, logFile);
}

/** A handle for a process that daemonised itself (pid from its pid file). */
export function adoptDaemon(name: string, pid: number, logFile: string): Daemon {
  return daemonHandle(name, pid, null, logFile);
}

function daemonHandle(name: string, pid: number, child: ChildProcess | null, logFile: string): Daemon {
  return {
    name,
    pid,
    child,
    logFile,
    async stop(ms = 10_000) {
      if (!alive(pid)) return;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      const deadline = Date.now() + ms;
      while (alive(pid) && Date.now() < deadline) await sleep(POLL_MS);
      if (alive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        while (alive(pid)) await sleep(POLL_MS);
      }
    },
  };
}

const liveDaemons = new Set<ChildProcess>();
let hooked = false;
/** On exit (also after an exception), kill the foreground daemons this process started. */
export function killDaemonsOnExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const c of liveDaemons) c.kill('SIGKILL');
  };
  process.once('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** Runs a command to completion; rejects on a non-zero exit with its output. */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; allowFail?: boolean } = {},
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (err) => (clearTimeout(timer), reject(err)));
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${output}`));
      else resolve({ code, output });
    });
  });
}
