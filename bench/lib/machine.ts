// What the results were measured on: printed with every results table.
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { runCommand } from './proc.js';

export interface MachineInfo {
  date: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  postfix: string;
  load: number[];
}

export async function machineInfo(): Promise<MachineInfo> {
  const postfix = await runCommand('postconf', ['-d', '-h', 'mail_version'], { allowFail: true });
  let os = '';
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    /* not Linux */
  }
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: `${os} ${release()}`.trim(),
    node: process.version,
    postfix: postfix.output.trim(),
    load: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** Machine-wide CPU time so far (all cores, clock ticks), from the first line of /proc/stat. */
export interface CpuTimes {
  total: number;
  /** idle + iowait: time nobody could use. */
  idle: number;
  /** Time the hypervisor gave to someone else (a noisy neighbour on a shared host). */
  steal: number;
}

export function cpuTimes(): CpuTimes {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!;
    const [, ...fields] = line.trim().split(/\s+/);
    const n = fields.map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already counted in user)
    const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
    return { total, idle: (n[3] ?? 0) + (n[4] ?? 0), steal: n[7] ?? 0 };
  } catch {
    return { total: 0, idle: 0, steal: 0 };
  }
}

/**
 * Shares of the machine's CPU between two readings, in percent. An idle share near 0 while a
 * configuration runs slower than another means it costs more CPU; idle time left over while the
 * senders wait means a stall (e.g. delayed-ACK waits), since 20 parallel senders keep a
 * CPU-bound machine busy otherwise.
 */
export function cpuShares(a: CpuTimes, b: CpuTimes): { idlePct: number; stealPct: number } {
  const total = b.total - a.total;
  if (total <= 0) return { idlePct: NaN, stealPct: NaN };
  return { idlePct: (100 * (b.idle - a.idle)) / total, stealPct: (100 * (b.steal - a.steal)) / total };
}
