// The one way relayguard runs another program (postconf, postqueue, postsuper, postcat,
// sendmail, systemd-notify, getent): no shell, a deadline, a cap on what it may print, and errors that
// name the command line and say what went wrong. A non-zero exit is a result, not an error
// (postsuper reports on stderr and the caller judges); `runChecked` turns it into one.
import type { Writable } from 'node:stream';
import { loadOnFirstUse } from '../primitives/first-use.js';

// node:child_process is loaded when a program is first run, not by every process that imports
// this file: `validate`, `check` and the other commands that run no program never load it (serve
// does, for `postconf` at start).
const childProcess = loadOnFirstUse<typeof import('node:child_process')>(import.meta.url, 'node:child_process');

/** Default deadline for one run. */
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
/** Default cap on stdout (and on stderr, each): `postqueue -j` of a large queue stays well below. */
const DEFAULT_EXEC_MAX_OUTPUT = 64 * 1024 * 1024;
/** How many of the last stderr lines an error quotes. */
const QUOTED_LINES = 3;

/** The program could not run, ran too long, printed too much, was aborted, or (runChecked) failed. */
export class ExecError extends Error {
  override name = 'ExecError';
  constructor(
    message: string,
    /** The exit status when the program ran and failed; undefined otherwise. */
    readonly exitCode?: number,
  ) {
    super(message);
  }
}

export interface ExecOptions {
  timeoutMs?: number;
  /** Largest stdout (or stderr) accepted, in bytes. */
  maxOutputBytes?: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** "postsuper -c /etc/postfix -d ID hold", for messages. */
function commandLine(program: string, args: readonly string[]): string {
  return [program, ...args].join(' ');
}

/** The last lines a failed program printed (stderr, else stdout), joined for one message line. */
function lastLines(r: Pick<ExecResult, 'stdout' | 'stderr'>): string {
  return (r.stderr || r.stdout).trim().split('\n').slice(-QUOTED_LINES).join('; ');
}

/** The error for a run that exited non-zero: "CMD: exit N: last lines". */
export function exitError(program: string, args: readonly string[], r: ExecResult): ExecError {
  const text = lastLines(r);
  return new ExecError(`${commandLine(program, args)}: exit ${r.code}${text ? `: ${text}` : ''}`, r.code);
}

/**
 * Runs `program args` and resolves with its exit status and output, whatever the status. Rejects
 * (ExecError) only when it cannot start, exceeds the deadline or the output cap, or is aborted.
 */
export function runProgram(program: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const maxBuffer = opts.maxOutputBytes ?? DEFAULT_EXEC_MAX_OUTPUT;
  const what = commandLine(program, args);
  return new Promise((resolve, reject) => {
    childProcess().execFile(
      program,
      [...args],
      {
        timeout: timeoutMs,
        maxBuffer,
        encoding: 'utf8',
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.env ? { env: opts.env } : {}),
      },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        if (e.name === 'AbortError') return reject(new ExecError(`${what}: aborted`));
        if (e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER')
          return reject(new ExecError(`${what}: printed more than ${maxBuffer} bytes; stopped`));
        if (typeof e.code === 'string') return reject(new ExecError(`${what}: cannot run ${program} (${e.code})`));
        if (e.killed) return reject(new ExecError(`${what}: no answer within ${timeoutMs} ms; stopped`));
        resolve({ code: typeof e.code === 'number' ? e.code : 1, stdout, stderr });
      },
    );
  });
}

/** Runs `program args` and resolves with its stdout; a non-zero exit rejects like the other failures. */
export async function runChecked(program: string, args: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const r = await runProgram(program, args, opts);
  if (r.code !== 0) throw exitError(program, args, r);
  return r.stdout;
}

/**
 * Runs `program args` with its stdout piped into `out` (a message that may be large is never
 * held in memory; `out` is not ended). Resolves when it exits 0; rejects with ExecError otherwise.
 */
export function pipeProgram(
  program: string,
  args: readonly string[],
  out: Writable,
  opts: Pick<ExecOptions, 'timeoutMs'> = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const what = commandLine(program, args);
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(program, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Our own timer, not spawn's `timeout`: that one outlives a program that never started.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, timeoutMs);
    child.stdout.pipe(out, { end: false });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      // Only the tail is quoted: keep a bounded amount.
      stderr = (stderr + d.toString('utf8')).slice(-4096);
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new ExecError(`${what}: cannot run ${program} (${e.code ?? e.message})`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      if (signal)
        return reject(
          new ExecError(`${what}: stopped by ${signal}${timedOut ? ` (no end within ${timeoutMs} ms)` : ''}`),
        );
      reject(exitError(program, args, { code: code ?? 1, stdout: '', stderr }));
    });
  });
}

/**
 * Runs `program args` synchronously and returns its stdout, or null when it cannot run, fails or
 * exceeds the deadline (stderr is dropped). For the few lookups made once at start-up, before
 * anything listens (`getent group`).
 */
export function runProgramSync(
  program: string,
  args: readonly string[],
  opts: Pick<ExecOptions, 'timeoutMs' | 'maxOutputBytes'> = {},
): string | null {
  try {
    return childProcess().execFileSync(program, [...args], {
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
      maxBuffer: opts.maxOutputBytes ?? DEFAULT_EXEC_MAX_OUTPUT,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return null;
  }
}
