// What one milter connection may cost and how long it may hold a slot (issue 16, findings 4, 5
// and 9): macro budget, unknown macro stages, pending bytes, handshake and idle timeouts, the
// per-peer limit and eviction when the table is full. Real sockets, the real server.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { createLogger, silentLogger } from '../../src/ops/logging.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { connectionsRefusedTotal } from '../../src/ops/metrics.js';
import { Cmd } from '../../src/protocol/constants.js';
import { encodeFrame } from '../../src/protocol/frame.js';
import { MacroStore } from '../../src/session/macros.js';
import { MilterServer } from '../../src/session/server.js';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';

const servers: MilterServer[] = [];
after(async () => {
  for (const s of servers) await s.close(50);
});

async function startServer(
  serverYaml: string,
  opts: { maxConnections?: number; log?: ReturnType<typeof silentLogger>; extra?: string } = {},
) {
  const yaml = `local_domains: [example.test]\nnetworks: { internal: [127.0.0.0/8] }\nserver: { ${serverYaml} }\n${opts.extra?.split('\n')[0] ?? ''}\nrules:\n  trace_header: { mode: enforce, header: X-Relayguard }\n${opts.extra?.split('\n').slice(1).join('\n') ?? ''}\n`;
  const r = parsePolicyText(yaml, 'limits.yaml');
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const log = opts.log ?? silentLogger();
  const policy = new CompiledPolicy(r.config, 'limits.yaml', log);
  const port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
  const server = new MilterServer(policy, {
    listen: { kind: 'inet', host: '127.0.0.1', port },
    maxConnections: opts.maxConnections ?? 20,
    log,
  });
  await server.start();
  servers.push(server);
  return { server, port };
}

function capturedLog() {
  const stream = new PassThrough();
  const lines: string[] = [];
  stream.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  return { log: createLogger({ format: 'json', level: 'info' }, stream), lines };
}

async function refusals(reason: string): Promise<number> {
  const m = (await connectionsRefusedTotal.get()).values.find((v) => v.labels.reason === reason);
  return m?.value ?? 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('defaults', () => {
  it('every limit has its documented number', () => {
    const r = parsePolicyText('local_domains: [example.test]\n', 'd.yaml');
    assert.ok(r.ok);
    const s = r.config.server;
    assert.equal(s.max_connections, 500);
    assert.equal(s.max_connections_per_peer, 250);
    assert.equal(s.max_macro_bytes, 64 * 1024);
    assert.equal(s.max_pending_bytes, 2 * 1024 * 1024);
    assert.equal(s.max_header_bytes, 1024 * 1024);
    assert.equal(s.max_headers, 1000);
    assert.equal(s.handshake_timeout, 30_000, 'Postfix itself gives up after milter_connect_timeout 30s');
    assert.ok(s.idle_timeout > 300_000, 'longer than smtpd_timeout 300s');
    assert.equal(s.idle_timeout, 600_000);
    assert.equal(s.data_idle_timeout, 3_600_000);
  });
});

describe('macros', () => {
  it('macros of an unknown stage letter are dropped, not kept', () => {
    const m = new MacroStore();
    assert.equal(m.set('Z', [['{evil}', 'x'.repeat(1000)]]), false);
    assert.equal(m.get('evil'), undefined);
    assert.equal(m.bytes, 0);
    assert.equal(m.set('C', [['{client_addr}', '203.0.113.9']]), true);
    assert.equal(m.bytes, 'client_addr'.length + '203.0.113.9'.length);
  });

  it('a stage replaced or reset frees its bytes', () => {
    const m = new MacroStore();
    m.set('M', [['{mail_addr}', 'a'.repeat(100)]]);
    m.set('R', [['{rcpt_addr}', 'b'.repeat(100)]]);
    m.set('M', [['{mail_addr}', 'c']]); // a new MAIL clears RCPT
    assert.equal(m.bytes, 'mail_addr'.length + 1);
    m.clearMessage();
    assert.equal(m.bytes, 0);
  });

  it('a connection whose macros pass max_macro_bytes is closed; unknown stages cost nothing', async () => {
    const { port } = await startServer('max_macro_bytes: 4KiB');
    const c = await TestMilterClient.open(port);
    await c.negotiate();
    // 64 frames of 3 KB macros with unknown stage letters: all dropped, the connection lives.
    for (let i = 0; i < 64; i++) c.macro(String.fromCharCode(0x61 + (i % 26)), '{junk}', 'j'.repeat(3000));
    c.connectCmd('host.example', '203.0.113.9');
    assert.equal((await c.next()).code, 'c');
    c.macro('H', '{tls_version}', 'v'.repeat(5000));
    assert.equal(await c.closedWithin(2000), true, 'closed once the known macros passed 4 KiB');
  });
});

describe('pending bytes', () => {
  it('pipelined QUIT_NC + CONNECT pairs do not grow the live heap with their number', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // A DNS server that never answers: each CONNECT of an outside client starts a blocklist
    // lookup that would wait its whole budget unless the session's end stops it.
    const dns = createSocket('udp4');
    await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
    after(() => dns.close());
    const dnsPort = dns.address().port;
    const { port } = await startServer('', {
      extra: `dns: { servers: ["127.0.0.1:${dnsPort}"], timeout: 5s, budget: 5s }\n  blocklists: { mode: enforce, ip_lists: [{ zone: bl.test, codes: [127.0.0.2] }] }`,
    });
    const c = await TestMilterClient.open(port);
    await c.negotiate();
    const conn = Buffer.concat([
      Buffer.from('h\0'),
      Buffer.from('4'),
      Buffer.from([0x9c, 0x40]),
      Buffer.from('203.0.113.9\0'),
    ]);
    const pair = Buffer.concat([encodeFrame(Cmd.QUIT_NC), encodeFrame(Cmd.CONNECT, conn)]);
    const N = 4_000;
    let replies = 0;
    c.socket.removeAllListeners('data');
    c.socket.on('data', (d: Buffer) => (replies += d.length / 5));
    gc();
    const base = process.memoryUsage().heapUsed;
    c.socket.write(Buffer.concat(Array<Buffer>(N).fill(pair)));
    let peak = 0;
    const deadline = Date.now() + 60_000;
    while (replies < N && Date.now() < deadline) {
      await sleep(100);
      gc();
      peak = Math.max(peak, process.memoryUsage().heapUsed - base);
    }
    assert.equal(replies, N, 'every CONNECT answered');
    assert.ok(
      peak < 8 * 1024 * 1024,
      `live heap grew by ${(peak / 2 ** 20).toFixed(1)} MiB while ${N} pairs were pipelined`,
    );
    c.close();
  });
});

describe('timeouts', () => {
  it('a connection that never negotiates is closed after handshake_timeout', async () => {
    const { port, server } = await startServer('handshake_timeout: 300ms');
    const c = await TestMilterClient.open(port);
    await sleep(50);
    assert.equal(server.connections, 1);
    assert.equal(await c.closedWithin(2000), true);
    await sleep(50);
    assert.equal(server.connections, 0, 'the slot is free');
  });

  it('a byte a second does not keep a connection past handshake_timeout', async () => {
    const { port } = await startServer('handshake_timeout: 400ms');
    const c = await TestMilterClient.open(port);
    const optneg = encodeFrame(Cmd.OPTNEG, Buffer.alloc(12));
    let i = 0;
    const t = setInterval(() => i < optneg.length - 1 && c.socket.write(optneg.subarray(i, ++i)), 50);
    try {
      assert.equal(await c.closedWithin(3000), true);
    } finally {
      clearInterval(t);
    }
  });

  it('idle_timeout closes a connection silent between commands; commands keep it open', async () => {
    const { port } = await startServer('idle_timeout: 400ms');
    const c = await TestMilterClient.open(port);
    await c.negotiate();
    for (let i = 0; i < 5; i++) {
      await sleep(200);
      c.macro('C', '{daemon_name}', 'smtpd');
    }
    assert.equal(c.isClosed, false, 'a command every 200 ms keeps it');
    assert.equal(await c.closedWithin(3000), true);
  });

  it('a frame trickled a byte at a time does not reset idle_timeout', async () => {
    const { port } = await startServer('idle_timeout: 400ms');
    const c = await TestMilterClient.open(port);
    await c.negotiate();
    const helo = encodeFrame(Cmd.HELO, Buffer.from(`${'h'.repeat(200)}\0`));
    let i = 0;
    const t = setInterval(() => i < helo.length - 1 && c.socket.write(helo.subarray(i, ++i)), 30);
    try {
      assert.equal(await c.closedWithin(3000), true);
    } finally {
      clearInterval(t);
    }
  });

  it('after DATA the wait for content has data_idle_timeout, not idle_timeout', async () => {
    const { port } = await startServer('idle_timeout: 300ms, data_idle_timeout: 1500ms');
    const c = await TestMilterClient.open(port);
    await c.negotiate();
    c.connectCmd('host.example', '127.0.0.1');
    assert.equal((await c.next()).code, 'c');
    c.mail('<a@example.test>');
    assert.equal((await c.next()).code, 'c');
    c.rcpt('<b@example.test>');
    assert.equal((await c.next()).code, 'c');
    c.data();
    assert.equal((await c.next()).code, 'c');
    await sleep(800);
    assert.equal(c.isClosed, false, 'Postfix sends the content only when the client has sent all of it');
    assert.equal(await c.closedWithin(3000), true);
  });

  it('without DATA negotiated, the wait after the last RCPT has data_idle_timeout too', async () => {
    const { port } = await startServer('idle_timeout: 300ms, data_idle_timeout: 1500ms');
    const c = await TestMilterClient.open(port);
    const { protocol } = await c.negotiate();
    assert.ok(protocol & 0x200, 'no rule needs DATA: relayguard negotiates SMFIP_NODATA, so none comes');
    c.connectCmd('host.example', '127.0.0.1');
    assert.equal((await c.next()).code, 'c');
    c.mail('<a@example.test>');
    assert.equal((await c.next()).code, 'c');
    c.rcpt('<b@example.test>');
    assert.equal((await c.next()).code, 'c');
    await sleep(800);
    assert.equal(c.isClosed, false, 'waiting for the content, not idle');
    c.header('Subject', 'late');
    c.eoh();
    assert.equal((await c.next()).code, 'c');
    assert.equal(await c.closedWithin(3000), true, 'idle again after the content');
  });
});

describe('connection table', () => {
  it('max_connections_per_peer refuses one address its next connection, not another address', async () => {
    const { port, server } = await startServer('max_connections_per_peer: 3');
    const held = await Promise.all(
      [1, 2, 3].map(() => TestMilterClient.open(port, '127.0.0.1', undefined, '127.0.0.7')),
    );
    const refusedBefore = await refusals('per_peer');
    const fourth = await TestMilterClient.open(port, '127.0.0.1', undefined, '127.0.0.7');
    assert.equal(await fourth.closedWithin(2000), true, 'the 4th from 127.0.0.7 is refused');
    assert.equal(await refusals('per_peer'), refusedBefore + 1, 'counted in relayguard_connections_refused_total');
    const other = await TestMilterClient.open(port, '127.0.0.1', undefined, '127.0.0.8');
    await other.negotiate();
    assert.equal(server.connections, 4);
    for (const c of [...held, other]) c.close();
  });

  it('a full table makes room: the flooding peer loses its stalest connection, the newcomer is served', async () => {
    const { port, server } = await startServer('max_connections_per_peer: 100', { maxConnections: 6 });
    const mta = await TestMilterClient.open(port, '127.0.0.1', undefined, '127.0.0.1');
    await mta.negotiate();
    const flood: TestMilterClient[] = [];
    for (let i = 0; i < 5; i++) flood.push(await TestMilterClient.open(port, '127.0.0.1', undefined, '127.0.0.9'));
    await sleep(50);
    assert.equal(server.connections, 6);
    const next = await TestMilterClient.open(port, '127.0.0.1', undefined, '127.0.0.1');
    await next.negotiate();
    next.connectCmd('host.example', '127.0.0.1');
    assert.equal((await next.next()).code, 'c');
    assert.equal(await flood[0]!.closedWithin(2000), true, 'the oldest silent flood connection gave up its slot');
    assert.ok((await refusals('evicted')) >= 1);
    assert.equal(mta.isClosed, false, "the MTA's idle connection was kept");
    assert.equal(flood.filter((c) => c.isClosed).length, 1);
    for (const c of [mta, next, ...flood]) c.close();
  });
});

describe('out-of-order commands', () => {
  it('log one line without a stack and get a temporary failure', async () => {
    const { log, lines } = capturedLog();
    const { port } = await startServer('', { log });
    const c = await TestMilterClient.open(port);
    await c.negotiate();
    c.rcpt('<b@example.test>');
    assert.equal((await c.next()).code, 't');
    await sleep(50);
    const about = lines.filter((l) => l.includes('outside a transaction'));
    assert.equal(about.length, 1, lines.join('\n'));
    assert.doesNotMatch(about[0]!, /stack|at .*\.js:\d+/);
    c.close();
  });
});
