// relayguard quarantine list|show|release|delete: the held messages live in Postfix's hold queue
// (Postfix owns them); relayguard's index adds why each was held. Every action first checks that
// the ID names a message in the hold queue, so a typo can never release or delete anything else,
// and only Postfix's own tools touch the queue.
import { execFile, spawn } from 'node:child_process';
import type { QuarantineRecord } from '../deps/quarantine-store.js';
import { bool, parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { about } from './commands.js';
import { loadPolicyOrExit, postfixConfigDir } from './policy-file.js';
import { CliError, heldSummaryLines, printHeldRows, withStore, type Ctx } from './quarantine-common.js';
import { runSendmailQuarantine, SENDMAIL_SUBCOMMANDS } from './quarantine-sendmail.js';

/** Postfix queue IDs: short (hex) or long (base 52 + 'z'); nothing else goes to postsuper. */
const QUEUE_ID = /^[0-9A-Za-z]{5,32}$/;
/** Words postsuper reads as "every message": never accepted as an ID. */
const POSTSUPER_WILDCARDS = new Set(['ALL']);
/** Output of `postqueue -j` and `postcat` for one message can be large. */
const MAX_TOOL_OUTPUT = 256 * 1024 * 1024;
const HOLD = 'hold';

export interface QueuedMessage {
  queueName: string;
  queueId: string;
  arrivalTime: Date;
  size: number;
  sender: string;
  recipients: string[];
}

interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}


function runTool(cmd: string, args: string[]): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: MAX_TOOL_OUTPUT, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
        return reject(new CliError(`cannot run ${cmd}: ${(err as NodeJS.ErrnoException).code}`));
      }
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function toolFailure(what: string, r: ToolResult): CliError {
  const text = (r.stderr || r.stdout).trim().split('\n').slice(-3).join('; ');
  return new CliError(`${what} failed (exit ${r.code})${text ? `: ${text}` : ''}`);
}

/** Every message in every queue, from `postqueue -j` (one JSON object per line). */
function parsePostqueueJson(text: string): QueuedMessage[] {
  const out: QueuedMessage[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new CliError(`postqueue -j printed something that is not JSON: ${line.slice(0, 80)}`);
    }
    const rcpts = Array.isArray(o.recipients) ? (o.recipients as Array<{ address?: unknown }>) : [];
    out.push({
      queueName: String(o.queue_name ?? ''),
      queueId: String(o.queue_id ?? ''),
      arrivalTime: new Date(Number(o.arrival_time ?? 0) * 1000),
      size: Number(o.message_size ?? 0),
      sender: String(o.sender ?? ''),
      recipients: rcpts.map((r) => String(r.address ?? '')),
    });
  }
  return out;
}

async function queue(ctx: Ctx): Promise<QueuedMessage[]> {
  const r = await runTool(ctx.config.mta.postqueue, ['-c', ctx.dir, '-j']);
  if (r.code !== 0) throw toolFailure(`postqueue -c ${ctx.dir} -j`, r);
  return parsePostqueueJson(r.stdout);
}

function checkId(id: string | undefined, sub: string): string {
  if (!id) throw new UsageError(`${sub} needs a queue ID`);
  if (!QUEUE_ID.test(id) || POSTSUPER_WILDCARDS.has(id.toUpperCase())) throw new CliError(`"${id}" is not a Postfix queue ID`);
  return id;
}

/** The held message `id`, or a clear error saying where it is instead. */
async function heldMessage(ctx: Ctx, id: string): Promise<QueuedMessage> {
  const all = await queue(ctx);
  const m = all.find((q) => q.queueId === id);
  if (!m) throw new CliError(`no message ${id} in the Postfix queue (${ctx.dir}); it may have been released or deleted already`);
  if (m.queueName !== HOLD) throw new CliError(`message ${id} is not in the hold queue (it is in the ${m.queueName} queue); nothing done`);
  return m;
}

function describe(m: QueuedMessage, rec: QuarantineRecord | undefined) {
  return {
    queue_id: m.queueId,
    queue: m.queueName,
    arrival_time: m.arrivalTime.toISOString(),
    size: m.size,
    sender: m.sender,
    recipients: m.recipients,
    rule: rec?.rule ?? null,
    reason: rec?.reason ?? null,
    direction: rec?.direction ?? null,
    ref: rec?.ref ?? null,
    quarantined_at: rec?.time.toISOString() ?? null,
  };
}

async function list(ctx: Ctx): Promise<number> {
  const held = (await queue(ctx)).filter((m) => m.queueName === HOLD);
  const rows = withStore(ctx, (store) => held.map((m) => describe(m, store?.latest(m.queueId))));
  return printHeldRows(ctx, rows, { empty: 'The hold queue is empty.', noun: 'on hold', unknownWhy: () => '(not held by relayguard, or not in its index)' });
}

async function show(ctx: Ctx, id: string): Promise<number> {
  const m = await heldMessage(ctx, id);
  const info = describe(
    m,
    withStore(ctx, (s) => s?.latest(id)),
  );
  const postcatArgs = ['-c', ctx.dir, '-bh', '-q', id];
  if (ctx.json) {
    const r = await runTool(ctx.config.mta.postcat, postcatArgs);
    if (r.code !== 0) throw toolFailure(`postcat -q ${id}`, r);
    process.stdout.write(JSON.stringify({ ...info, content: r.stdout }, null, 2) + '\n');
    return 0;
  }
  const lines = heldSummaryLines(info, 'hold queue', m.arrivalTime);
  process.stdout.write(lines.join('\n') + '\n');
  // Stream the content: a held message can be big.
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(ctx.config.mta.postcat, postcatArgs, { stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e: NodeJS.ErrnoException) => reject(new CliError(`cannot run ${ctx.config.mta.postcat}: ${e.code ?? e.message}`)));
    child.on('close', (c) => {
      if (c !== 0) process.stderr.write(err);
      resolve(c ?? 1);
    });
  });
  if (code !== 0) throw new CliError(`postcat -q ${id} failed (exit ${code})`);
  return 0;
}

const TIME_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Postfix time values ("5d", "3600s", "5" = days for the queue lifetimes), seconds. */
function parsePostfixTime(value: string, defaultUnit = 'd'): number | undefined {
  const m = /^(\d+)([smhdw]?)$/.exec(value.trim());
  if (!m) return undefined;
  return Number(m[1]) * TIME_UNITS[m[2] || defaultUnit]!;
}

/**
 * The shorter of Postfix's queue lifetimes, seconds (undefined when postconf cannot tell). A
 * message released with -H keeps its arrival time: if it was held longer than that, its first
 * temporary delivery failure would bounce it at once.
 */
async function queueLifetime(ctx: Ctx): Promise<number | undefined> {
  const r = await runTool(ctx.config.mta.postconf, ['-c', ctx.dir, '-h', 'maximal_queue_lifetime', 'bounce_queue_lifetime']).catch(() => null);
  if (!r || r.code !== 0) return undefined;
  const values = r.stdout.trim().split('\n').map((v) => parsePostfixTime(v));
  if (values.some((v) => v === undefined)) return undefined;
  return Math.min(...(values as number[]));
}

/** Held this long relative to the queue lifetime: release by requeueing (fresh arrival time). */
const REQUEUE_FRACTION = 0.5;

async function release(ctx: Ctx, id: string): Promise<number> {
  const m = await heldMessage(ctx, id);
  const lifetime = await queueLifetime(ctx);
  const heldFor = (Date.now() - m.arrivalTime.getTime()) / 1000;
  let warning: string | undefined;
  let how: string;
  if (lifetime !== undefined && heldFor >= lifetime * REQUEUE_FRACTION) {
    // postsuper's own advice for mail held a long time: requeue it. It gets a new queue ID and
    // arrival time; pickup and cleanup deliver it at once (milters are not run again).
    const r = await runTool(ctx.config.mta.postsuper, ['-c', ctx.dir, '-r', id, HOLD]);
    if (r.code !== 0 || !/Requeued: 1 message/.test(r.stderr + r.stdout)) throw toolFailure(`postsuper -r ${id} hold`, r);
    how = 'requeued for delivery (new queue ID; it was held longer than half the queue lifetime)';
  } else {
    const r = await runTool(ctx.config.mta.postsuper, ['-c', ctx.dir, '-H', id]);
    if (r.code !== 0 || !/Released from hold: 1 message/.test(r.stderr + r.stdout)) throw toolFailure(`postsuper -H ${id}`, r);
    // Out of the hold queue it is in the deferred queue: ask for delivery now. If that fails the
    // message is still safe; the queue manager sends it at its next deferred-queue run.
    const flush = await runTool(ctx.config.mta.postqueue, ['-c', ctx.dir, '-i', id]);
    warning = flush.code !== 0 ? toolFailure(`postqueue -i ${id}`, flush).message : undefined;
    if (warning) process.stderr.write(`relayguard quarantine: warning: ${warning}; Postfix will deliver it at its next queue run\n`);
    how = warning ? 'released from hold' : 'released from hold, delivery requested';
  }
  withStore(ctx, (s) => s?.setState(id, 'released'));
  if (ctx.json) process.stdout.write(JSON.stringify({ ok: true, queue_id: id, action: 'released', ...(warning ? { warning } : {}) }) + '\n');
  else process.stdout.write(`${id}: ${how}\n`);
  return 0;
}

async function remove(ctx: Ctx, id: string): Promise<number> {
  await heldMessage(ctx, id);
  // "hold": postsuper only looks in the hold queue, so a message that was released meanwhile is kept.
  const r = await runTool(ctx.config.mta.postsuper, ['-c', ctx.dir, '-d', id, HOLD]);
  if (r.code !== 0 || !/Deleted: 1 message/.test(r.stderr + r.stdout)) throw toolFailure(`postsuper -d ${id} hold`, r);
  withStore(ctx, (s) => s?.setState(id, 'deleted'));
  if (ctx.json) process.stdout.write(JSON.stringify({ ok: true, queue_id: id, action: 'deleted' }) + '\n');
  else process.stdout.write(`${id}: deleted\n`);
  return 0;
}

const SUBCOMMANDS = ['list', 'show', 'release', 'delete'] as const;

export const quarantineCommand: Command = {
  ...about('quarantine'),
  async run(argv) {
    const args = parseArgs(argv, { config: { value: true }, json: { value: false } }, { min: 0, max: 2 });
    const [sub, id, ...extra] = args.positional;
    if (!sub || !(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(sub ? `unknown subcommand "${sub}"` : 'which subcommand?');
    if (sub === 'list' ? id !== undefined : extra.length > 0) throw new UsageError('too many arguments');
    const { config } = loadPolicyOrExit(str(args, 'config'));
    const ctx: Ctx = { config, dir: postfixConfigDir(config), json: bool(args, 'json') };
    try {
      if (config.mta.kind === 'sendmail') return await runSendmailQuarantine(sub as (typeof SENDMAIL_SUBCOMMANDS)[number], id, ctx);
      switch (sub as (typeof SUBCOMMANDS)[number]) {
        case 'list':
          return await list(ctx);
        case 'show':
          return await show(ctx, checkId(id, sub));
        case 'release':
          return await release(ctx, checkId(id, sub));
        case 'delete':
          return await remove(ctx, checkId(id, sub));
      }
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      if (ctx.json) process.stdout.write(JSON.stringify({ ok: false, error: err.message }) + '\n');
      process.stderr.write(`relayguard quarantine: ${err.message}\n`);
      return 1;
    }
  },
};
