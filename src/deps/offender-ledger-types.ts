// What both offender ledgers (SQLite in offender-ledger.ts, Redis in offender-ledger-redis.ts)
// implement and share; its own file so that neither ledger imports the other's module.

/** `origin`: the origin rule's score for a client from an unexpected country or network. */
export type OffenceKind = 'rejection' | 'expn' | 'mta_rejected_recipient' | 'origin';

export interface LedgerPolicy {
  /** Offences inside `window` that trigger a ban. */
  threshold: number;
  /** ms an offence counts. */
  window: number;
  /** ms a ban lasts. */
  ban: number;
}

export interface RecordResult {
  /** Offences inside the window, this one included. */
  count: number;
  /** Epoch ms, or null when not banned. */
  bannedUntil: number | null;
  /** This offence started the ban. */
  newlyBanned: boolean;
}

export interface BanStatus {
  bannedUntil: number;
  /** Offences inside the window when asked. */
  count: number;
  lastReason: string | null;
}

export interface OffenderRow {
  ip: string;
  /** Offences inside the window. */
  count: number;
  /** Every offence ever recorded for this IP (while its row was kept). */
  total: number;
  /** Epoch ms of an active ban, else null. */
  bannedUntil: number | null;
  bans: number;
  lastSeen: number;
  lastKind: OffenceKind | null;
  lastReason: string | null;
  /** ISO 3166 country of the address when it was last recorded (origin rule), else null. */
  country: string | null;
}

export interface OffenderLedger {
  /** `country`: where the origin rule placed the address (kept with the row), when known. */
  record(ip: string, kind: OffenceKind, reason: string, country?: string): Promise<RecordResult>;
  /** The active ban of `ip`, or null. */
  banStatus(ip: string): Promise<BanStatus | null>;
  /** Every IP with an active ban or offences inside the window, banned first. */
  list(): Promise<OffenderRow[]>;
  /** Lifts an active ban and forgets the IP's offences; false when it was not banned. */
  unban(ip: string): Promise<boolean>;
  close(): Promise<void>;
}

/** Rows without offences or ban are deleted after this, so the table does not grow forever. */
export const ROW_RETENTION_MS = 7 * 86_400_000;
/** Reasons are kept short: they are for the operator's overview, the log has the rest. */
const MAX_REASON_LENGTH = 200;

export const shortReason = (r: string) =>
  r.length > MAX_REASON_LENGTH ? `${r.slice(0, MAX_REASON_LENGTH - 3)}...` : r;
