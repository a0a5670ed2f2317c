// The offender ledger: per client IP, the offences it earned (refusals, EXPN attempts, recipients
// the MTA refused) and whether it is banned. Events older than the window no longer count
// (decay); reaching the threshold inside the window bans the IP for a while. Bans live in
// storage so they survive restarts and `relayguard unban` (another process) takes effect at the
// next connection: SQLite in the state directory by default, Redis when several gateways share it.
import { existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { RedisOffenderLedger } from './offender-ledger-redis.js';
import {
  ROW_RETENTION_MS,
  shortReason,
  type BanStatus,
  type LedgerPolicy,
  type OffenceKind,
  type OffenderLedger,
  type OffenderRow,
  type RecordResult,
} from './offender-ledger-types.js';
import { prepareStateDb, stateDbPath } from './state-file.js';
import { loadOnFirstUse } from '../primitives/first-use.js';

export type { LedgerPolicy, OffenceKind, OffenderLedger, OffenderRow } from './offender-ledger-types.js';

// Loaded on first use, not by the commands that only read the policy (start-up time).
const sqlite = loadOnFirstUse<typeof Database>(import.meta.url, 'better-sqlite3');

/** The file the offender ledger shares with the quarantine index (each has its own tables). */
/** How long a writer waits for another process's lock (the CLI against the daemon). */
const BUSY_TIMEOUT_MS = 5000;
/** Expired events and old rows are swept at most this often. */
const SWEEP_INTERVAL_MS = 60_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS offenders (
  ip           TEXT PRIMARY KEY,
  first_seen   INTEGER NOT NULL,
  last_seen    INTEGER NOT NULL,
  last_kind    TEXT,
  last_reason  TEXT,
  total        INTEGER NOT NULL DEFAULT 0,
  bans         INTEGER NOT NULL DEFAULT 0,
  banned_until INTEGER,
  country      TEXT
);
CREATE TABLE IF NOT EXISTS offender_events (
  id     INTEGER PRIMARY KEY,
  ip     TEXT NOT NULL,
  at     INTEGER NOT NULL,
  kind   TEXT NOT NULL,
  reason TEXT
);
CREATE INDEX IF NOT EXISTS offender_events_ip_at ON offender_events (ip, at);
CREATE INDEX IF NOT EXISTS offender_events_at ON offender_events (at);
`;

interface DbRow {
  ip: string;
  count: number;
  total: number;
  banned_until: number | null;
  bans: number;
  last_seen: number;
  last_kind: string | null;
  last_reason: string | null;
  country: string | null;
}

export class SqliteOffenderLedger implements OffenderLedger {
  private readonly db: Database.Database;
  private lastSweep = 0;
  private readonly stmt: {
    insertEvent: Database.Statement;
    upsert: Database.Statement;
    countSince: Database.Statement;
    getRow: Database.Statement;
    ban: Database.Statement;
    list: Database.Statement;
    lift: Database.Statement;
    forgetEvents: Database.Statement;
    sweepEvents: Database.Statement;
    sweepRows: Database.Statement;
  };

  /** `file` may be ":memory:" (tests). */
  constructor(
    file: string,
    private readonly policy: LedgerPolicy,
    private readonly now: () => number = Date.now,
  ) {
    this.db = new (sqlite())(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    this.db.exec(SCHEMA);
    // Ledgers written before the country column existed get it now (kept rows: country NULL).
    const columns = this.db.prepare('PRAGMA table_info(offenders)').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'country')) this.db.exec('ALTER TABLE offenders ADD COLUMN country TEXT');
    this.stmt = {
      insertEvent: this.db.prepare('INSERT INTO offender_events (ip, at, kind, reason) VALUES (?, ?, ?, ?)'),
      upsert: this.db.prepare(
        `INSERT INTO offenders (ip, first_seen, last_seen, last_kind, last_reason, total, country) VALUES (@ip, @at, @at, @kind, @reason, 1, @country)
         ON CONFLICT (ip) DO UPDATE SET last_seen = @at, last_kind = @kind, last_reason = @reason, total = total + 1,
                                        country = COALESCE(@country, country)`,
      ),
      countSince: this.db.prepare('SELECT COUNT(*) AS n FROM offender_events WHERE ip = ? AND at > ?'),
      getRow: this.db.prepare('SELECT banned_until, last_reason FROM offenders WHERE ip = ?'),
      ban: this.db.prepare('UPDATE offenders SET banned_until = ?, bans = bans + 1 WHERE ip = ?'),
      list: this.db.prepare(
        `SELECT o.ip, o.total, o.banned_until, o.bans, o.last_seen, o.last_kind, o.last_reason, o.country,
                (SELECT COUNT(*) FROM offender_events e WHERE e.ip = o.ip AND e.at > @since) AS count
           FROM offenders o
          WHERE o.banned_until > @now OR EXISTS (SELECT 1 FROM offender_events e WHERE e.ip = o.ip AND e.at > @since)
          ORDER BY (o.banned_until > @now) DESC, o.last_seen DESC`,
      ),
      lift: this.db.prepare('UPDATE offenders SET banned_until = NULL WHERE ip = ? AND banned_until > ?'),
      forgetEvents: this.db.prepare('DELETE FROM offender_events WHERE ip = ?'),
      sweepEvents: this.db.prepare('DELETE FROM offender_events WHERE at <= ?'),
      sweepRows: this.db.prepare(
        'DELETE FROM offenders WHERE last_seen <= ? AND (banned_until IS NULL OR banned_until <= ?)',
      ),
    };
  }

  async record(ip: string, kind: OffenceKind, reason: string, country?: string): Promise<RecordResult> {
    const at = this.now();
    const result = this.db.transaction((): RecordResult => {
      this.stmt.insertEvent.run(ip, at, kind, shortReason(reason));
      this.stmt.upsert.run({ ip, at, kind, reason: shortReason(reason), country: country ?? null });
      const count = (this.stmt.countSince.get(ip, at - this.policy.window) as { n: number }).n;
      const row = this.stmt.getRow.get(ip) as { banned_until: number | null } | undefined;
      const current = row?.banned_until && row.banned_until > at ? row.banned_until : null;
      if (current === null && count >= this.policy.threshold) {
        const until = at + this.policy.ban;
        this.stmt.ban.run(until, ip);
        return { count, bannedUntil: until, newlyBanned: true };
      }
      return { count, bannedUntil: current, newlyBanned: false };
    })();
    this.maybeSweep(at);
    return result;
  }

  async banStatus(ip: string): Promise<BanStatus | null> {
    const now = this.now();
    const row = this.stmt.getRow.get(ip) as { banned_until: number | null; last_reason: string | null } | undefined;
    if (!row?.banned_until || row.banned_until <= now) return null;
    const count = (this.stmt.countSince.get(ip, now - this.policy.window) as { n: number }).n;
    return { bannedUntil: row.banned_until, count, lastReason: row.last_reason };
  }

  async list(): Promise<OffenderRow[]> {
    const now = this.now();
    const rows = this.stmt.list.all({ now, since: now - this.policy.window }) as DbRow[];
    return rows.map((r) => ({
      ip: r.ip,
      count: r.count,
      total: r.total,
      bannedUntil: r.banned_until && r.banned_until > now ? r.banned_until : null,
      bans: r.bans,
      lastSeen: r.last_seen,
      lastKind: (r.last_kind as OffenceKind | null) ?? null,
      lastReason: r.last_reason,
      country: r.country,
    }));
  }

  async unban(ip: string): Promise<boolean> {
    const now = this.now();
    return this.db.transaction(() => {
      const lifted = this.stmt.lift.run(ip, now).changes > 0;
      // Without forgetting the offences, the next one would ban the IP again at once.
      if (lifted) this.stmt.forgetEvents.run(ip);
      return lifted;
    })();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private maybeSweep(now: number): void {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    this.stmt.sweepEvents.run(now - this.policy.window);
    this.stmt.sweepRows.run(now - ROW_RETENTION_MS, now);
  }
}

export interface LedgerLocation {
  state_dir: string;
  /** redis://... for shared state; otherwise SQLite in state_dir. */
  state?: string | undefined;
}

// Not a type guard: a false answer does not mean "no string" (a file path is one too).
function isRedisUrl(state: string): boolean {
  return /^rediss?:\/\//i.test(state);
}

export interface OpenOptions {
  now?: () => number;
  /** false (the command line): no reconnect loop for Redis. */
  reconnect?: boolean;
}

/** The ledger the settings point at (the daemon: creates the state directory and database). */
export function createOffenderLedger(
  where: LedgerLocation,
  policy: LedgerPolicy,
  opts: OpenOptions = {},
): OffenderLedger {
  if (where.state && isRedisUrl(where.state)) return new RedisOffenderLedger(where.state, policy, opts);
  if (where.state)
    throw new Error(
      `server.state "${where.state}": only redis:// URLs are supported (leave it out for SQLite in state_dir)`,
    );
  return new SqliteOffenderLedger(prepareStateDb(where.state_dir), policy, opts.now);
}

/**
 * For the command line: connects at once (failing with a clear error) and, for SQLite, creates
 * nothing: null when there is no database yet, which means there are no offenders.
 */
export async function openExistingOffenderLedger(
  where: LedgerLocation,
  policy: LedgerPolicy,
  opts: OpenOptions = {},
): Promise<OffenderLedger | null> {
  if (where.state && isRedisUrl(where.state)) {
    const ledger = new RedisOffenderLedger(where.state, policy, { ...opts, reconnect: false });
    try {
      await ledger.ready();
    } catch (err) {
      await ledger.close().catch(() => undefined);
      throw err;
    }
    return ledger;
  }
  const file = stateDbPath(where.state_dir);
  if (!existsSync(file)) return null;
  return createOffenderLedger(where, policy, opts);
}
