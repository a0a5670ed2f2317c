// The quarantine index: why each message went to the MTA's hold queue. The message itself stays
// in Postfix's hold queue (the MTA owns it, so nothing is lost when relayguard restarts); this
// SQLite table only remembers what Postfix does not: which rule held it, why, and the reference
// printed in the log. `relayguard quarantine` joins the two.
import { existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { Logger } from 'winston';
import type { Decision } from '../policy/decision.js';
import { prepareStateDb, stateDbPath } from './state-file.js';
import { loadOnFirstUse } from '../primitives/first-use.js';

// Loaded on first use, not by the commands that only read the policy (start-up time).
const sqlite = loadOnFirstUse<typeof Database>(import.meta.url, 'better-sqlite3');

/** serve writes while the CLI reads and updates: wait for the other's lock instead of failing. */
const BUSY_TIMEOUT_MS = 5000;

export type QuarantineState = 'held' | 'released' | 'deleted';

export interface NewQuarantineRecord {
  queueId: string;
  time?: Date;
  rule: string;
  reason: string;
  direction: string;
  sender: string;
  recipients: string[];
  ref: string;
}

export interface QuarantineRecord extends Required<NewQuarantineRecord> {
  id: number;
  state: QuarantineState;
  /** When the state last changed (release, delete). */
  stateTime?: Date;
}

interface Row {
  id: number;
  queue_id: string;
  time: number;
  rule: string;
  reason: string;
  direction: string;
  sender: string;
  recipients: string;
  ref: string;
  state: QuarantineState;
  state_time: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS quarantine (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  queue_id   TEXT    NOT NULL,
  time       INTEGER NOT NULL,
  rule       TEXT    NOT NULL,
  reason     TEXT    NOT NULL,
  direction  TEXT    NOT NULL,
  sender     TEXT    NOT NULL,
  recipients TEXT    NOT NULL,
  ref        TEXT    NOT NULL,
  state      TEXT    NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'released', 'deleted')),
  state_time INTEGER
);
CREATE INDEX IF NOT EXISTS quarantine_queue_id ON quarantine (queue_id);
`;

export class QuarantineStore {
  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    db.exec(SCHEMA);
  }

  /** The daemon: creates the state directory and the database when missing. */
  static open(stateDir: string): QuarantineStore {
    const path = prepareStateDb(stateDir);
    return new QuarantineStore(new (sqlite())(path), path);
  }

  /** The command line: never creates the database (that is the daemon's job, with its owner); null when absent. */
  static openExisting(stateDir: string): QuarantineStore | null {
    const path = stateDbPath(stateDir);
    if (!existsSync(path)) return null;
    return new QuarantineStore(new (sqlite())(path, { fileMustExist: true }), path);
  }

  record(r: NewQuarantineRecord): QuarantineRecord {
    const time = r.time ?? new Date();
    const info = this.db
      .prepare(
        `INSERT INTO quarantine (queue_id, time, rule, reason, direction, sender, recipients, ref, state)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'held')`,
      )
      .run(r.queueId, time.getTime(), r.rule, r.reason, r.direction, r.sender, JSON.stringify(r.recipients), r.ref);
    return { ...r, time, id: Number(info.lastInsertRowid), state: 'held' };
  }

  /**
   * The newest record of a queue ID, made at `since` or later. Postfix's short IDs come back: a
   * record made before the message now queued under the ID arrived is of an earlier message.
   */
  latest(queueId: string, since?: Date): QuarantineRecord | undefined {
    const row = this.db
      .prepare('SELECT * FROM quarantine WHERE queue_id = ? AND time >= ? ORDER BY id DESC LIMIT 1')
      .get(queueId, since?.getTime() ?? 0) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(state?: QuarantineState): QuarantineRecord[] {
    const rows = (
      state
        ? this.db.prepare('SELECT * FROM quarantine WHERE state = ? ORDER BY id').all(state)
        : this.db.prepare('SELECT * FROM quarantine ORDER BY id').all()
    ) as Row[];
    return rows.map(fromRow);
  }

  /** Marks the newest held record of `queueId` made at `since` or later (see latest); false when there is none. */
  setState(queueId: string, state: QuarantineState, when: Date = new Date(), since?: Date): boolean {
    const info = this.db
      .prepare(
        `UPDATE quarantine SET state = ?, state_time = ?
         WHERE id = (SELECT id FROM quarantine WHERE queue_id = ? AND state = 'held' AND time >= ?
                     ORDER BY id DESC LIMIT 1)`,
      )
      .run(state, when.getTime(), queueId, since?.getTime() ?? 0);
    return info.changes > 0;
  }

  close(): void {
    this.db.close();
  }
}

function fromRow(row: Row): QuarantineRecord {
  let recipients: string[] = [];
  try {
    const parsed: unknown = JSON.parse(row.recipients);
    if (Array.isArray(parsed)) recipients = parsed.map(String);
  } catch {
    /* a damaged row still lists */
  }
  return {
    id: row.id,
    queueId: row.queue_id,
    time: new Date(row.time),
    rule: row.rule,
    reason: row.reason,
    direction: row.direction,
    sender: row.sender,
    recipients,
    ref: row.ref,
    state: row.state,
    ...(row.state_time !== null ? { stateTime: new Date(row.state_time) } : {}),
  };
}

/**
 * For the serve command's decision listener: index a message the MTA was told to hold.
 * Returns the record, or null when the decision is not a hold. Never throws: a failing index
 * must not disturb mail flow (the message is safe in the hold queue either way); errors are logged.
 */
export function recordQuarantine(store: QuarantineStore, d: Decision): QuarantineRecord | null {
  if (d.outcome.action !== 'quarantine' || !d.msg) return null;
  const msg = d.msg;
  const rule = d.outcome.rule ?? d.trace.find((t) => t.action === 'quarantine' && !t.monitor)?.rule ?? 'unknown';
  try {
    return store.record({
      queueId: msg.queueId ?? '',
      rule,
      reason: d.outcome.quarantine ?? d.outcome.reason ?? '',
      direction: msg.direction,
      sender: msg.sender?.raw ?? '',
      recipients: msg.recipients.filter((r) => !r.refused).map((r) => r.address.raw),
      ref: d.outcome.ref ?? '',
    });
  } catch (err) {
    (msg.log ?? d.conn.log).error(
      `quarantine index: cannot record ${msg.queueId ?? '(no queue id)'}: ${(err as Error).message}`,
    );
    return null;
  }
}

/** One store per state directory for the daemon's lifetime: a policy reload does not reopen it. */
const daemonStores = new Map<string, QuarantineStore>();

/**
 * A decision listener for `relayguard serve` (src/cli/serve.ts decisionListeners): records every
 * hold in the store under the policy's server.state_dir.
 */
export function quarantineDecisionListener(policy: {
  config: { server: { state_dir: string } };
  log: Logger;
}): (d: Decision) => void {
  const dir = policy.config.server.state_dir;
  let store = daemonStores.get(dir);
  if (!store) {
    try {
      store = QuarantineStore.open(dir);
      daemonStores.set(dir, store);
    } catch (err) {
      const why = (err as Error).message;
      policy.log.error(
        `quarantine index: cannot open ${stateDbPath(dir)}: ${why}; held messages stay in the hold queue without a recorded reason`,
      );
      return (d) => {
        if (d.outcome.action === 'quarantine')
          policy.log.error(
            `quarantine index unavailable (${why}): ${d.msg?.queueId ?? '?'} held for "${d.outcome.quarantine ?? ''}" is not recorded`,
          );
      };
    }
  }
  const s = store;
  return (d) => {
    if (d.outcome.action === 'quarantine') recordQuarantine(s, d);
  };
}
