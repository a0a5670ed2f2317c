// The parts of `relayguard quarantine` that are not about one subcommand: the error type that
// becomes "exit 1 with a message", the command context, the quarantine index access and the
// output, the same whichever MTA (deps/mta.ts) holds the messages.
import type { PolicyConfig } from '../rules/policy-schema.js';
import type { Mta } from '../deps/mta.js';
import { QuarantineStore } from '../deps/quarantine-store.js';
import { showable } from '../primitives/safe-text.js';

export interface Ctx {
  config: PolicyConfig;
  mta: Mta;
  json: boolean;
}

/**
 * Runs `fn` with relayguard's quarantine index, or with null when it cannot be opened: the MTA's
 * queue is the truth, the index only adds why a message was held, so a missing index is a warning.
 */
export function withStore<T>(ctx: Ctx, fn: (store: QuarantineStore | null) => T): T {
  let store: QuarantineStore | null = null;
  try {
    store = QuarantineStore.openExisting(ctx.config.server.state_dir);
  } catch (err) {
    process.stderr.write(
      `relayguard quarantine: warning: cannot open the quarantine index in ${ctx.config.server.state_dir}: ${(err as Error).message}\n`,
    );
  }
  try {
    return fn(store);
  } finally {
    store?.close();
  }
}

const fmtTime = (d: Date): string =>
  d
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');

/** One row of `quarantine list`, the same for Postfix and Sendmail (also the --json shape). */
export interface HeldRow {
  queue_id: string;
  arrival_time: string;
  size: number;
  sender: string;
  recipients: string[];
  rule: string | null;
  reason: string | null;
  direction: string | null;
  ref: string | null;
}

/**
 * Prints `quarantine list`: JSON, or two lines per message and a count. `unknownWhy` is shown
 * for a message relayguard's index knows nothing about; `empty` and `noun` name the queue.
 */
export function printHeldRows(
  ctx: Ctx,
  rows: HeldRow[],
  text: { empty: string; noun: string; unknownWhy: (r: HeldRow) => string },
): number {
  if (ctx.json) {
    process.stdout.write(JSON.stringify({ messages: rows }, null, 2) + '\n');
    return 0;
  }
  if (rows.length === 0) {
    process.stdout.write(`${text.empty}\n`);
    return 0;
  }
  for (const r of rows) {
    const why = r.rule ? `${r.rule}: ${r.reason}` : text.unknownWhy(r);
    // Addresses and reasons come from the sender: shown escaped, no terminal escape acts.
    process.stdout.write(
      showable(
        `${r.queue_id}  ${fmtTime(new Date(r.arrival_time))}  ${r.size} bytes  ${r.direction ?? '-'}  ${why}${r.ref ? `  ref ${r.ref}` : ''}`,
      ) + '\n',
    );
    process.stdout.write(showable(`    from <${r.sender}> to ${r.recipients.map((a) => `<${a}>`).join(', ')}`) + '\n');
  }
  process.stdout.write(`${rows.length} message${rows.length === 1 ? '' : 's'} ${text.noun}.\n`);
  return 0;
}

/** The summary `quarantine show` prints above the message itself, for either MTA. */
export function heldSummaryLines(info: HeldRow, queueLabel: string, arrived: Date): string[] {
  const lines = [
    `Queue ID:   ${info.queue_id} (${queueLabel})`,
    `Arrived:    ${fmtTime(arrived)}`,
    `Size:       ${info.size} bytes`,
    `Sender:     <${info.sender}>`,
    `Recipients: ${info.recipients.map((a) => `<${a}>`).join(', ')}`,
    `Direction:  ${info.direction ?? '-'}`,
    `Held by:    ${info.rule ?? '(unknown: not in the quarantine index)'}`,
    `Reason:     ${info.reason ?? '-'}`,
    `Reference:  ${info.ref ?? '-'}`,
    '',
  ];
  return lines.map(showable);
}
