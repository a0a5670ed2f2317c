// The Postfix side of the MTA adapter (deps/mta.ts). Held messages are in Postfix's hold queue;
// only Postfix's own tools touch it (postqueue -j to look, postsuper to release or delete,
// postcat to show). Every action first checks that the ID names a message in the hold queue, so
// a typo can never release or delete anything else. `postconf` is here too: every run of a
// Postfix tool goes through this file and deps/exec.ts.
import type { Writable } from 'node:stream';
import { ExecError, exitError, runChecked, runProgram, pipeProgram, type ExecResult } from '../ops/exec.js';
import { MtaError, type HeldMessage, type Mta, type ReleaseResult, type Whereabouts } from './mta.js';

/** Postfix queue IDs: short (hex) or long (base 52 + 'z'); nothing else goes to postsuper. */
const QUEUE_ID = /^[0-9A-Za-z]{5,32}$/;
/** Words postsuper reads as "every message": never accepted as an ID. */
const POSTSUPER_WILDCARDS = new Set(['ALL']);
/** `postqueue -j` of a queue with many messages, and postcat of one message, can be large. */
const MAX_QUEUE_TOOL_OUTPUT = 256 * 1024 * 1024;
/** postconf's answers are small. */
const MAX_POSTCONF_OUTPUT = 4 * 1024 * 1024;
/** Showing a held message streams it; a big one to a slow terminal may take a while. */
const CONTENT_TIMEOUT_MS = 10 * 60_000;
const HOLD = 'hold';
/** Held this long relative to the queue lifetime: release by requeueing (fresh arrival time). */
const REQUEUE_FRACTION = 0.5;

export interface PostconfTool {
  /** The postconf program (policy mta.postconf). */
  program: string;
  /** Configuration directory (postconf -c). */
  configDir: string;
  timeoutMs?: number;
}

/** Runs `postconf -c DIR ARGS...` and resolves with what it printed; rejects with Postfix's own message. */
export function postconf(tool: PostconfTool, args: readonly string[], signal?: AbortSignal): Promise<string> {
  return runChecked(tool.program, ['-c', tool.configDir, ...args], {
    maxOutputBytes: MAX_POSTCONF_OUTPUT,
    ...(tool.timeoutMs ? { timeoutMs: tool.timeoutMs } : {}),
    ...(signal ? { signal } : {}),
  });
}

/** A message in any of Postfix's queues, from `postqueue -j`. */
interface QueuedMessage {
  queueName: string;
  queueId: string;
  arrivalTime: Date;
  size: number;
  sender: string;
  recipients: string[];
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
      throw new MtaError(`postqueue -j printed something that is not JSON: ${line.slice(0, 80)}`);
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

const TIME_UNITS_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** A Postfix time value ("30s", "5m", "300" = `defaultUnit`s) in milliseconds, or null. */
export function parsePostfixTime(value: string, defaultUnit = 's'): number | null {
  const m = /^\s*(\d+)\s*([smhdw]?)\s*$/.exec(value);
  if (!m) return null;
  return Number(m[1]) * TIME_UNITS_S[m[2] || defaultUnit]! * 1000;
}

function checkPostfixQueueId(id: string): string {
  if (!QUEUE_ID.test(id) || POSTSUPER_WILDCARDS.has(id.toUpperCase()))
    throw new MtaError(`"${id}" is not a Postfix queue ID`);
  return id;
}

const heldMessage = (m: QueuedMessage): HeldMessage => ({
  queueId: m.queueId,
  queue: m.queueName,
  arrivalTime: m.arrivalTime,
  size: m.size,
  sender: m.sender,
  recipients: m.recipients,
  reason: null,
});

export interface PostfixTools {
  postqueue: string;
  postsuper: string;
  postcat: string;
  postconf: string;
  configDir: string;
  /** Deadline for each tool run (default deps/exec.ts's). */
  timeoutMs?: number;
}

export class PostfixMta implements Mta {
  readonly kind = 'postfix';
  readonly product = 'Postfix';
  readonly heldQueueName = 'hold queue';

  constructor(private readonly tools: PostfixTools) {}

  private run(program: string, args: string[], signal?: AbortSignal): Promise<ExecResult> {
    return runProgram(program, ['-c', this.tools.configDir, ...args], {
      maxOutputBytes: MAX_QUEUE_TOOL_OUTPUT,
      ...(this.tools.timeoutMs ? { timeoutMs: this.tools.timeoutMs } : {}),
      ...(signal ? { signal } : {}),
    });
  }

  /** Runs a tool; a non-zero exit, or stdout+stderr without `expect`, is an MtaError. */
  private async act(program: string, args: string[], expect?: RegExp, signal?: AbortSignal): Promise<ExecResult> {
    const r = await this.run(program, args, signal).catch((err: ExecError) => {
      throw new MtaError(err.message);
    });
    if (r.code !== 0 || (expect && !expect.test(r.stderr + r.stdout)))
      throw new MtaError(exitError(program, ['-c', this.tools.configDir, ...args], r).message);
    return r;
  }

  /** Every message in every queue. */
  private async queue(signal?: AbortSignal): Promise<QueuedMessage[]> {
    const r = await this.act(this.tools.postqueue, ['-j'], undefined, signal);
    return parsePostqueueJson(r.stdout);
  }

  async listHeld(signal?: AbortSignal): Promise<HeldMessage[]> {
    return (await this.queue(signal)).filter((m) => m.queueName === HOLD).map(heldMessage);
  }

  async held(id: string, signal?: AbortSignal): Promise<HeldMessage> {
    checkPostfixQueueId(id);
    const m = (await this.queue(signal)).find((q) => q.queueId === id);
    if (!m)
      throw new MtaError(
        `no message ${id} in the Postfix queue (${this.tools.configDir}); it may have been released or deleted already`,
      );
    if (m.queueName !== HOLD)
      throw new MtaError(`message ${id} is not in the hold queue (it is in the ${m.queueName} queue); nothing done`);
    return heldMessage(m);
  }

  async contentText(id: string): Promise<string> {
    await this.held(id);
    return (await this.act(this.tools.postcat, ['-bh', '-q', id])).stdout;
  }

  async writeContent(id: string, out: Writable): Promise<void> {
    await this.held(id);
    await pipeProgram(this.tools.postcat, ['-c', this.tools.configDir, '-bh', '-q', id], out, {
      timeoutMs: CONTENT_TIMEOUT_MS,
    }).catch((err: ExecError) => {
      throw new MtaError(err.message);
    });
  }

  /**
   * The shorter of Postfix's queue lifetimes, seconds (undefined when postconf cannot tell). A
   * message released with -H keeps its arrival time: if it was held longer than that, its first
   * temporary delivery failure would bounce it at once.
   */
  private async queueLifetime(): Promise<number | undefined> {
    const text = await postconf(
      {
        program: this.tools.postconf,
        configDir: this.tools.configDir,
        ...(this.tools.timeoutMs ? { timeoutMs: this.tools.timeoutMs } : {}),
      },
      ['-h', 'maximal_queue_lifetime', 'bounce_queue_lifetime'],
    ).catch(() => null);
    if (text === null) return undefined;
    const values = text
      .trim()
      .split('\n')
      // The queue lifetimes count in days when no unit is given.
      .map((v) => parsePostfixTime(v, 'd'));
    if (values.some((v) => v === null)) return undefined;
    return Math.min(...(values as number[])) / 1000;
  }

  async release(id: string): Promise<ReleaseResult> {
    const m = await this.held(id);
    const lifetime = await this.queueLifetime();
    const heldFor = (Date.now() - m.arrivalTime.getTime()) / 1000;
    if (lifetime !== undefined && heldFor >= lifetime * REQUEUE_FRACTION) {
      // postsuper's own advice for mail held a long time: requeue it. It gets a new queue ID and
      // arrival time; pickup and cleanup deliver it at once (milters are not run again).
      await this.act(this.tools.postsuper, ['-r', id, HOLD], /Requeued: 1 message/);
      return {
        how: 'requeued for delivery (new queue ID; it was held longer than half the queue lifetime)',
        message: m,
      };
    }
    await this.act(this.tools.postsuper, ['-H', id], /Released from hold: 1 message/);
    // Out of the hold queue it is in the deferred queue: ask for delivery now. If that fails the
    // message is still safe; the queue manager sends it at its next deferred-queue run.
    const flush = await this.act(this.tools.postqueue, ['-i', id]).then(
      () => undefined,
      (err: Error) => err.message,
    );
    return flush
      ? { how: 'released from hold', warning: flush, message: m }
      : { how: 'released from hold, delivery requested', message: m };
  }

  async remove(id: string, signal?: AbortSignal): Promise<HeldMessage> {
    const m = await this.held(id, signal);
    // "hold": postsuper only looks in the hold queue, so a message that was released meanwhile is kept.
    await this.act(this.tools.postsuper, ['-d', id, HOLD], /Deleted: 1 message/, signal);
    return m;
  }

  async locate(id: string, signal?: AbortSignal): Promise<Whereabouts> {
    const m = (await this.queue(signal)).find((q) => q.queueId === id);
    return m ? { held: m.queueName === HOLD, where: `the ${m.queueName} queue` } : null;
  }

  removeHint(id: string): string {
    return `postsuper -d ${id} hold`;
  }
}
