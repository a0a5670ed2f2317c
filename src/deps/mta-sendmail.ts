// The Sendmail side of the MTA adapter (deps/mta.ts): Sendmail's quarantine.
// When relayguard answers SMFIR_QUARANTINE, Sendmail accepts the message and keeps it in its
// queue as a quarantined job: the control file is named hf<ID> instead of qf<ID> and carries the
// reason on a `q` line; no queue run touches it. This module lists those jobs (by reading the
// control files), shows one, releases one with Sendmail's own commands (-Q without a reason
// lifts the quarantine, then -qI delivers it) and deletes one. Every action first checks that the
// ID names exactly one quarantined job, because Sendmail's -qI matches substrings.
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { exitError, runProgram, type ExecError, type ExecResult } from '../ops/exec.js';
import { MtaError, type HeldMessage, type Mta, type ReleaseResult, type Whereabouts } from './mta.js';

/** Sendmail queue IDs: letters and digits (8.12+: 14 or more characters); nothing else goes to -qI. */
const SENDMAIL_QUEUE_ID = /^[0-9A-Za-z]{8,32}$/;
/** Control file prefixes: qf = normal job, hf = quarantined ("held") job. */
const QUARANTINED_PREFIX = 'hf';
const NORMAL_PREFIX = 'qf';
const DATA_PREFIX = 'df';
/** Other per-job files that go with a deleted job (transcript, temporary control file). */
const SIDE_PREFIXES = ['xf', 'tf', 'Qf'];
/** Sendmail's answers to -Q and -qI are a few lines. */
const MAX_TOOL_OUTPUT = 16 * 1024 * 1024;
/** Where sendmail.cf names the queue: `O QueueDirectory=/var/spool/mqueue` (may end in `*`). */
const QUEUE_DIRECTORY_OPTION = /^O\s*QueueDirectory\s*=\s*(\S+)\s*$/m;
const DEFAULT_QUEUE_DIRECTORY = '/var/spool/mqueue';

export interface SendmailQueueOptions {
  /** The sendmail command (e.g. /usr/sbin/sendmail). */
  sendmail: string;
  /** sendmail.cf of the instance relayguard protects (passed as -C; also names the queue directories). */
  cf: string;
  /** Queue directories; default: QueueDirectory from `cf`. */
  queueDirs?: string[];
  /** Deadline for each sendmail command. */
  timeoutMs?: number;
}

export interface QuarantinedMessage {
  queueId: string;
  /** The queue directory that holds it. */
  queueDir: string;
  controlFile: string;
  dataFile: string;
  arrivalTime: Date;
  /** Size of the data file (the body, as `mailq` shows it). */
  size: number;
  sender: string;
  recipients: string[];
  /** The reason from the `q` line (relayguard writes "reason (ref REF)"). */
  reason: string;
  /** Header lines from the control file (Sendmail keeps headers there, the body in the df file). */
  headers: string[];
}

async function runSendmail(opts: SendmailQueueOptions, args: string[]): Promise<ExecResult> {
  return runProgram(opts.sendmail, ['-C', opts.cf, ...args], {
    maxOutputBytes: MAX_TOOL_OUTPUT,
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  }).catch((err: ExecError) => {
    throw new MtaError(err.message);
  });
}

function failure(opts: SendmailQueueOptions, args: string[], r: ExecResult): MtaError {
  return new MtaError(exitError(opts.sendmail, ['-C', opts.cf, ...args], r).message);
}

export function checkQueueId(id: string): string {
  if (!SENDMAIL_QUEUE_ID.test(id)) throw new MtaError(`"${id}" is not a Sendmail queue ID`);
  return id;
}

// ------------------------------------------------------------------ where the queue is

/** The QueueDirectory option of a sendmail.cf text (the raw value, maybe ending in `*`). */
export function queueDirectoryOption(cfText: string): string {
  return QUEUE_DIRECTORY_OPTION.exec(cfText)?.[1] ?? DEFAULT_QUEUE_DIRECTORY;
}

/** Expands `/var/spool/mqueue/q*` (Sendmail's multiple queue directories) to the directories. */
async function expandQueueDirectory(option: string): Promise<string[]> {
  if (!option.endsWith('*')) return [option];
  const parent = dirname(option);
  const prefix = basename(option).slice(0, -1);
  const names = await readdir(parent).catch(() => [] as string[]);
  const dirs: string[] = [];
  for (const n of names.filter((x) => x.startsWith(prefix)).sort()) {
    if ((await stat(join(parent, n)).catch(() => null))?.isDirectory()) dirs.push(join(parent, n));
  }
  return dirs;
}

export async function queueDirectories(opts: SendmailQueueOptions): Promise<string[]> {
  if (opts.queueDirs) return opts.queueDirs;
  let text: string;
  try {
    text = await readFile(opts.cf, 'latin1');
  } catch (err) {
    throw new MtaError(`cannot read ${opts.cf}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return expandQueueDirectory(queueDirectoryOption(text));
}

/** A queue directory may keep control and data files in qf/ and df/ subdirectories. */
async function subdir(queueDir: string, name: string): Promise<string> {
  const d = join(queueDir, name);
  return (await stat(d).catch(() => null))?.isDirectory() ? d : queueDir;
}

// ------------------------------------------------------------------ control files

/** Reads the fields `list` and `show` need from a control (qf/hf) file. */
export function parseControlFile(
  text: string,
): Pick<QuarantinedMessage, 'arrivalTime' | 'sender' | 'recipients' | 'reason' | 'headers'> {
  let arrival = 0;
  let sender = '';
  let reason = '';
  const recipients: string[] = [];
  const headers: string[] = [];
  /** Continuation lines belong to the header before them: kept or skipped with it. */
  let header: 'kept' | 'skipped' | null = null;
  for (const line of text.split('\n')) {
    if (header && /^[ \t]/.test(line)) {
      if (header === 'kept') headers[headers.length - 1] += `\n${line}`;
      continue;
    }
    header = null;
    const value = line.slice(1);
    switch (line[0]) {
      case 'T':
        arrival = Number(value) || 0;
        break;
      case 'S':
        sender = stripBrackets(value);
        break;
      case 'q':
        reason = value;
        break;
      case 'R': {
        // Version 8 files: R<flags>:<address>; older ones: R<address>.
        const m = /^([A-Za-z]*):(.*)$/.exec(value);
        recipients.push(stripBrackets(m ? m[2]! : value));
        break;
      }
      case 'H': {
        // H?flags?Name: value; "??" for a header of the message. One with mailer flags
        // (H?P?Return-Path: <$g>) is emitted only for some mailers and holds unexpanded
        // macros: it is not part of the message as received.
        const m = /^\?([^?]*)\?([\s\S]*)$/.exec(value);
        if (m?.[1]) {
          header = 'skipped';
          break;
        }
        headers.push(m ? m[2]! : value);
        header = 'kept';
        break;
      }
    }
  }
  return { arrivalTime: new Date(arrival * 1000), sender, recipients, reason, headers };
}

function stripBrackets(a: string): string {
  const t = a.trim();
  return t.startsWith('<') && t.endsWith('>') ? t.slice(1, -1) : t;
}

async function readJob(queueDir: string, queueId: string): Promise<QuarantinedMessage | null> {
  const controlFile = join(await subdir(queueDir, 'qf'), QUARANTINED_PREFIX + queueId);
  const dataFile = join(await subdir(queueDir, 'df'), DATA_PREFIX + queueId);
  let text: string;
  try {
    text = await readFile(controlFile, 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // released or deleted meanwhile
    throw err;
  }
  const size = (await stat(dataFile).catch(() => null))?.size ?? 0;
  return { queueId, queueDir, controlFile, dataFile, size, ...parseControlFile(text) };
}

// ------------------------------------------------------------------ the operations

/** Every quarantined job in every queue directory, oldest first. */
export async function listQuarantined(opts: SendmailQueueOptions): Promise<QuarantinedMessage[]> {
  const out: QuarantinedMessage[] = [];
  for (const dir of await queueDirectories(opts)) {
    let names: string[];
    try {
      names = await readdir(await subdir(dir, 'qf'));
    } catch (err) {
      throw new MtaError(
        `cannot read the queue directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    for (const n of names) {
      if (!n.startsWith(QUARANTINED_PREFIX)) continue;
      const job = await readJob(dir, n.slice(QUARANTINED_PREFIX.length));
      if (job) out.push(job);
    }
  }
  return out.sort((a, b) => a.arrivalTime.getTime() - b.arrivalTime.getTime() || a.queueId.localeCompare(b.queueId));
}

/**
 * The quarantined job `id`; an error when there is none, or when `id` is also part of another
 * queued job's ID (sendmail -qI matches substrings, so it would act on both).
 */
export async function quarantinedMessage(opts: SendmailQueueOptions, id: string): Promise<QuarantinedMessage> {
  checkQueueId(id);
  const dirs = await queueDirectories(opts);
  let found: QuarantinedMessage | null = null;
  const others: string[] = [];
  for (const dir of dirs) {
    for (const n of await readdir(await subdir(dir, 'qf')).catch(() => [] as string[])) {
      const prefix = n.slice(0, 2);
      const jobId = n.slice(2);
      if (prefix !== QUARANTINED_PREFIX && prefix !== NORMAL_PREFIX) continue;
      if (jobId === id && prefix === QUARANTINED_PREFIX) found = await readJob(dir, id);
      else if (jobId.includes(id)) others.push(`${prefix}${jobId}`);
    }
  }
  if (!found) {
    const normal = others.some((o) => o === NORMAL_PREFIX + id);
    throw new MtaError(
      normal
        ? `message ${id} is in the Sendmail queue but not quarantined; nothing done`
        : `no quarantined message ${id} in ${dirs.join(', ')}; it may have been released or deleted already`,
    );
  }
  if (others.length > 0)
    throw new MtaError(`"${id}" also matches ${others.join(', ')} (sendmail -qI matches substrings); nothing done`);
  return found;
}

/**
 * Where job `id` is: "quarantined" (hf control file), "queued" (qf: waiting for delivery or
 * retry), or null when no queue directory has it (delivered, bounced or deleted).
 */
async function jobState(opts: SendmailQueueOptions, id: string): Promise<'quarantined' | 'queued' | null> {
  checkQueueId(id);
  for (const dir of await queueDirectories(opts)) {
    const names = new Set(await readdir(await subdir(dir, 'qf')).catch(() => [] as string[]));
    if (names.has(QUARANTINED_PREFIX + id)) return 'quarantined';
    if (names.has(NORMAL_PREFIX + id)) return 'queued';
  }
  return null;
}

/** The message as Sendmail keeps it: the header lines of the control file, a blank line, the data file. */
export async function quarantinedContent(m: QuarantinedMessage): Promise<Buffer> {
  const body = await readFile(m.dataFile).catch((err: NodeJS.ErrnoException) => {
    throw new MtaError(`cannot read ${m.dataFile}: ${err.code ?? err.message}`);
  });
  return Buffer.concat([Buffer.from(m.headers.join('\n') + '\n\n', 'latin1'), body]);
}

export interface SendmailReleaseResult {
  queueId: string;
  /** Set when the quarantine was lifted but the delivery attempt failed (the queue runner retries). */
  warning?: string;
}

/**
 * Lifts the quarantine (`sendmail -Q -qQ -qI<id>`: -Q without a reason un-quarantines the
 * selected quarantined jobs), then asks for delivery now (`sendmail -qI<id>`). A failed delivery
 * attempt is only a warning: the job is a normal queued job by then.
 */
export async function releaseQuarantined(opts: SendmailQueueOptions, id: string): Promise<SendmailReleaseResult> {
  const m = await quarantinedMessage(opts, id);
  const liftArgs = ['-Q', '-qQ', `-qI${id}`];
  const lift = await runSendmail(opts, liftArgs);
  if (lift.code !== 0) throw failure(opts, liftArgs, lift);
  const stillHeld = await stat(m.controlFile).then(
    () => true,
    () => false,
  );
  if (stillHeld)
    throw new MtaError(`sendmail -Q -qQ -qI${id} left ${m.controlFile} in place; the message is still quarantined`);
  const run = await runSendmail(opts, [`-qI${id}`]);
  const warning = run.code !== 0 ? failure(opts, [`-qI${id}`], run).message : undefined;
  return { queueId: id, ...(warning ? { warning } : {}) };
}

/**
 * Deletes a quarantined job. Sendmail has no command for that; its documented way is removing
 * the job's files. The control file goes first: without it no Sendmail process sees the job.
 */
export async function deleteQuarantined(opts: SendmailQueueOptions, id: string): Promise<QuarantinedMessage> {
  const m = await quarantinedMessage(opts, id);
  await unlink(m.controlFile).catch((err: NodeJS.ErrnoException) => {
    throw new MtaError(`cannot delete ${m.controlFile}: ${err.code ?? err.message}`);
  });
  await unlink(m.dataFile).catch(() => undefined);
  const qfDir = await subdir(m.queueDir, 'qf');
  const xfDir = await subdir(m.queueDir, 'xf');
  for (const p of SIDE_PREFIXES) await unlink(join(p === 'xf' ? xfDir : qfDir, p + id)).catch(() => undefined);
  return m;
}

// ------------------------------------------------------------------ the adapter

export class SendmailMta implements Mta {
  readonly kind = 'sendmail';
  readonly product = 'Sendmail';
  readonly heldQueueName = 'Sendmail quarantine';

  constructor(private readonly opts: SendmailQueueOptions) {}

  async listHeld(): Promise<HeldMessage[]> {
    return (await listQuarantined(this.opts)).map(heldMessage);
  }

  async held(id: string): Promise<HeldMessage> {
    return heldMessage(await quarantinedMessage(this.opts, id));
  }

  async contentText(id: string): Promise<string> {
    return (await quarantinedContent(await quarantinedMessage(this.opts, id))).toString('latin1');
  }

  async writeContent(id: string, out: Writable): Promise<void> {
    const content = await quarantinedContent(await quarantinedMessage(this.opts, id));
    await new Promise<void>((resolve, reject) => out.write(content, (err) => (err ? reject(err) : resolve())));
  }

  async release(id: string): Promise<ReleaseResult> {
    const message = await this.held(id);
    const r = await releaseQuarantined(this.opts, id);
    return r.warning
      ? { how: 'quarantine lifted', warning: r.warning, message }
      : { how: 'quarantine lifted, delivery requested', message };
  }

  async remove(id: string): Promise<HeldMessage> {
    return heldMessage(await deleteQuarantined(this.opts, id));
  }

  async locate(id: string): Promise<Whereabouts> {
    const state = await jobState(this.opts, id);
    return state === null
      ? null
      : {
          held: state === 'quarantined',
          where: state === 'queued' ? 'the mail queue, not quarantined' : 'the quarantine',
        };
  }

  removeHint(id: string): string {
    return `relayguard quarantine delete ${id}`;
  }
}

const heldMessage = (m: QuarantinedMessage): HeldMessage => ({
  queueId: m.queueId,
  queue: 'quarantine',
  arrivalTime: m.arrivalTime,
  size: m.size,
  sender: m.sender,
  recipients: m.recipients,
  reason: m.reason,
});
