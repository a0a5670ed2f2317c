// The same behaviour checks run against the SQLite ledger and the Redis ledger (a private
// redis-server started here on a free port).
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  createOffenderLedger,
  openExistingOffenderLedger,
  SqliteOffenderLedger,
  type LedgerPolicy,
  type OffenderLedger,
} from '../../src/deps/offender-ledger.js';
import { RedisOffenderLedger } from '../../src/deps/offender-ledger-redis.js';
import { stateDbPath } from '../../src/deps/state-file.js';

const POLICY: LedgerPolicy = { threshold: 5, window: 10 * 60_000, ban: 60 * 60_000 };
const T0 = 1_700_000_000_000;

interface Clock {
  now: number;
}

function behaviour(name: string, make: (clock: Clock) => OffenderLedger) {
  describe(`${name} ledger`, () => {
    it('bans on the threshold-th offence inside the window', async () => {
      const clock = { now: T0 };
      const l = make(clock);
      try {
        for (let i = 1; i <= 4; i++) {
          const r = await l.record('203.0.113.9', 'rejection', `relay: denied ${i}`);
          assert.deepEqual(r, { count: i, bannedUntil: null, newlyBanned: false });
          clock.now += 1000;
        }
        assert.equal(await l.banStatus('203.0.113.9'), null);
        const fifth = await l.record('203.0.113.9', 'expn', 'EXPN attempt');
        assert.deepEqual(fifth, { count: 5, bannedUntil: clock.now + POLICY.ban, newlyBanned: true });
        const status = await l.banStatus('203.0.113.9');
        assert.equal(status?.bannedUntil, clock.now + POLICY.ban);
        assert.equal(status?.count, 5);
        assert.equal(status?.lastReason, 'EXPN attempt');
        // Another offence while banned does not start a new ban.
        const sixth = await l.record('203.0.113.9', 'rejection', 'again');
        assert.equal(sixth.newlyBanned, false);
        assert.equal(sixth.bannedUntil, fifth.bannedUntil);
        // Other addresses are unaffected.
        assert.equal(await l.banStatus('203.0.113.10'), null);
      } finally {
        await l.close();
      }
    });

    it('keeps the country given with an offence (origin rule); an offence without one keeps it', async () => {
      const clock = { now: T0 };
      const l = make(clock);
      try {
        await l.record('198.51.100.30', 'origin', 'origin: RU AS64501', 'RU');
        await l.record('198.51.100.30', 'rejection', 'relay: denied');
        await l.record('198.51.100.31', 'expn', 'EXPN attempt');
        const rows = await l.list();
        assert.deepEqual(rows.map((r) => [r.ip, r.country, r.lastKind]).sort(), [
          ['198.51.100.30', 'RU', 'rejection'],
          ['198.51.100.31', null, 'expn'],
        ]);
      } finally {
        await l.close();
      }
    });

    it('old offences decay: five spread over more than the window are no ban', async () => {
      const clock = { now: T0 };
      const l = make(clock);
      try {
        for (let i = 0; i < 8; i++) {
          const r = await l.record('198.51.100.20', 'rejection', 'x');
          assert.equal(r.newlyBanned, false, `offence ${i + 1}`);
          assert.ok(r.count <= 3);
          clock.now += POLICY.window / 3 + 1000;
        }
      } finally {
        await l.close();
      }
    });

    it('a ban ends by itself after the ban time', async () => {
      const clock = { now: T0 };
      const l = make(clock);
      try {
        for (let i = 0; i < 5; i++) await l.record('192.0.2.77', 'rejection', 'x');
        assert.notEqual(await l.banStatus('192.0.2.77'), null);
        clock.now += POLICY.ban - 1;
        assert.notEqual(await l.banStatus('192.0.2.77'), null);
        clock.now += 2;
        assert.equal(await l.banStatus('192.0.2.77'), null);
        assert.deepEqual(await l.list(), []);
      } finally {
        await l.close();
      }
    });

    it('unban lifts the ban and forgets the offences; a second unban says false', async () => {
      const clock = { now: T0 };
      const l = make(clock);
      try {
        for (let i = 0; i < 5; i++) await l.record('203.0.113.50', 'rejection', 'x');
        assert.equal(await l.unban('203.0.113.50'), true);
        assert.equal(await l.banStatus('203.0.113.50'), null);
        assert.equal(await l.unban('203.0.113.50'), false);
        assert.equal(await l.unban('203.0.113.51'), false);
        // The count starts again from zero.
        const r = await l.record('203.0.113.50', 'rejection', 'x');
        assert.equal(r.count, 1);
        assert.equal(r.newlyBanned, false);
      } finally {
        await l.close();
      }
    });

    it('lists banned addresses first, with counts in the window and totals', async () => {
      const clock = { now: T0 };
      const l = make(clock);
      try {
        await l.record('203.0.113.1', 'rejection', 'one');
        clock.now += 1000;
        for (let i = 0; i < 5; i++) await l.record('203.0.113.2', 'mta_rejected_recipient', 'probe');
        clock.now += 1000;
        await l.record('203.0.113.3', 'expn', 'EXPN');
        const rows = await l.list();
        assert.deepEqual(
          rows.map((r) => [r.ip, r.count, r.total, r.bannedUntil !== null, r.bans, r.lastKind]),
          [
            ['203.0.113.2', 5, 5, true, 1, 'mta_rejected_recipient'],
            ['203.0.113.3', 1, 1, false, 0, 'expn'],
            ['203.0.113.1', 1, 1, false, 0, 'rejection'],
          ],
        );
        clock.now += POLICY.window + 1000;
        assert.deepEqual(
          (await l.list()).map((r) => [r.ip, r.count]),
          [['203.0.113.2', 0]],
        );
      } finally {
        await l.close();
      }
    });
  });
}

// ---------------------------------------------------------------- SQLite

behaviour('sqlite', (clock) => new SqliteOffenderLedger(':memory:', POLICY, () => clock.now));

describe('sqlite ledger on disk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rg-ledger-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('bans survive a restart and another process sees an unban', async () => {
    const clock = { now: T0 };
    const where = { state_dir: join(dir, 'state') };
    assert.equal(await openExistingOffenderLedger(where, POLICY), null, 'no database yet: nothing created');
    const daemon = createOffenderLedger(where, POLICY, { now: () => clock.now });
    for (let i = 0; i < 5; i++) await daemon.record('203.0.113.9', 'rejection', 'x');
    await daemon.close();
    const restarted = createOffenderLedger(where, POLICY, { now: () => clock.now });
    assert.notEqual(await restarted.banStatus('203.0.113.9'), null);
    const cli = await openExistingOffenderLedger(where, POLICY, { now: () => clock.now });
    assert.ok(cli);
    assert.equal(await cli.unban('203.0.113.9'), true);
    await cli.close();
    assert.equal(await restarted.banStatus('203.0.113.9'), null);
    await restarted.close();
  });

  it('a ledger written before the country column gets it; its rows are kept', async () => {
    const where = { state_dir: join(dir, 'old') };
    const file = stateDbPath(where.state_dir);
    mkdirSync(where.state_dir, { recursive: true });
    const db = new Database(file);
    db.exec(`CREATE TABLE offenders (ip TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, last_kind TEXT, last_reason TEXT,
               total INTEGER NOT NULL DEFAULT 0, bans INTEGER NOT NULL DEFAULT 0, banned_until INTEGER);
             CREATE TABLE offender_events (id INTEGER PRIMARY KEY, ip TEXT NOT NULL, at INTEGER NOT NULL, kind TEXT NOT NULL, reason TEXT);`);
    db.prepare(
      'INSERT INTO offenders (ip, first_seen, last_seen, last_kind, last_reason, total) VALUES (?, ?, ?, ?, ?, 1)',
    ).run('203.0.113.40', T0, T0, 'expn', 'EXPN attempt');
    db.prepare('INSERT INTO offender_events (ip, at, kind, reason) VALUES (?, ?, ?, ?)').run(
      '203.0.113.40',
      T0,
      'expn',
      'EXPN attempt',
    );
    db.close();
    const clock = { now: T0 + 1000 };
    const l = createOffenderLedger(where, POLICY, { now: () => clock.now });
    try {
      await l.record('203.0.113.41', 'origin', 'origin: KP', 'KP');
      assert.deepEqual((await l.list()).map((r) => [r.ip, r.country]).sort(), [
        ['203.0.113.40', null],
        ['203.0.113.41', 'KP'],
      ]);
    } finally {
      await l.close();
    }
  });

  it('refuses a server.state that is not a redis:// URL', () => {
    assert.throws(() => createOffenderLedger({ state_dir: dir, state: 'memcached://x' }, POLICY), /redis:\/\//);
  });
});

// ---------------------------------------------------------------- Redis

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('redis client loading', () => {
  it('is loaded only when a redis:// ledger is opened (it costs every command 0.2 s to load)', () => {
    const ledgerModule = fileURLToPath(new URL('../../src/deps/offender-ledger.js', import.meta.url));
    // A fresh process: this one has loaded the client already.
    const script = `
      import { createRequire } from 'node:module';
      const loaded = () => Object.keys(createRequire(process.cwd() + '/').cache).some((k) => k.includes('/node_modules/redis/'));
      const m = await import(${JSON.stringify(ledgerModule)});
      const afterImport = loaded();
      const l = m.createOffenderLedger({ state_dir: '/nonexistent', state: 'redis://127.0.0.1:1' }, { threshold: 1, window: 1, ban: 1 });
      await l.close();
      console.log(JSON.stringify({ afterImport, afterOpen: loaded() }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.deepEqual(JSON.parse(out.trim()), { afterImport: false, afterOpen: true });
  });
});

describe('redis', () => {
  let proc: ChildProcess;
  let url = '';
  let n = 0;
  before(async () => {
    const port = await freePort();
    proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    url = `redis://127.0.0.1:${port}`;
    const deadline = Date.now() + 5000;
    for (;;) {
      const probe = new RedisOffenderLedger(url, POLICY, { reconnect: false });
      try {
        await probe.ready();
        await probe.close();
        break;
      } catch (err) {
        await probe.close();
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
  after(() => {
    proc.kill('SIGTERM');
  });

  // Each test gets its own key prefix: the server is shared by the tests of this file.
  behaviour('redis', (clock) => new RedisOffenderLedger(url, POLICY, { now: () => clock.now, prefix: `t${++n}:` }));

  it('fails at once, with a clear error, when Redis is not there', async () => {
    const port = await freePort();
    const l = new RedisOffenderLedger(`redis://127.0.0.1:${port}`, POLICY);
    const started = Date.now();
    await assert.rejects(l.banStatus('203.0.113.9'), /redis not reachable/);
    assert.ok(Date.now() - started < 2500);
    await l.close();
  });
});
