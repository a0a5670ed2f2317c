// relayguard quarantine list|show|release|delete: the held messages live in the MTA's queue
// (Postfix's hold queue, Sendmail's quarantine; the MTA owns them, deps/mta.ts reaches them);
// relayguard's index adds why each was held. The adapter checks that an ID names a held message
// before it acts, so a typo can never release or delete anything else.
import { MtaError, type HeldMessage } from '../deps/mta.js';
import { openMta } from '../deps/open-mta.js';
import type { QuarantineRecord, QuarantineStore } from '../deps/quarantine-store.js';
import { bool, parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { loadPolicyOrExit, postfixConfigDir } from './policy-file.js';
import { heldSummaryLines, printHeldRows, withStore, type Ctx } from './quarantine-common.js';

/** How long one run of postqueue, postsuper or sendmail may take. */
const MTA_TOOL_TIMEOUT_MS = 60_000;

function describe(m: HeldMessage, rec: QuarantineRecord | undefined) {
  return {
    queue_id: m.queueId,
    queue: m.queue,
    arrival_time: m.arrivalTime.toISOString(),
    size: m.size,
    sender: m.sender,
    recipients: m.recipients,
    rule: rec?.rule ?? null,
    // Sendmail stores a reason with the job; the index adds the rule and direction.
    reason: rec?.reason ?? m.reason,
    direction: rec?.direction ?? null,
    ref: rec?.ref ?? null,
    quarantined_at: rec?.time.toISOString() ?? null,
  };
}

/**
 * How far before a held message's arrival time relayguard's record of it may be stamped: the
 * arrival time is in whole seconds, and a small step of the clock must not hide the record.
 */
const ARRIVAL_CLOCK_SLACK_MS = 2000;

/** relayguard's records of this held message are those made since it arrived (not an earlier message's with the same ID). */
const recordedSince = (m: HeldMessage) => new Date(m.arrivalTime.getTime() - ARRIVAL_CLOCK_SLACK_MS);

function recordOf(store: QuarantineStore | null, m: HeldMessage): QuarantineRecord | undefined {
  return store?.latest(m.queueId, recordedSince(m));
}

async function list(ctx: Ctx): Promise<number> {
  const held = await ctx.mta.listHeld();
  // The index only adds reasons to held messages: with none, SQLite is not even loaded.
  const rows = held.length === 0 ? [] : withStore(ctx, (store) => held.map((m) => describe(m, recordOf(store, m))));
  const text =
    ctx.mta.kind === 'sendmail'
      ? { empty: "Sendmail's quarantine is empty.", noun: 'quarantined' }
      : { empty: 'The hold queue is empty.', noun: 'on hold' };
  return printHeldRows(ctx, rows, {
    ...text,
    unknownWhy: (r) => r.reason ?? '(not held by relayguard, or not in its index)',
  });
}

async function show(ctx: Ctx, id: string): Promise<number> {
  const m = await ctx.mta.held(id);
  const info = describe(
    m,
    withStore(ctx, (s) => recordOf(s, m)),
  );
  if (ctx.json) {
    process.stdout.write(JSON.stringify({ ...info, content: await ctx.mta.contentText(id) }, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(heldSummaryLines(info, ctx.mta.heldQueueName, m.arrivalTime).join('\n') + '\n');
  await ctx.mta.writeContent(id, process.stdout);
  return 0;
}

async function release(ctx: Ctx, id: string): Promise<number> {
  const r = await ctx.mta.release(id);
  if (r.warning)
    process.stderr.write(
      `relayguard quarantine: warning: ${r.warning}; ${ctx.mta.product} will deliver it at its next queue run\n`,
    );
  withStore(ctx, (s) => s?.setState(id, 'released', new Date(), recordedSince(r.message)));
  if (ctx.json)
    process.stdout.write(
      JSON.stringify({ ok: true, queue_id: id, action: 'released', ...(r.warning ? { warning: r.warning } : {}) }) +
        '\n',
    );
  else process.stdout.write(`${id}: ${r.how}\n`);
  return 0;
}

async function remove(ctx: Ctx, id: string): Promise<number> {
  const m = await ctx.mta.remove(id);
  withStore(ctx, (s) => s?.setState(id, 'deleted', new Date(), recordedSince(m)));
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
    if (!sub || !(SUBCOMMANDS as readonly string[]).includes(sub))
      throw new UsageError(sub ? `unknown subcommand "${sub}"` : 'which subcommand?');
    if (sub === 'list' ? id !== undefined : extra.length > 0) throw new UsageError('too many arguments');
    if (sub !== 'list' && !id) throw new UsageError(`${sub} needs a queue ID`);
    const { config } = loadPolicyOrExit(str(args, 'config'));
    const mta = openMta(config.mta, { configDir: postfixConfigDir(config), timeoutMs: MTA_TOOL_TIMEOUT_MS });
    const ctx: Ctx = { config, mta, json: bool(args, 'json') };
    try {
      switch (sub as (typeof SUBCOMMANDS)[number]) {
        case 'list':
          return await list(ctx);
        case 'show':
          return await show(ctx, id!);
        case 'release':
          return await release(ctx, id!);
        case 'delete':
          return await remove(ctx, id!);
      }
    } catch (err) {
      if (!(err instanceof MtaError)) throw err;
      if (ctx.json) process.stdout.write(JSON.stringify({ ok: false, error: err.message }) + '\n');
      process.stderr.write(`relayguard quarantine: ${err.message}\n`);
      return 1;
    }
  },
};
