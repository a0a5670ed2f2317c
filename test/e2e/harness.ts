// The end-to-end test harness: where the real stack (test/e2e/stack.sh) lives for this slot,
// relayguard as a child process, an SMTP client, and helpers that read what Postfix did
// (maillog, smtp-sink files, hold queue). Every helper is bounded by a timeout: a test fails,
// it never hangs.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDocument } from 'yaml';
import { smtpSession, type SmtpOptions, type SmtpResult } from './smtp-client.js';
import { eicarTestFile } from '../../src/audit/messages.js';

export type { SmtpOptions, SmtpReply, SmtpResult, XclientAttributes } from './smtp-client.js';
export { encodeData, xtext } from './smtp-client.js';

// ------------------------------------------------------------------ where things are

const here = fileURLToPath(new URL('.', import.meta.url));
/** The repository root, from dist/test/e2e/harness.js (compiled) or test/e2e/harness.ts. */
export const repoRoot = resolve(here, basename(resolve(here, '../..')) === 'dist' ? '../../..' : '../..');
export const stackScript = join(repoRoot, 'test', 'e2e', 'stack.sh');
export const relayguardMain = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
export const relayguardBin = join(repoRoot, 'bin', 'relayguard');
export const fixturesDir = join(repoRoot, 'test', 'e2e', 'fixtures');
/** The reference gateway's policy, the default for startRelayguard(). */
export const referencePolicy = join(repoRoot, 'examples', 'postfix', 'relayguard.yaml');

const MAX_SLOT = 49;
const POLL_MS = 50;

function slotFromEnv(): number {
  const raw = process.env.RG_E2E_SLOT ?? '0';
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > MAX_SLOT) throw new Error(`RG_E2E_SLOT must be 0..${MAX_SLOT}, got "${raw}"`);
  return n;
}

/** The reference gateway's loopback ports (slot 0); slot N adds 100*N to each. */
export const BASE_PORTS = {
  smtpd: 2525,
  sink: 2526,
  milter: 10025,
  clamd: 3310,
  rbl: 5353,
  metrics: 9464,
  redis: 6379,
} as const;

function describeStack(slot: number) {
  const port = (base: number) => base + 100 * slot;
  const baseDir = `/tmp/rg-e2e-${slot}`;
  const pfDir = join(baseDir, 'pf');
  const postfixConfigDir = join(pfDir, 'etc');
  return {
    slot,
    host: '127.0.0.1',
    smtpPort: port(BASE_PORTS.smtpd),
    sinkPort: port(BASE_PORTS.sink),
    milterPort: port(BASE_PORTS.milter),
    clamdPort: port(BASE_PORTS.clamd),
    rblPort: port(BASE_PORTS.rbl),
    metricsPort: port(BASE_PORTS.metrics),
    redisPort: port(BASE_PORTS.redis),
    /** relayguard's --listen for this slot (Postfix syntax). */
    milterListen: `inet:127.0.0.1:${port(BASE_PORTS.milter)}`,
    /** For dns.servers / node:dns Resolver.setServers. */
    dnsServer: `127.0.0.1:${port(BASE_PORTS.rbl)}`,
    baseDir,
    pfDir,
    postfixConfigDir,
    mainCf: join(postfixConfigDir, 'main.cf'),
    mainCfBaseline: join(postfixConfigDir, 'main.cf.baseline'),
    masterPidFile: join(pfDir, 'spool', 'pid', 'master.pid'),
    maillog: join(pfDir, 'log', 'maillog'),
    sinkDir: join(pfDir, 'sink'),
    clamdDir: join(baseDir, 'clamd'),
    clamdSocket: join(baseDir, 'clamd', 'clamd.sock'),
    rblDir: join(baseDir, 'rbl'),
    redisDir: join(baseDir, 'redis'),
  };
}

export type StackInfo = ReturnType<typeof describeStack>;
/** This process's slot (RG_E2E_SLOT): the same values `stack.sh env` prints. */
export const stack: StackInfo = describeStack(slotFromEnv());

// ------------------------------------------------------------------ small process helpers

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with a deadline; never rejects on a non-zero exit. */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string | Buffer; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? 30_000,
        env: opts.env ?? process.env,
        cwd: opts.cwd ?? repoRoot,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- an ExecFileException is an Error; @types/node's Omit<> hides that
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(err); // ENOENT etc.
        if (err && err.killed)
          return reject(
            new Error(`${cmd} ${args.join(' ')}: no exit within ${opts.timeoutMs ?? 30_000} ms\n${stderr}`),
          );
        resolvePromise({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

async function mustRun(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

function stackEnv(): NodeJS.ProcessEnv {
  return { ...process.env, RG_E2E_SLOT: String(stack.slot) };
}

async function runStack(command: string, timeoutMs: number): Promise<string> {
  const r = await run('bash', [stackScript, command], { timeoutMs, env: stackEnv() });
  if (r.code !== 0) throw new Error(`stack.sh ${command} failed (${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

let stackChecked: Promise<void> | null = null;
/** Starts the stack if needed (and restores the baseline main.cf); once per process. */
export function ensureStack(): Promise<void> {
  stackChecked ??= runStack('up', 600_000).then(() => undefined);
  return stackChecked;
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portAccepts(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolvePromise(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Polls `probe` until it returns a value other than undefined; throws `what` on timeout. */
export async function pollUntil<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  ms: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(POLL_MS);
  }
}

// ------------------------------------------------------------------ relayguard

export interface StartRelayguardOptions {
  /** Policy file; default: examples/postfix/relayguard.yaml (the reference gateway). */
  config?: string;
  /** Policy text instead of a file. */
  configText?: string;
  extraArgs?: string[];
  /** State directory (offender ledger, quarantine index); default: a fresh one per start. */
  stateDir?: string;
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
  /** Serve metrics on the slot's metrics port (default true); false passes --metrics off. */
  metrics?: boolean;
}

export interface RelayguardProcess {
  pid: number;
  /** The slot-adjusted copy of the policy that this process runs (use it for CLI calls too). */
  configPath: string;
  stateDir: string;
  /** Captured stdout and stderr so far. */
  logs(): string;
  /** Resolves with the first log line matching `re` (also one already logged). */
  waitForLog(re: RegExp, ms?: number): Promise<string>;
  /** Sends `signal` (default SIGTERM), waits for the exit (SIGKILL after `ms`); the exit code. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number | null>;
  /** Sends a signal without waiting (e.g. SIGHUP to reload). */
  signal(signal: NodeJS.Signals): void;
  readonly exited: boolean;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A test that fails half-way must not leave a milter holding the slot's port.
    process.once('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
}

/** Loopback addresses of the reference ports in a policy, moved to this slot's ports. */
export function slotConfigText(text: string, slot = stack.slot): string {
  if (slot === 0) return text;
  const moved = new Map<number, number>(
    [
      BASE_PORTS.clamd,
      BASE_PORTS.rbl,
      BASE_PORTS.smtpd,
      BASE_PORTS.sink,
      BASE_PORTS.metrics,
      BASE_PORTS.redis,
      BASE_PORTS.milter,
    ].map((p) => [p, p + 100 * slot]),
  );
  return text.replace(/\b(127\.0\.0\.1|localhost)(:|@)(\d{4,5})\b/g, (all, host: string, sep: string, port: string) => {
    const to = moved.get(Number(port));
    return to === undefined ? all : `${host}${sep}${to}`;
  });
}

let configCounter = 0;
/**
 * Writes the policy as this slot's relayguard runs it: ports moved to the slot, the state in
 * `stateDir`, Postfix's configuration directory set to the test instance.
 */
export function preparePolicy(opts: { config?: string; configText?: string; stateDir: string }): string {
  const source = opts.config ?? referencePolicy;
  const text = opts.configText ?? readFileSync(source, 'utf8');
  const doc = parseDocument(slotConfigText(text));
  if (doc.errors.length > 0)
    throw new Error(`policy ${opts.configText ? '(text)' : source} is not YAML: ${doc.errors[0]!.message}`);
  doc.setIn(['server', 'state_dir'], opts.stateDir);
  doc.setIn(['mta', 'config_directory'], stack.postfixConfigDir);
  const dir = join(stack.baseDir, 'relayguard');
  mkdirSync(dir, { recursive: true });
  const name = opts.configText ? 'inline.yaml' : basename(source);
  const path = join(dir, `${process.pid}-${++configCounter}-${name}`);
  writeFileSync(path, doc.toString());
  return path;
}

/** A fresh state directory under the slot's directory. */
export function freshStateDir(): string {
  const dir = join(stack.baseDir, 'relayguard');
  mkdirSync(dir, { recursive: true });
  return mkdtempSync(join(dir, 'state-'));
}

function childEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...process.env, MAIL_CONFIG: stack.postfixConfigDir, RG_E2E_SLOT: String(stack.slot), ...extra };
}

/**
 * Starts `relayguard serve` on this slot's milter port and waits until it accepts connections.
 * Fails at once when something else already holds the port.
 */
export async function startRelayguard(opts: StartRelayguardOptions = {}): Promise<RelayguardProcess> {
  if (!existsSync(relayguardMain)) throw new Error(`${relayguardMain} is missing: run npx tsc -p . first`);
  if (await portAccepts(stack.milterPort))
    throw new Error(`127.0.0.1:${stack.milterPort} is already in use (a relayguard left running?)`);
  const metrics = opts.metrics ?? true;
  if (metrics && (await portAccepts(stack.metricsPort))) {
    throw new Error(
      `127.0.0.1:${stack.metricsPort} (metrics) is already in use by another process: use another RG_E2E_SLOT or metrics: false`,
    );
  }
  const stateDir = opts.stateDir ?? freshStateDir();
  const configPath = preparePolicy({ config: opts.config, configText: opts.configText, stateDir });
  const metricsArg = metrics ? `127.0.0.1:${stack.metricsPort}` : 'off';
  const args = [
    'serve',
    '--config',
    configPath,
    '--listen',
    stack.milterListen,
    '--metrics',
    metricsArg,
    ...(opts.extraArgs ?? []),
  ];
  // As systemd starts it: bin/relayguard (which sets the daemon's malloc environment and starts
  // serve from the bundle test/run-all.sh built), with this Node first in PATH.
  const env = childEnv(opts.env);
  const child = spawn(relayguardBin, args, {
    cwd: repoRoot,
    env: { ...env, PATH: `${dirname(process.execPath)}:${env.PATH ?? ''}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  let output = '';
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitedPromise = new Promise<number | null>((resolvePromise) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolvePromise(code);
    });
  });
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));

  const handle: RelayguardProcess = {
    pid: child.pid!,
    configPath,
    stateDir,
    logs: () => output,
    get exited() {
      return exitInfo !== null;
    },
    signal(sig) {
      if (!exitInfo) child.kill(sig);
    },
    waitForLog(re, ms = 10_000) {
      return pollUntil(
        () => output.split('\n').find((line) => re.test(line)),
        ms,
        `relayguard log line matching ${re}\n--- relayguard output ---\n${output}`,
      );
    },
    async stop(sig = 'SIGTERM', ms = 10_000) {
      if (exitInfo) return (exitInfo as { code: number | null }).code;
      child.kill(sig);
      const killer = setTimeout(() => child.kill('SIGKILL'), ms);
      const code = await exitedPromise;
      clearTimeout(killer);
      // The port is free once the process is gone; wait for it so the next start does not collide.
      await pollUntil(
        async () => ((await portAccepts(stack.milterPort, 200)) ? undefined : true),
        5_000,
        `port ${stack.milterPort} to close`,
      );
      return code;
    },
  };

  const readyMs = opts.readyTimeoutMs ?? 15_000;
  const deadline = Date.now() + readyMs;
  while (!(await portAccepts(stack.milterPort, 200))) {
    if (exitInfo) throw new Error(`relayguard exited (${JSON.stringify(exitInfo)}) before listening:\n${output}`);
    if (Date.now() >= deadline) {
      await handle.stop('SIGKILL');
      throw new Error(`relayguard did not listen on ${stack.milterListen} within ${readyMs} ms:\n${output}`);
    }
    await sleep(POLL_MS);
  }
  // What the suite tests is the bundle administrators run (test/run-all.sh built it after tsc);
  // a silent fall back to dist/src would leave it untested.
  const cmdline = readFileSync(`/proc/${handle.pid}/cmdline`, 'utf8').split('\0');
  if (env.RELAYGUARD_SNAPSHOT !== 'off' && !cmdline[1]?.endsWith('/dist/snapshot/serve.cjs')) {
    await handle.stop('SIGKILL');
    throw new Error(`serve did not start from its bundle (${cmdline.join(' ')}): run npm run build`);
  }
  return handle;
}

/**
 * Runs a relayguard command (check, quarantine, unban ...) with MAIL_CONFIG set to the test
 * Postfix, as an administrator runs it: bin/relayguard, which starts this Node (first in PATH)
 * from the CLI's start-up snapshot that test/run-all.sh built for it.
 */
export function runRelayguard(
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string | Buffer } = {},
): Promise<RunResult> {
  const env = childEnv(opts.env);
  return run(relayguardBin, args, {
    timeoutMs: opts.timeoutMs ?? 30_000,
    env: { ...env, PATH: `${dirname(process.execPath)}:${env.PATH ?? ''}` },
    input: opts.input,
  });
}

// ------------------------------------------------------------------ SMTP

/**
 * Where the maillog stood, and when, as each accepted message was sent. Postfix's short queue
 * ids come back (the queue file's inode and the microsecond), and a slot's maillog and sink
 * directory keep every earlier run's messages: a lookup by queue id alone can find an older
 * message that had the same id.
 */
const submitted = new Map<string, { maillog: number; at: number }>();

/** One SMTP session with this slot's Postfix (see smtp-client.ts for the options). */
export async function smtp(opts: SmtpOptions): Promise<SmtpResult> {
  const mark = { maillog: maillogMark(), at: Date.now() };
  const r = await smtpSession(opts.host ?? stack.host, opts.port ?? stack.smtpPort, opts);
  if (r.queueId) submitted.set(r.queueId, mark);
  return r;
}

// ------------------------------------------------------------------ maillog

/** The maillog's current size: pass it as `since` to only look at what happens afterwards. */
export function maillogMark(): number {
  try {
    return statSync(stack.maillog).size;
  } catch {
    return 0;
  }
}

function readFrom(path: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = statSync(path).size;
    if (size <= offset) return '';
    const buf = Buffer.alloc(size - offset);
    const n = readSync(fd, buf, 0, buf.length, offset);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Incremental reader of complete maillog lines. */
class MaillogCursor {
  private offset: number;
  private partial = '';
  constructor(since: number) {
    this.offset = since;
  }
  lines(): string[] {
    const chunk = readFrom(stack.maillog, this.offset);
    this.offset += Buffer.byteLength(chunk);
    const text = this.partial + chunk;
    const all = text.split('\n');
    this.partial = all.pop() ?? '';
    return all;
  }
}

/** The first maillog line (after byte offset `since`, default: the whole log) matching `re`. */
export async function waitForMaillog(re: RegExp, ms = 10_000, since = 0): Promise<string> {
  const cursor = new MaillogCursor(since);
  return pollUntil(() => cursor.lines().find((l) => re.test(l)), ms, `maillog line matching ${re} in ${stack.maillog}`);
}

// ------------------------------------------------------------------ delivery (smtp-sink)

export interface Delivery {
  /** The message as delivered (Postfix's Received header first), LF line ends (smtp-sink strips CR). */
  message: string;
  raw: Buffer;
  /** Envelope recipients smtp-sink saw (X-Rcpt-Args). */
  rcpts: string[];
  mailFrom: string;
  file: string;
}

const sinkQueueIds = new Map<string, string>(); // sink file name -> Postfix queue id in it
/** A file's time stamp comes from the kernel's coarse clock, which may trail Date.now() by a tick. */
const FILE_CLOCK_SLACK_MS = 100;

/** The queue id in a sink file's first 8 KiB (our Postfix's Received header), if it is there yet. */
function sinkQueueId(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(8192);
    const n = readSync(fd, head, 0, head.length, 0);
    return /\(Postfix\) with \S+ id ([0-9A-Za-z]+)\b/.exec(head.toString('latin1', 0, n))?.[1];
  } finally {
    closeSync(fd);
  }
}

/** Sink file name -> its time stamp when first seen (a file being written only gets newer). */
const sinkTimes = new Map<string, number>();
function sinkTime(name: string): number {
  let t = sinkTimes.get(name);
  if (t === undefined) {
    t = statSync(join(stack.sinkDir, name), { throwIfNoEntry: false })?.mtimeMs ?? 0;
    sinkTimes.set(name, t);
  }
  return t;
}

/**
 * The sink file of the message with this queue id; with `notBefore` (ms since the epoch), only
 * one written since then (an older message may have had the same id), and older files are not
 * even opened (a slot's sink directory keeps every earlier run's messages).
 */
export function sinkFileOf(queueId: string, notBefore?: number): string | undefined {
  let names: string[];
  try {
    names = readdirSync(stack.sinkDir);
  } catch {
    return undefined;
  }
  const recent = (name: string) => notBefore === undefined || sinkTime(name) >= notBefore - FILE_CLOCK_SLACK_MS;
  for (const name of names) {
    const path = join(stack.sinkDir, name);
    let qid = sinkQueueIds.get(name);
    if (qid === undefined) {
      if (!recent(name)) continue;
      qid = sinkQueueId(path);
      if (qid === undefined) continue; // still being written, or not from our Postfix
      sinkQueueIds.set(name, qid);
    }
    if (qid === queueId && recent(name)) return path;
  }
  return undefined;
}

/** Splits smtp-sink's own header block (X-Client-*, X-*-Args, its Received) from the message. */
export function parseSinkFile(raw: Buffer, file = ''): Delivery {
  const text = raw.toString('latin1');
  const lines = text.split('\n');
  const rcpts: string[] = [];
  let mailFrom = '';
  let i = 0;
  for (; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('X-Rcpt-Args: ')) rcpts.push(l.slice('X-Rcpt-Args: '.length).split(' ')[0]!.replace(/^<|>$/g, ''));
    else if (l.startsWith('X-Mail-Args: '))
      mailFrom = l.slice('X-Mail-Args: '.length).split(' ')[0]!.replace(/^<|>$/g, '');
    else if (/^X-(Client-[A-Za-z]+|Helo-Args|Mail-Args|Rcpt-Args):/.test(l)) continue;
    else break;
  }
  if (!lines[i]?.startsWith('Received: ')) throw new Error(`${file}: no smtp-sink Received header where expected`);
  i++;
  while (i < lines.length && /^[ \t]/.test(lines[i]!)) i++;
  let bodyStart = 0;
  for (let k = 0; k < i; k++) bodyStart += Buffer.byteLength(lines[k]!, 'latin1') + 1;
  let body = raw.subarray(bodyStart);
  // smtp-sink ends every dump with one extra empty line.
  if (body.length >= 2 && body[body.length - 1] === 0x0a && body[body.length - 2] === 0x0a)
    body = body.subarray(0, body.length - 1);
  return { message: body.toString('utf8'), raw: body, rcpts, mailFrom, file };
}

/**
 * Waits until Postfix has delivered `queueId` to smtp-sink and returns the delivered message.
 * Fails fast when the log says it was deferred, bounced, held, rejected or discarded.
 */
export async function waitForDeliveryDetails(queueId: string, ms = 15_000): Promise<Delivery> {
  if (!queueId) throw new Error('waitForDelivery: no queue id (was the message accepted?)');
  const since = submitted.get(queueId);
  const cursor = new MaillogCursor(since?.maillog ?? 0);
  const sent = new RegExp(`\\b${queueId}: to=<[^>]*>.*status=sent\\b`);
  const failed = new RegExp(
    `\\b${queueId}: (?:to=<[^>]*>.*status=(?:deferred|bounced|expired)\\b|milter-(?:reject|hold|discard)\\b)`,
  );
  await pollUntil(
    () => {
      for (const l of cursor.lines()) {
        if (failed.test(l)) throw new Error(`message ${queueId} was not delivered: ${l}`);
        if (sent.test(l)) return true;
      }
      return undefined;
    },
    ms,
    `delivery of ${queueId} (maillog ${stack.maillog})`,
  );
  // smtp-sink closes the file before it answers the final dot, so it is complete now.
  const file = await pollUntil(
    () => sinkFileOf(queueId, since?.at),
    5_000,
    `the smtp-sink file of ${queueId} in ${stack.sinkDir}`,
  );
  return parseSinkFile(readFileSync(file), file);
}

/** The delivered message (LF line ends), see waitForDeliveryDetails. */
export async function waitForDelivery(queueId: string, ms = 15_000): Promise<string> {
  return (await waitForDeliveryDetails(queueId, ms)).message;
}

// ------------------------------------------------------------------ queues

export interface QueueEntry {
  queue_name: string;
  queue_id: string;
  arrival_time: number;
  message_size: number;
  sender: string;
  recipients: Array<{ address: string; delay_reason?: string }>;
  [key: string]: unknown;
}

/** Every message in the instance's queues (postqueue -j). */
export async function queueEntries(): Promise<QueueEntry[]> {
  const out = await mustRun('postqueue', ['-c', stack.postfixConfigDir, '-j']);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as QueueEntry);
}

/** Messages in the hold queue (relayguard's quarantine). */
export async function holdQueue(): Promise<QueueEntry[]> {
  return (await queueEntries()).filter((e) => e.queue_name === 'hold');
}

/** Waits until `queueId` is in the hold queue. */
export async function waitForHold(queueId: string, ms = 10_000): Promise<QueueEntry> {
  return pollUntil(
    async () => (await holdQueue()).find((e) => e.queue_id === queueId),
    ms,
    `${queueId} in the hold queue`,
  );
}

/** Deletes every message in every queue of the test instance. */
export async function clearQueues(): Promise<void> {
  await mustRun('postsuper', ['-c', stack.postfixConfigDir, '-d', 'ALL']);
}

// ------------------------------------------------------------------ main.cf for one test

function masterPid(): number {
  const pid = Number(readFileSync(stack.masterPidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no Postfix master pid in ${stack.masterPidFile}`);
  return pid;
}

/** Postfix waits up to 2 s for a main.cf younger than ~2 s to "cool down": make it look old. */
function backdate(path: string): void {
  const past = new Date(Date.now() - 10_000);
  utimesSync(path, past, past);
}

/** Runs a command with stdio ignored (a daemon it starts must not hold our pipes open). */
function runIgnoringOutput(cmd: string, args: string[], timeoutMs: number): Promise<number | null> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: 'ignore', env: process.env });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolvePromise(code);
    });
  });
}

function processGone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

/**
 * Stops and starts the test Postfix so the next connection certainly runs the new main.cf.
 * (A SIGHUP reload leaves idle smtpd processes of the old configuration around for a while, and
 * quick successive reloads could leave the log daemon or proxymap unstarted: a restart costs
 * about half a second and has neither problem.)
 */
export async function restartPostfix(): Promise<void> {
  const dir = stack.postfixConfigDir;
  const master = masterPid();
  await runIgnoringOutput('postfix', ['-c', dir, 'stop'], 20_000);
  await pollUntil(() => (processGone(master) ? true : undefined), 20_000, `Postfix master ${master} to exit`);
  const code = await runIgnoringOutput('postfix', ['-c', dir, 'start'], 30_000);
  if (code !== 0) throw new Error(`postfix -c ${dir} start exited ${code}; see ${stack.maillog}`);
  await pollUntil(
    async () => ((await smtpGreets(stack.smtpPort)) ? true : undefined),
    20_000,
    `a 220 greeting on 127.0.0.1:${stack.smtpPort}`,
  );
}

/** True when 127.0.0.1:port answers with a 220 greeting. */
function smtpGreets(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolvePromise(ok);
    };
    s.setTimeout(2_000, () => done(false));
    s.once('data', (d: Buffer) => done(d.toString('latin1').startsWith('220')));
    s.once('error', () => done(false));
  });
}

/**
 * Changes the test instance's main.cf (postconf -e) and restarts Postfix. Returns a function that
 * restores the baseline that stack.sh wrote; call it in a finally / after().
 */
export async function postconf(settings: Record<string, string>): Promise<() => Promise<void>> {
  const pairs = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  if (pairs.length > 0) {
    await mustRun('postconf', ['-c', stack.postfixConfigDir, '-e', ...pairs]);
    backdate(stack.mainCf);
    await restartPostfix();
  }
  return restorePostconf;
}

/** Puts back the main.cf stack.sh wrote (no reload when nothing changed). */
export async function restorePostconf(): Promise<void> {
  const now = readFileSync(stack.mainCf);
  const baseline = readFileSync(stack.mainCfBaseline);
  if (now.equals(baseline)) return;
  copyFileSync(stack.mainCfBaseline, stack.mainCf);
  backdate(stack.mainCf);
  await restartPostfix();
}

/** The value Postfix uses for one main.cf parameter. */
export async function postconfValue(name: string): Promise<string> {
  return (await mustRun('postconf', ['-c', stack.postfixConfigDir, '-h', name])).trim();
}

/** Postfix as an open relay (as outside checks may run it): relayguard alone must refuse relaying. */
export const OPEN_RELAY_RESTRICTIONS = 'check_client_access static:OK, reject_unauth_destination';

// ------------------------------------------------------------------ clamd

/** Stops this slot's clamd (for the "clamd down" tests); startClamd() brings it back. */
export async function stopClamd(): Promise<void> {
  await runStack('clamd-stop', 30_000);
}

export async function startClamd(): Promise<void> {
  await runStack('clamd-start', 60_000);
}

// ------------------------------------------------------------------ messages

/** The EICAR anti-virus test string (the audit's, assembled at run time: no file holds it whole). */
export function eicar(): string {
  return eicarTestFile().toString('latin1');
}

export interface Attachment {
  content: string | Buffer;
  /** Content-Disposition filename (also used as name= unless `name` is given). */
  filename?: string;
  /** Content-Type name= parameter only. */
  name?: string;
  contentType?: string;
  /** Default base64; message/rfc822 and text parts given as '7bit'/'8bit' are inserted as they are. */
  encoding?: 'base64' | '7bit' | '8bit' | 'quoted-printable';
}

export interface MessageOptions {
  from: string;
  to: string | string[];
  subject?: string;
  /** text/plain body (UTF-8). */
  body?: string;
  /** text/html alternative. */
  html?: string;
  headers?: Record<string, string> | Array<[string, string]>;
  attachments?: Attachment[];
  messageId?: string;
  date?: Date;
}

const CRLF = '\r\n';

function base64Lines(data: Buffer): string {
  return (data.toString('base64').match(/.{1,76}/g) ?? []).join(CRLF);
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

function boundary(): string {
  return `=_rg_${randomBytes(8).toString('hex')}`;
}

function textPart(type: 'plain' | 'html', text: string): string {
  const cte = isAscii(text) ? '7bit' : '8bit';
  return `Content-Type: text/${type}; charset=utf-8${CRLF}Content-Transfer-Encoding: ${cte}${CRLF}${CRLF}${text.replace(/\r?\n/g, CRLF)}`;
}

function bodyPart(opts: MessageOptions): string {
  const plain = opts.body ?? '';
  if (opts.html === undefined) return textPart('plain', plain);
  const b = boundary();
  return [
    `Content-Type: multipart/alternative; boundary="${b}"`,
    '',
    `--${b}`,
    textPart('plain', plain),
    `--${b}`,
    textPart('html', opts.html),
    `--${b}--`,
  ].join(CRLF);
}

function attachmentPart(a: Attachment): string {
  const name = a.name ?? a.filename;
  const type = a.contentType ?? 'application/octet-stream';
  const encoding = a.encoding ?? (type.toLowerCase() === 'message/rfc822' ? '7bit' : 'base64');
  const headers = [`Content-Type: ${type}${name !== undefined ? `; name="${name}"` : ''}`];
  headers.push(
    a.filename !== undefined
      ? `Content-Disposition: attachment; filename="${a.filename}"`
      : 'Content-Disposition: attachment',
  );
  headers.push(`Content-Transfer-Encoding: ${encoding}`);
  const buf = typeof a.content === 'string' ? Buffer.from(a.content, 'utf8') : a.content;
  const body = encoding === 'base64' ? base64Lines(buf) : buf.toString('utf8').replace(/\r?\n/g, CRLF);
  return headers.join(CRLF) + CRLF + CRLF + body;
}

/** A complete RFC 5322 message with CRLF line ends (multipart/mixed when there are attachments). */
export function message(opts: MessageOptions): string {
  const to = Array.isArray(opts.to) ? opts.to.join(', ') : opts.to;
  const head = [
    `From: ${opts.from}`,
    `To: ${to}`,
    `Subject: ${opts.subject ?? 'relayguard e2e test'}`,
    `Date: ${(opts.date ?? new Date()).toUTCString().replace(/GMT$/, '+0000')}`,
    `Message-ID: ${opts.messageId ?? `<${randomBytes(8).toString('hex')}@e2e.test>`}`,
    'MIME-Version: 1.0',
  ];
  const extra = Array.isArray(opts.headers) ? opts.headers : Object.entries(opts.headers ?? {});
  for (const [k, v] of extra) head.push(`${k}: ${v}`);
  if (!opts.attachments || opts.attachments.length === 0) {
    const single = head.join(CRLF) + CRLF + bodyPart(opts);
    return single.endsWith(CRLF) ? single : single + CRLF;
  }
  const b = boundary();
  head.push(`Content-Type: multipart/mixed; boundary="${b}"`);
  const parts = [bodyPart(opts), ...opts.attachments.map(attachmentPart)];
  return (
    head.join(CRLF) +
    CRLF +
    CRLF +
    'This is a multi-part message in MIME format.' +
    CRLF +
    parts.map((p) => `--${b}${CRLF}${p}${CRLF}`).join('') +
    `--${b}--${CRLF}`
  );
}

// ------------------------------------------------------------------ sink housekeeping

/** Names of the files smtp-sink has written so far. */
export function sinkFiles(): string[] {
  try {
    return readdirSync(stack.sinkDir).sort();
  } catch {
    return [];
  }
}
