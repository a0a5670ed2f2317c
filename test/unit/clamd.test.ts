// The clamd client against fake clamd servers: every way a scan can end must give a verdict or
// an error, never "clean" by accident, and never hang past its deadline.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { CircuitBreaker } from '../../src/deps/circuit-breaker.js';
import {
  ClamdClient,
  ClamdService,
  MAX_INSTREAM_CHUNK,
  parseClamdAddress,
  parseScanReply,
  parseVersion,
} from '../../src/deps/clamd.js';

interface Received {
  command: string;
  chunks: number[];
  data: Buffer;
  ended: boolean;
}

/** Decodes what a client sends: the command, then INSTREAM chunks until the zero length. */
function instreamReader(onChunk: (r: Received) => void, onEnd: (r: Received) => void) {
  let buf = Buffer.alloc(0);
  const r: Received = { command: '', chunks: [], data: Buffer.alloc(0), ended: false };
  const parts: Buffer[] = [];
  return (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    if (!r.command) {
      const nul = buf.indexOf(0);
      if (nul < 0) return;
      r.command = buf.subarray(0, nul).toString();
      buf = buf.subarray(nul + 1);
    }
    while (!r.ended && buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len === 0) {
        r.ended = true;
        r.data = Buffer.concat(parts);
        buf = buf.subarray(4);
        onEnd(r);
        return;
      }
      if (buf.length < 4 + len) return;
      parts.push(Buffer.from(buf.subarray(4, 4 + len)));
      r.chunks.push(len);
      buf = buf.subarray(4 + len);
      r.data = Buffer.concat(parts);
      onChunk(r);
    }
  };
}

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function fakeClamd(handler: (sock: Socket) => void, listenOn?: string): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) =>
    listenOn ? server.listen(listenOn, resolve) : server.listen(0, '127.0.0.1', resolve),
  );
  return listenOn ? `unix:${listenOn}` : `tcp:127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Answers every complete INSTREAM with `reply(data)`. */
function answering(reply: (r: Received) => string, seen?: (r: Received) => void) {
  return (sock: Socket) => {
    sock.on('error', () => undefined);
    sock.on(
      'data',
      instreamReader(
        () => undefined,
        (r) => {
          seen?.(r);
          sock.end(reply(r) + '\0');
        },
      ),
    );
  };
}

const EICAR_MARK = ['EICAR-STANDARD-', 'ANTIVIRUS-TEST-FILE'].join(''); // split: this file is not itself a test virus

describe('reply parsing', () => {
  test('known replies', () => {
    assert.deepEqual(parseScanReply('stream: OK'), { status: 'clean' });
    assert.deepEqual(parseScanReply('stream: Eicar-Signature FOUND\0'), {
      status: 'infected',
      signature: 'Eicar-Signature',
    });
    assert.equal(parseScanReply('INSTREAM size limit exceeded. ERROR').status, 'error');
    assert.equal((parseScanReply('INSTREAM size limit exceeded. ERROR') as { reason: string }).reason, 'size-limit');
    assert.equal((parseScanReply("stream: Can't allocate memory ERROR") as { reason: string }).reason, 'clamd-error');
    assert.equal((parseScanReply('') as { reason: string }).reason, 'empty-reply');
    assert.equal((parseScanReply('hello there') as { reason: string }).reason, 'unknown-reply');
    // "OK" somewhere in a strange line is not clean.
    assert.equal(parseScanReply('stream: OK but not really').status, 'error');
  });

  test('version with and without a signature database', () => {
    const v = parseVersion('ClamAV 1.4.6/27000/Sat Nov 28 09:24:02 2025\0');
    assert.equal(v.engine, '1.4.6');
    assert.equal(v.database, 27000);
    assert.ok(v.databaseDate instanceof Date && v.databaseDate.getFullYear() === 2025);
    const bare = parseVersion('ClamAV 1.4.6');
    assert.equal(bare.engine, '1.4.6');
    assert.equal(bare.database, undefined);
    assert.equal(parseVersion('nonsense').engine, undefined);
  });

  test('addresses', () => {
    assert.deepEqual(parseClamdAddress('tcp:127.0.0.1:3310'), { kind: 'tcp', host: '127.0.0.1', port: 3310 });
    assert.deepEqual(parseClamdAddress('clamd.internal:3310'), { kind: 'tcp', host: 'clamd.internal', port: 3310 });
    assert.deepEqual(parseClamdAddress('tcp:[::1]:3310'), { kind: 'tcp', host: '::1', port: 3310 });
    assert.deepEqual(parseClamdAddress('unix:/run/clamav/clamd.ctl'), { kind: 'unix', path: '/run/clamav/clamd.ctl' });
    assert.throws(() => parseClamdAddress('127.0.0.1'));
    assert.throws(() => parseClamdAddress('tcp:127.0.0.1:70000'));
    assert.throws(() => parseClamdAddress('unix:'));
  });
});

describe('INSTREAM against fake servers', () => {
  test('clean message, sent in chunks of at most 64 KiB', async () => {
    let got: Received | undefined;
    const address = await fakeClamd(
      answering(
        () => 'stream: OK',
        (r) => (got = r),
      ),
    );
    const client = new ClamdClient({ address, timeoutMs: 2000 });
    const body = Buffer.alloc(200 * 1024, 'a');
    const result = await client.scanStream(Readable.from([body.subarray(0, 150_000), body.subarray(150_000)]));
    assert.deepEqual(result, { status: 'clean' });
    assert.equal(got!.command, 'zINSTREAM');
    assert.ok(got!.data.equals(body));
    assert.ok(Math.max(...got!.chunks) <= MAX_INSTREAM_CHUNK, `largest chunk ${Math.max(...got!.chunks)}`);
  });

  test('infected: the signature name comes back', async () => {
    const address = await fakeClamd(
      answering((r) => (r.data.includes(EICAR_MARK) ? 'stream: Test.EICAR.UNOFFICIAL FOUND' : 'stream: OK')),
    );
    const client = new ClamdClient({ address, timeoutMs: 2000 });
    const scan = client.instream();
    await scan.write(Buffer.from('Subject: x\r\n\r\n'));
    await scan.write(Buffer.from(`X5O!P%@AP[4\\PZX54(P^)7CC)7}$${EICAR_MARK}!$H+H*\r\n`));
    assert.deepEqual(await scan.end(), { status: 'infected', signature: 'Test.EICAR.UNOFFICIAL' });
  });

  /** A clamd that answers "size limit" after `limit` bytes and then drops the connection. */
  async function sizeLimited(limit: number, dropAfterMs: number): Promise<string> {
    return fakeClamd((sock) => {
      sock.on('error', () => undefined);
      let answered = false;
      sock.on(
        'data',
        instreamReader(
          (r) => {
            if (r.data.length > limit && !answered) {
              answered = true;
              sock.write('INSTREAM size limit exceeded. ERROR\0');
              // Closing with unread input makes the kernel send a reset (the client sees
              // EPIPE or ECONNRESET on its next write).
              if (dropAfterMs === 0) sock.destroy();
              else setTimeout(() => sock.destroy(), dropAfterMs);
            }
          },
          () => sock.end('stream: OK\0'),
        ),
      );
    });
  }

  async function writeUntilSettled(address: string) {
    const scan = new ClamdClient({ address, timeoutMs: 2000 }).instream();
    const piece = Buffer.alloc(32 * 1024, 'b');
    for (let i = 0; i < 200 && !scan.settled; i++) {
      await scan.write(piece);
      await new Promise((r) => setTimeout(r, 1));
    }
    return { result: await scan.end(), sent: scan.bytes, max: 200 * piece.length };
  }

  test('early size-limit reply, then close while the client is still writing: the reply wins', async () => {
    const { result, sent, max } = await writeUntilSettled(await sizeLimited(100 * 1024, 30));
    assert.equal(result.status, 'error');
    assert.equal((result as { reason: string }).reason, 'size-limit', JSON.stringify(result));
    assert.ok(sent < max, 'the client stopped sending after the early reply');
  });

  test('early reply lost in a connection reset is still an error, never clean', async () => {
    const { result, sent, max } = await writeUntilSettled(await sizeLimited(100 * 1024, 0));
    assert.equal(result.status, 'error', JSON.stringify(result));
    assert.ok(['size-limit', 'io'].includes((result as { reason: string }).reason), JSON.stringify(result));
    assert.ok(sent < max);
  });

  test('garbage reply is an error, not clean', async () => {
    const address = await fakeClamd(answering(() => 'OK maybe'));
    const result = await new ClamdClient({ address, timeoutMs: 2000 }).scanStream(
      Readable.from([Buffer.from('hello')]),
    );
    assert.equal(result.status, 'error');
    assert.equal((result as { reason: string; raw?: string }).reason, 'unknown-reply');
  });

  test('connection closed without a reply is an error', async () => {
    const address = await fakeClamd((sock) => {
      sock.on('error', () => undefined);
      sock.on(
        'data',
        instreamReader(
          () => undefined,
          () => sock.end(),
        ),
      );
    });
    const result = await new ClamdClient({ address, timeoutMs: 2000 }).scanStream(
      Readable.from([Buffer.from('hello')]),
    );
    assert.deepEqual(
      { status: result.status, reason: (result as { reason: string }).reason },
      { status: 'error', reason: 'empty-reply' },
    );
  });

  test('a server that accepts and stalls: the AbortSignal ends the wait', async () => {
    const address = await fakeClamd((sock) => {
      sock.on('error', () => undefined);
      sock.on('data', () => undefined); // reads everything, never answers
    });
    const client = new ClamdClient({ address, timeoutMs: 60_000 });
    const started = Date.now();
    const scan = client.instream();
    await scan.write(Buffer.from('hello'));
    const result = await scan.end(AbortSignal.timeout(150));
    assert.equal(result.status, 'error');
    assert.equal((result as { reason: string }).reason, 'timeout');
    assert.ok(Date.now() - started < 5000);
  });

  test('a server that stalls: the silence timeout ends the scan without any signal', async () => {
    const address = await fakeClamd((sock) => {
      sock.on('error', () => undefined);
      sock.on('data', () => undefined);
    });
    const result = await new ClamdClient({ address, timeoutMs: 150 }).scanStream(Readable.from([Buffer.from('hello')]));
    assert.equal((result as { reason: string }).reason, 'timeout');
  });

  test('a server that stops reading: write() waits (back-pressure) and the deadline frees it', async () => {
    const address = await fakeClamd((sock) => {
      sock.on('error', () => undefined);
      sock.pause(); // never reads: the kernel buffers fill up
    });
    const client = new ClamdClient({ address, timeoutMs: 60_000 });
    const scan = client.instream();
    const deadline = AbortSignal.timeout(300);
    const started = Date.now();
    const big = Buffer.alloc(1024 * 1024, 'c');
    let writes = 0;
    while (!scan.settled && writes < 64) {
      await scan.write(big, deadline);
      writes++;
    }
    assert.ok(writes < 64, 'write() must have blocked until the deadline instead of buffering 64 MiB');
    assert.ok(Date.now() - started >= 250);
    const result = await scan.end();
    assert.equal((result as { reason: string }).reason, 'timeout');
  });

  test('refused connection is a connect error', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const result = await new ClamdClient({ address: `127.0.0.1:${port}`, timeoutMs: 2000 }).scanStream(
      Readable.from([Buffer.from('x')]),
    );
    assert.equal(result.status, 'error');
    assert.equal((result as { reason: string }).reason, 'connect');
  });

  test('client-side max_size: too-large, and the rest is not sent', async () => {
    let got: Received | undefined;
    const address = await fakeClamd(
      answering(
        () => 'stream: OK',
        (r) => (got = r),
      ),
    );
    const client = new ClamdClient({ address, timeoutMs: 2000, maxSize: 1000 });
    const scan = client.instream();
    await scan.write(Buffer.alloc(600));
    await scan.write(Buffer.alloc(600));
    const result = await scan.end();
    assert.equal((result as { reason: string }).reason, 'too-large');
    assert.equal(got, undefined, 'the stream was never completed');
  });

  test('unix socket, PING and VERSION', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clamd-test-'));
    try {
      const address = await fakeClamd(
        (sock) => {
          sock.on('error', () => undefined);
          sock.on('data', (d) => {
            const cmd = d.toString();
            if (cmd === 'zPING\0') sock.end('PONG\0');
            else if (cmd === 'zVERSION\0') sock.end('ClamAV 1.4.6/27000/Sat Nov 28 09:24:02 2025\0');
            else sock.end('UNKNOWN COMMAND\0');
          });
        },
        join(dir, 'clamd.sock'),
      );
      const client = new ClamdClient({ address, timeoutMs: 2000 });
      assert.equal(await client.ping(), true);
      const v = await client.version();
      assert.equal(v.database, 27000);
      const h = await client.health(undefined, () => Date.parse('Sat Nov 28 10:24:02 2025'));
      assert.equal(h.ok, true);
      assert.equal(h.databaseAgeSeconds, 3600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('health of a dead clamd is not ok and does not throw', async () => {
    const h = await new ClamdClient({ address: 'unix:/nonexistent/clamd.sock', timeoutMs: 500 }).health();
    assert.equal(h.ok, false);
    assert.match(h.error ?? '', /ENOENT/);
  });
});

describe('ClamdService: breaker in front of the client', () => {
  test('consecutive failures open the breaker; scans then fail fast; a PONG lets a trial through', async () => {
    let pong = false;
    let scans = 0;
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const client = new ClamdClient({ address: `127.0.0.1:${port}`, timeoutMs: 1000 });
    let now = 0;
    const service = new ClamdService({
      client,
      breaker: new CircuitBreaker({ failures: 2, cooldownMs: 60_000, now: () => now }),
      probeIntervalMs: 1000,
      probeTimeoutMs: 1000,
      now: () => now,
    });
    for (let i = 0; i < 2; i++) {
      const r = await service.instream().end();
      assert.equal((r as { reason: string }).reason, 'connect');
    }
    assert.equal(service.breakerState, 'open');
    const fast = await service.instream().end();
    assert.equal((fast as { reason: string }).reason, 'circuit-open');
    assert.equal(await service.available(AbortSignal.timeout(1000)), false, 'probe finds clamd still down');

    // clamd comes back on the same port.
    const server = createServer((sock) => {
      sock.on('error', () => undefined);
      let first = true;
      sock.on('data', (d) => {
        if (first && d.toString() === 'zPING\0') return void sock.end(pong ? 'PONG\0' : '\0');
        first = false;
        scans++;
        sock.end('stream: OK\0');
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    pong = true;
    assert.equal(
      await service.available(AbortSignal.timeout(1000)),
      false,
      'no second probe within the probe interval',
    );
    now += 1000;
    assert.equal(await service.available(AbortSignal.timeout(1000)), true);
    assert.equal(service.breakerState, 'half-open');
    const trial = service.instream();
    assert.equal(
      ((await service.instream().end()) as { reason: string }).reason,
      'circuit-open',
      'only one trial at a time',
    );
    await trial.write(Buffer.from('x'));
    assert.deepEqual(await trial.end(), { status: 'clean' });
    assert.equal(service.breakerState, 'closed');
    assert.equal(scans, 1);
  });

  test('a probe to a clamd that accepts but never answers is bounded by probe_timeout', async () => {
    const address = await fakeClamd((sock) => {
      sock.on('error', () => undefined);
      sock.on('data', () => undefined);
    });
    const client = new ClamdClient({ address, timeoutMs: 60_000 });
    const service = new ClamdService({
      client,
      breaker: new CircuitBreaker({ failures: 1, cooldownMs: 60_000 }),
      probeIntervalMs: 0,
      probeTimeoutMs: 200,
    });
    const s = service.instream(AbortSignal.timeout(100));
    assert.equal(((await s.end()) as { reason: string }).reason, 'timeout');
    assert.equal(service.breakerState, 'open');
    const started = Date.now();
    assert.equal(await service.available(AbortSignal.timeout(20_000)), false);
    const took = Date.now() - started;
    assert.ok(took >= 150 && took < 2000, `probe took ${took} ms`);
  });

  test('a message that is too large does not count against clamd', async () => {
    const address = await fakeClamd(answering(() => 'stream: OK'));
    const client = new ClamdClient({ address, timeoutMs: 1000, maxSize: 10 });
    const service = new ClamdService({
      client,
      breaker: new CircuitBreaker({ failures: 1, cooldownMs: 60_000 }),
      probeIntervalMs: 1000,
      probeTimeoutMs: 1000,
    });
    const s = service.instream();
    await s.write(Buffer.alloc(20));
    assert.equal(((await s.end()) as { reason: string }).reason, 'too-large');
    assert.equal(service.breakerState, 'closed');
  });
});
