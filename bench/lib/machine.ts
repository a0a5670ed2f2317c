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
