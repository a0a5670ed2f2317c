// `relayguard quarantine` when the policy says mta.kind: sendmail. Sendmail keeps a quarantined
// message in its own queue (hf control file with the reason); src/mta/sendmail-queue.ts reads and
// acts on it with Sendmail's own commands. Output matches the Postfix side, so scripts that read
// `--json` need not care which MTA is in front.
import type { QuarantineRecord } from '../deps/quarantine-store.js';
import {
  deleteQuarantined,
  listQuarantined,
  quarantinedContent,
  quarantinedMessage,
  releaseQuarantined,
  SendmailQueueError,
  type QuarantinedMessage,
  type SendmailQueueOptions,
} from '../mta/sendmail-queue.js';
import { CliError, heldSummaryLines, printHeldRows, withStore, type Ctx } from './quarantine-common.js';

export const SENDMAIL_SUBCOMMANDS = ['list', 'show', 'release', 'delete'] as const;
type Sub = (typeof SENDMAIL_SUBCOMMANDS)[number];

function queueOptions(ctx: Ctx): SendmailQueueOptions {
  return { sendmail: ctx.config.mta.sendmail, cf: ctx.config.mta.sendmail_cf };
}

function describe(m: QuarantinedMessage, rec: QuarantineRecord | undefined) {
  return {
    queue_id: m.queueId,
    queue: 'quarantine',
    arrival_time: m.arrivalTime.toISOString(),
    size: m.size,
    sender: m.sender,
    recipients: m.recipients,
    rule: rec?.rule ?? null,
    // Sendmail stores the reason with the job; the index adds the rule and direction.
    reason: rec?.reason ?? m.reason,
    direction: rec?.direction ?? null,
    ref: rec?.ref ?? null,
    quarantined_at: rec?.time.toISOString() ?? null,
  };
}

async function list(ctx: Ctx): Promise<number> {
  const held = await listQuarantined(queueOptions(ctx));
  const rows = withStore(ctx, (store) => held.map((m) => describe(m, store?.latest(m.queueId))));
  return printHeldRows(ctx, rows, { empty: "Sendmail's quarantine is empty.", noun: 'quarantined', unknownWhy: (r) => r.reason ?? '-' });
}

async function show(ctx: Ctx, id: string): Promise<number> {
  const m = await quarantinedMessage(queueOptions(ctx), id);
  const info = describe(
    m,
    withStore(ctx, (s) => s?.latest(id)),
  );
  const content = await quarantinedContent(m);
  if (ctx.json) {
    process.stdout.write(JSON.stringify({ ...info, content: content.toString('latin1') }, null, 2) + '\n');
    return 0;
  }
  const lines = heldSummaryLines(info, 'Sendmail quarantine', m.arrivalTime);
  process.stdout.write(lines.join('\n') + '\n');
  process.stdout.write(content);
  return 0;
}

async function release(ctx: Ctx, id: string): Promise<number> {
  const r = await releaseQuarantined(queueOptions(ctx), id);
  if (r.warning) process.stderr.write(`relayguard quarantine: warning: ${r.warning}; Sendmail will deliver it at its next queue run\n`);
  withStore(ctx, (s) => s?.setState(id, 'released'));
  if (ctx.json) process.stdout.write(JSON.stringify({ ok: true, queue_id: id, action: 'released', ...(r.warning ? { warning: r.warning } : {}) }) + '\n');
  else process.stdout.write(`${id}: quarantine lifted${r.warning ? '' : ', delivery requested'}\n`);
  return 0;
}

async function remove(ctx: Ctx, id: string): Promise<number> {
  await deleteQuarantined(queueOptions(ctx), id);
  withStore(ctx, (s) => s?.setState(id, 'deleted'));
  if (ctx.json) process.stdout.write(JSON.stringify({ ok: true, queue_id: id, action: 'deleted' }) + '\n');
  else process.stdout.write(`${id}: deleted\n`);
  return 0;
}

/** One subcommand against Sendmail's quarantine; queue errors become CliErrors (exit 1). */
export async function runSendmailQuarantine(sub: Sub, id: string | undefined, ctx: Ctx): Promise<number> {
  try {
    if (sub === 'list') return await list(ctx);
    if (!id) throw new CliError(`${sub}: which queue ID?`);
    if (sub === 'show') return await show(ctx, id);
    if (sub === 'release') return await release(ctx, id);
    return await remove(ctx, id);
  } catch (err) {
    if (err instanceof SendmailQueueError) throw new CliError(err.message);
    throw err;
  }
}
