// Scans sharing clamd connections (IDSESSION), against a fake clamd that speaks the session
// protocol: a connection is reused only after a complete verdict for its own request id, and
// every way a session can go wrong (closed between scans, a reply for another request, silence,
// a failed PING) ends in an error or a fresh connection, never in "clean" by accident.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CircuitBreaker } from '../../src/deps/circuit-breaker.js';
import { ClamdClient, ClamdService } from '../../src/deps/clamd.js';
import type { SessionPoolOptions } from '../../src/deps/clamd-sessions.js';

/** One command as the fake clamd read it. */
interface Command {
  conn: number;
  name: string;
  /** The request id clamd gives it within the session (0 outside a session). */
  id: number;
  data: Buffer;
  sock: Socket;
}

interface FakeClamd {
  address: string;
  commands: Command[];
  connections: number;
  closed: number;
}

const dir = mkdtempSync(join(tmpdir(), 'rg-clamd-sessions-'));
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});
let socketNo = 0;

/**
 * A clamd that reads z-commands (IDSESSION, INSTREAM with its chunks, PING, END) and lets
 * `answer` reply to each; the default answers as clamd does: "<id>: stream: OK", "<id>: PONG".
 */
async function fakeClamd(answer?: (c: Command, f: FakeClamd) => void): Promise<FakeClamd> {
  const f: FakeClamd = { address: '', commands: [], connections: 0, closed: 0 };
  const reply = answer ?? defaultAnswer;
  const server = createServer((sock) => {
    const conn = ++f.connections;
    let buf = Buffer.alloc(0);
    let session = false;
    let nextId = 1;
    let stream: Buffer[] | null = null;
    let streamId = 0;
    sock.on('error', () => undefined);
    sock.on('close', () => f.closed++);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (stream) {
          if (buf.length < 4) return;
          const len = buf.readUInt32BE(0);
          if (buf.length < 4 + len) return;
          if (len > 0) stream.push(Buffer.from(buf.subarray(4, 4 + len)));
          buf = buf.subarray(4 + len);
          if (len === 0) {
            const c: Command = { conn, name: 'INSTREAM', id: streamId, data: Buffer.concat(stream), sock };
            stream = null;
            f.commands.push(c);
            reply(c, f);
          }
          continue;
        }
        const nul = buf.indexOf(0);
        if (nul < 0) return;
        const name = buf.subarray(1, nul).toString();
        buf = buf.subarray(nul + 1);
        if (name === 'IDSESSION') {
          session = true;
          continue;
        }
        const id = session ? nextId++ : 0;
        if (name === 'INSTREAM') {
          stream = [];
          streamId = id;
          continue;
        }
        const c: Command = { conn, name, id, data: Buffer.alloc(0), sock };
        f.commands.push(c);
        if (name === 'END') sock.end();
        else reply(c, f);
      }
    });
  });
  servers.push(server);
  const path = join(dir, `clamd-${++socketNo}.sock`);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  f.address = `unix:${path}`;
  return f;
}

function defaultAnswer(c: Command): void {
  const prefix = c.id ? `${c.id}: ` : '';
  if (c.name === 'PING') c.sock.write(`${prefix}PONG\0`);
  else if (c.name === 'INSTREAM')
    c.sock.write(`${prefix}${c.data.includes('EICAR') ? 'stream: Eicar-Test FOUND' : 'stream: OK'}\0`);
}

const POOL: SessionPoolOptions = { maxIdle: 4, idleMs: 10_000, checkAfterMs: 60_000, pingTimeoutMs: 300 };

function client(f: FakeClamd, pool: Partial<SessionPoolOptions> = {}, timeoutMs = 2_000): ClamdClient {
  return new ClamdClient({ address: f.address, timeoutMs, sessions: { ...POOL, ...pool } });
}

async function scan(c: ClamdClient | ClamdService, text: string) {
  const s = c.instream();
  await s.write(Buffer.from(text));
  return s.end();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('clamd sessions (IDSESSION)', () => {
  test('scans one after another share one connection; each reply carries its request id', async () => {
    const f = await fakeClamd();
    const c = client(f);
    assert.deepEqual(await scan(c, 'hello'), { status: 'clean' });
    assert.deepEqual(await scan(c, 'X EICAR X'), { status: 'infected', signature: 'Eicar-Test' });
    assert.deepEqual(await scan(c, 'again'), { status: 'clean' });
    assert.equal(f.connections, 1);
    assert.deepEqual(
      f.commands.map((x) => [x.conn, x.name, x.id, x.data.toString()]),
      [
        [1, 'INSTREAM', 1, 'hello'],
        [1, 'INSTREAM', 2, 'X EICAR X'],
        [1, 'INSTREAM', 3, 'again'],
      ],
    );
    c.close();
  });

  test('scans at the same time get connections of their own; at most maxIdle stay open, the rest are ENDed', async () => {
    const f = await fakeClamd();
    const c = client(f, { maxIdle: 2 });
    const results = await Promise.all([1, 2, 3, 4].map((i) => scan(c, `message ${i}`)));
    assert.deepEqual(results, Array(4).fill({ status: 'clean' }));
    assert.equal(f.connections, 4);
    assert.equal(c.pool!.idleCount, 2);
    await sleep(50);
    assert.equal(f.commands.filter((x) => x.name === 'END').length, 2);
    c.close();
    await sleep(50);
    assert.equal(f.commands.filter((x) => x.name === 'END').length, 4);
  });

  test('a session clamd closed between scans is dropped: the next scan opens a new one and is scanned', async () => {
    const f = await fakeClamd((cmd, fake) => {
      defaultAnswer(cmd);
      if (cmd.conn === 1) setTimeout(() => cmd.sock.end(), 20); // as clamd's IdleTimeout does
      void fake;
    });
    const c = client(f);
    assert.deepEqual(await scan(c, 'one'), { status: 'clean' });
    await sleep(80);
    assert.equal(c.pool!.idleCount, 0, 'the closed session left the pool');
    assert.deepEqual(await scan(c, 'two'), { status: 'clean' });
    assert.equal(f.connections, 2);
    assert.deepEqual(
      f.commands.map((x) => [x.conn, x.data.toString()]),
      [
        [1, 'one'],
        [2, 'two'],
      ],
    );
    c.close();
  });

  test('clamd closing the session just as a scan starts is an error, never clean', async () => {
    let instreams = 0;
    const f = await fakeClamd((cmd) => {
      if (cmd.name !== 'INSTREAM') return defaultAnswer(cmd);
      if (++instreams === 2)
        cmd.sock.destroy(); // second scan on the reused session: no reply
      else defaultAnswer(cmd);
    });
    const c = client(f);
    assert.deepEqual(await scan(c, 'one'), { status: 'clean' });
    const r = await scan(c, 'two');
    assert.equal(r.status, 'error');
    assert.ok(r.status === 'error' && ['io', 'empty-reply'].includes(r.reason), JSON.stringify(r));
    assert.deepEqual(await scan(c, 'three'), { status: 'clean' });
    assert.equal(f.connections, 2);
    c.close();
  });

  test('a reply for another request id is an error, and that connection is not used again', async () => {
    const f = await fakeClamd((cmd) => {
      if (cmd.name === 'INSTREAM' && cmd.conn === 1 && cmd.id === 2) cmd.sock.write(`1: stream: OK\0`);
      else defaultAnswer(cmd);
    });
    const c = client(f);
    assert.deepEqual(await scan(c, 'one'), { status: 'clean' });
    const r = await scan(c, 'two');
    assert.equal(r.status, 'error');
    assert.ok(
      r.status === 'error' && r.reason === 'unknown-reply' && /request 1, expected 2/.test(r.message ?? ''),
      JSON.stringify(r),
    );
    assert.deepEqual(await scan(c, 'three'), { status: 'clean' });
    assert.deepEqual(
      f.commands.filter((x) => x.name === 'INSTREAM').map((x) => [x.conn, x.id]),
      [
        [1, 1],
        [1, 2],
        [2, 1],
      ],
    );
    await sleep(30);
    assert.ok(f.closed >= 1, 'the confused connection was closed');
    c.close();
  });

  test('a reply without an id, or with bytes after it, is not taken as a verdict for a session', async () => {
    const f = await fakeClamd((cmd) => {
      if (cmd.name !== 'INSTREAM') return defaultAnswer(cmd);
      if (cmd.id === 1) cmd.sock.write('stream: OK\0');
    });
    const c = client(f);
    const r = await scan(c, 'one');
    assert.ok(r.status === 'error' && r.reason === 'unknown-reply', JSON.stringify(r));

    const g = await fakeClamd((cmd) => {
      if (cmd.name !== 'INSTREAM') return defaultAnswer(cmd);
      cmd.sock.write(`${cmd.id}: stream: OK\0${cmd.id + 1}: stream: OK\0`); // a reply nobody asked for
    });
    const d = client(g);
    assert.deepEqual(await scan(d, 'one'), { status: 'clean' });
    assert.equal(d.pool!.idleCount, 0, 'a connection with stray bytes is not pooled');
    assert.deepEqual(await scan(d, 'two'), { status: 'clean' });
    assert.equal(g.connections, 2);
    c.close();
    d.close();
  });

  test('a hung session: the scan ends at the silence deadline with a timeout, and the session is dropped', async () => {
    const f = await fakeClamd((cmd) => {
      if (cmd.name === 'INSTREAM' && cmd.id === 2) return; // never answers
      defaultAnswer(cmd);
    });
    const c = client(f, {}, 200);
    assert.deepEqual(await scan(c, 'one'), { status: 'clean' });
    const t0 = performance.now();
    const r = await scan(c, 'two');
    const took = performance.now() - t0;
    assert.ok(r.status === 'error' && r.reason === 'timeout', JSON.stringify(r));
    assert.ok(took >= 180 && took < 1_500, `took ${took} ms`);
    assert.deepEqual(await scan(c, 'three'), { status: 'clean' });
    assert.equal(f.connections, 2);
    c.close();
  });

  test('the caller deadline ends a scan on a hung session too', async () => {
    const f = await fakeClamd((cmd) => {
      if (cmd.name !== 'INSTREAM') defaultAnswer(cmd);
    });
    const c = client(f, {}, 10_000);
    const s = c.instream(AbortSignal.timeout(150));
    await s.write(Buffer.from('x'));
    const r = await s.end();
    assert.ok(r.status === 'error' && r.reason === 'timeout', JSON.stringify(r));
    c.close();
  });

  test('a session idle for a while answers PING before it carries a message', async () => {
    const f = await fakeClamd();
    const c = client(f, { checkAfterMs: 30 });
    assert.deepEqual(await scan(c, 'one'), { status: 'clean' });
    await sleep(60);
    assert.deepEqual(await scan(c, 'two'), { status: 'clean' });
    assert.deepEqual(
      f.commands.map((x) => [x.conn, x.name, x.id]),
      [
        [1, 'INSTREAM', 1],
        [1, 'PING', 2],
        [1, 'INSTREAM', 3],
      ],
    );
    c.close();
  });

  test('a session that does not answer PING (or answers for another id) is replaced by a new one', async () => {
    const f = await fakeClamd((cmd) => {
      if (cmd.name === 'PING' && cmd.conn === 1) return; // silent
      if (cmd.name === 'PING' && cmd.conn === 2) return void cmd.sock.write('7: PONG\0');
      defaultAnswer(cmd);
    });
    const c = client(f, { checkAfterMs: 30, pingTimeoutMs: 100 });
    assert.deepEqual(await scan(c, 'one'), { status: 'clean' });
    await sleep(60);
    assert.deepEqual(await scan(c, 'two'), { status: 'clean' }); // conn 1 silent on PING: conn 2
    await sleep(60);
    assert.deepEqual(await scan(c, 'three'), { status: 'clean' }); // conn 2 answers for id 7: conn 3
    assert.deepEqual(
      f.commands.filter((x) => x.name === 'INSTREAM').map((x) => [x.conn, x.data.toString()]),
      [
        [1, 'one'],
        [2, 'two'],
        [3, 'three'],
      ],
    );
    c.close();
  });

  test('one idle session silent on PING: the scan does not wait on the other idle ones too', async () => {
    const f = await fakeClamd((cmd) => {
      if (cmd.name === 'PING' && cmd.conn <= 2) return; // both idle sessions hung
      defaultAnswer(cmd);
    });
    const c = client(f, { checkAfterMs: 30, pingTimeoutMs: 150 });
    await Promise.all([scan(c, 'a'), scan(c, 'b')]);
    assert.equal(c.pool!.idleCount, 2);
    await sleep(60);
    assert.deepEqual(await scan(c, 'c'), { status: 'clean' });
    assert.equal(f.connections, 3);
    assert.equal(f.commands.filter((x) => x.name === 'PING').length, 1, 'the second idle session was not tried');
    c.close();
  });

  test('a scan given up half-way does not hand its connection back', async () => {
    const f = await fakeClamd();
    const c = client(f);
    const s = c.instream();
    await s.write(Buffer.from('half a message'));
    s.abort('aborted');
    assert.deepEqual(await s.done, { status: 'error', reason: 'aborted' });
    assert.deepEqual(await scan(c, 'next'), { status: 'clean' });
    assert.equal(f.connections, 2);
    assert.equal(c.pool!.opened, 2);
    c.close();
  });

  test('an error reply in a session is an error and closes the session', async () => {
    const f = await fakeClamd((cmd) => {
      if (cmd.name === 'INSTREAM' && cmd.conn === 1)
        return void cmd.sock.write('1: INSTREAM size limit exceeded. ERROR\0');
      defaultAnswer(cmd);
    });
    const c = client(f);
    const r = await scan(c, 'big');
    assert.ok(r.status === 'error' && r.reason === 'size-limit', JSON.stringify(r));
    assert.deepEqual(await scan(c, 'small'), { status: 'clean' });
    assert.equal(f.connections, 2);
    c.close();
  });

  test('behind the breaker: session failures count, and an open breaker refuses without a connection', async () => {
    const f = await fakeClamd((cmd) => {
      if (cmd.name === 'INSTREAM')
        cmd.sock.write(`${cmd.id + 100}: stream: OK\0`); // always the wrong id
      else defaultAnswer(cmd);
    });
    const breaker = new CircuitBreaker({ failures: 2, cooldownMs: 60_000 });
    const service = new ClamdService({ client: client(f), breaker, probeIntervalMs: 60_000, probeTimeoutMs: 200 });
    for (let i = 0; i < 2; i++) {
      const r = await scan(service, `m${i}`);
      assert.ok(r.status === 'error' && r.reason === 'unknown-reply', JSON.stringify(r));
    }
    assert.equal(breaker.state, 'open');
    const before = f.connections;
    const r = await scan(service, 'm3');
    assert.ok(r.status === 'error' && r.reason === 'circuit-open', JSON.stringify(r));
    assert.equal(f.connections, before);
    service.close();
  });
});
