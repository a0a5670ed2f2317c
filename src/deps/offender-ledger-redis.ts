// The offender ledger in Redis, for several gateways that must share bans (server.state:
// redis://...). Same meaning as the SQLite ledger: per IP a sorted set of offence times (the
// window) and a hash with the totals and the ban. Recording and unbanning are Lua scripts, so two
// gateways recording at once can neither miss a ban nor ban twice. Every key expires on its own,
// which is the decay: nothing needs sweeping but the index of IPs.
import { randomBytes } from 'node:crypto';
import type * as RedisModule from 'redis';
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
import { loadOnFirstUse } from '../primitives/first-use.js';

const DEFAULT_KEY_PREFIX = 'relayguard:';
/** How long a connection attempt may take before a command fails. */
const CONNECT_TIMEOUT_MS = 2000;
/** Reconnect back-off of the daemon: grows per retry up to this. */
const MAX_RECONNECT_DELAY_MS = 5000;

// KEYS: events, row, index. ARGV: at, window, threshold, ban, kind, reason, member, retention, ip, country ('' = unknown)
const RECORD_SCRIPT = `
local at = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], at, ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', at - window)
redis.call('PEXPIRE', KEYS[1], window)
local count = redis.call('ZCARD', KEYS[1])
redis.call('HSETNX', KEYS[2], 'first_seen', ARGV[1])
redis.call('HSET', KEYS[2], 'last_seen', ARGV[1], 'last_kind', ARGV[5], 'last_reason', ARGV[6])
redis.call('HINCRBY', KEYS[2], 'total', 1)
if ARGV[10] ~= '' then redis.call('HSET', KEYS[2], 'country', ARGV[10]) end
local banned = tonumber(redis.call('HGET', KEYS[2], 'banned_until') or '0')
local newly = 0
if banned <= at then
  banned = 0
  if count >= tonumber(ARGV[3]) then
    banned = at + tonumber(ARGV[4])
    newly = 1
    redis.call('HSET', KEYS[2], 'banned_until', banned)
    redis.call('HINCRBY', KEYS[2], 'bans', 1)
  end
end
redis.call('PEXPIRE', KEYS[2], math.max(tonumber(ARGV[8]), banned - at))
redis.call('ZADD', KEYS[3], at, ARGV[9])
return {count, tostring(banned), newly}
`;

// KEYS: events, row. ARGV: now
const UNBAN_SCRIPT = `
local banned = tonumber(redis.call('HGET', KEYS[2], 'banned_until') or '0')
if banned <= tonumber(ARGV[1]) then return 0 end
redis.call('HDEL', KEYS[2], 'banned_until')
redis.call('DEL', KEYS[1])
return 1
`;

export interface RedisLedgerOptions {
  now?: () => number;
  prefix?: string;
  /** Keep reconnecting (the daemon) or fail at once (the command line). */
  reconnect?: boolean;
}

type Client = ReturnType<typeof RedisModule.createClient>;

/** The redis client is loaded on first use: every command and every start paid for loading it
 *  (bench/RESULTS.md, "Latest: every target on the final build"), while only gateways that
 *  share their ledger in Redis need it. */
const loadRedis = loadOnFirstUse<typeof RedisModule>(import.meta.url, 'redis');

export class RedisOffenderLedger implements OffenderLedger {
  private readonly client: Client;
  private readonly connecting: Promise<unknown>;
  /** Settles on the first connect success or failure; the reconnect loop goes on in the background. */
  private readonly firstAttempt: Promise<void>;
  private readonly now: () => number;
  private readonly prefix: string;
  private lastError = '';

  constructor(
    url: string,
    private readonly policy: LedgerPolicy,
    opts: RedisLedgerOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.prefix = opts.prefix ?? DEFAULT_KEY_PREFIX;
    this.client = loadRedis().createClient({
      url,
      // A command while Redis is away fails at once instead of waiting in a queue: the rule
      // treats that as "no ledger" and lets mail through.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: CONNECT_TIMEOUT_MS,
        reconnectStrategy:
          opts.reconnect === false ? false : (retries) => Math.min(100 * 2 ** retries, MAX_RECONNECT_DELAY_MS),
      },
    });
    // Without a listener an 'error' event would end the process; the failing command reports it.
    this.client.on('error', (err: Error) => {
      this.lastError = err.message;
    });
    let attempted!: () => void;
    this.firstAttempt = new Promise<void>((resolve) => (attempted = resolve));
    this.client.once('error', () => attempted());
    // connect() settles only once connected (or given up): with reconnects it may wait for long.
    this.connecting = this.client.connect().then(
      () => attempted(),
      (err: Error) => {
        this.lastError = err.message;
        attempted();
      },
    );
  }

  /** Rejects at once when Redis is not reachable now (after the first connection attempt). */
  async ready(): Promise<void> {
    if (this.client.isReady) return;
    await this.firstAttempt;
    if (!this.client.isReady) throw new Error(`redis not reachable${this.lastError ? `: ${this.lastError}` : ''}`);
  }

  async record(ip: string, kind: OffenceKind, reason: string, country?: string): Promise<RecordResult> {
    await this.ready();
    const at = this.now();
    const member = `${at}:${randomBytes(4).toString('hex')}:${kind}`;
    const reply = (await this.client.eval(RECORD_SCRIPT, {
      keys: [this.eventsKey(ip), this.rowKey(ip), this.indexKey()],
      arguments: [
        at,
        this.policy.window,
        this.policy.threshold,
        this.policy.ban,
        kind,
        shortReason(reason),
        member,
        ROW_RETENTION_MS,
        ip,
        country ?? '',
      ].map(String),
    })) as [number, string, number];
    const banned = Number(reply[1]);
    return { count: Number(reply[0]), bannedUntil: banned > 0 ? banned : null, newlyBanned: Number(reply[2]) === 1 };
  }

  async banStatus(ip: string): Promise<BanStatus | null> {
    await this.ready();
    const now = this.now();
    const [until, lastReason] = await this.client.hmGet(this.rowKey(ip), ['banned_until', 'last_reason']);
    const bannedUntil = Number(until ?? 0);
    if (!(bannedUntil > now)) return null;
    const count = await this.client.zCount(this.eventsKey(ip), now - this.policy.window + 1, '+inf');
    return { bannedUntil, count, lastReason: lastReason ?? null };
  }

  async list(): Promise<OffenderRow[]> {
    await this.ready();
    const now = this.now();
    await this.client.zRemRangeByScore(this.indexKey(), '-inf', now - ROW_RETENTION_MS);
    const ips = await this.client.zRange(this.indexKey(), 0, -1);
    const rows: OffenderRow[] = [];
    for (const ip of ips) {
      const h = await this.client.hGetAll(this.rowKey(ip));
      if (!h.last_seen) continue;
      const count = await this.client.zCount(this.eventsKey(ip), now - this.policy.window + 1, '+inf');
      const until = Number(h.banned_until ?? 0);
      const bannedUntil = until > now ? until : null;
      if (count === 0 && bannedUntil === null) continue;
      rows.push({
        ip,
        count,
        total: Number(h.total ?? 0),
        bannedUntil,
        bans: Number(h.bans ?? 0),
        lastSeen: Number(h.last_seen),
        lastKind: (h.last_kind as OffenceKind | undefined) ?? null,
        lastReason: h.last_reason ?? null,
        country: h.country ?? null,
      });
    }
    return rows.sort(
      (a, b) => Number(b.bannedUntil !== null) - Number(a.bannedUntil !== null) || b.lastSeen - a.lastSeen,
    );
  }

  async unban(ip: string): Promise<boolean> {
    await this.ready();
    const reply = await this.client.eval(UNBAN_SCRIPT, {
      keys: [this.eventsKey(ip), this.rowKey(ip)],
      arguments: [String(this.now())],
    });
    return Number(reply) === 1;
  }

  async close(): Promise<void> {
    try {
      // close() waits for pending replies; a client still trying to connect is simply dropped.
      if (this.client.isReady) await this.client.close();
      else if (this.client.isOpen) this.client.destroy();
    } catch {
      /* closing is best effort */
    }
    await this.connecting;
  }

  private rowKey(ip: string): string {
    return `${this.prefix}offender:${ip}`;
  }

  private eventsKey(ip: string): string {
    return `${this.prefix}offender-events:${ip}`;
  }

  private indexKey(): string {
    return `${this.prefix}offenders`;
  }
}
