import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { BodyStore, kept, PIDLESS_SPILL_MAX_AGE_MS, removeStaleSpills } from '../../src/session/body-store.js';

async function read(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Runs `test` with a fresh spool directory, removed afterwards whatever happens. */
async function withSpool(test: (spool: string) => Promise<void>): Promise<void> {
  const spool = mkdtempSync(join(tmpdir(), 'rg-spool-test-'));
  try {
    await test(spool);
  } finally {
    rmSync(spool, { recursive: true, force: true });
  }
}

describe('body store', () => {
  it('keeps small bodies in memory', async () => {
    const b = new BodyStore(1024);
    await b.append(Buffer.from('hello '));
    await b.append(Buffer.from('world'));
    assert.equal(b.spilled, false);
    assert.equal((await read(b.stream())).toString(), 'hello world');
  });
  it('spills to a private temporary file above the threshold and cleans up', async () => {
    const b = new BodyStore(100);
    const chunk = Buffer.alloc(64, 'a');
    for (let i = 0; i < 10; i++) await b.append(chunk);
    assert.equal(b.spilled, true);
    assert.equal(b.size, 640);
    await b.flush();
    const all = await read(b.stream());
    assert.equal(all.length, 640);
    assert.equal((await read(b.stream())).length, 640, 'every reader gets a fresh stream');
    const path = (b as unknown as { path: string }).path;
    assert.ok(existsSync(path));
    await b.dispose();
    assert.equal(existsSync(path), false);
  });
  it('keeps a BODY frame that is most of its read without copying it', async () => {
    const read64k = Buffer.alloc(64 * 1024, 'b');
    const frame = read64k.subarray(5); // the frame header before it
    const b = new BodyStore(1 << 20);
    await b.append(frame);
    const [held] = b.inMemory()!;
    assert.equal(held!.buffer, read64k.buffer, 'the view itself, not a copy');
    assert.equal(kept(frame), frame);
  });
  it('copies a small view of a large read, so what it holds stays within twice what it counts', async () => {
    const b = new BodyStore(1 << 20);
    const reads: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      // A large frame (a header) and a one-byte BODY frame in one 64 KiB read.
      const read = Buffer.alloc(64 * 1024, 'h');
      read[read.length - 1] = 0x61 + (i % 26);
      reads.push(read);
      await b.append(read.subarray(read.length - 1));
    }
    const held = b.inMemory()!;
    assert.equal(b.size, 50);
    const buffers = new Set(held.map((c) => c.buffer));
    for (const r of reads) assert.equal(buffers.has(r.buffer), false, 'no 64 KiB read is pinned');
    assert.equal(Buffer.concat(held).toString(), reads.map((r) => String.fromCharCode(r[r.length - 1]!)).join(''));
    // Small copies share a pool slab (Buffer.poolSize: 8 KiB on Node 20 and 22, 64 KiB on 24
    // and 26): count the slabs held (the copies may straddle two) against the bytes counted.
    const heldBytes = [...buffers].reduce((n, ab) => n + ab.byteLength, 0);
    assert.ok(heldBytes <= 2 * b.size + 2 * Buffer.poolSize, `holds ${heldBytes} bytes for ${b.size} counted`);
  });
  // The connection can close (onSocketClose -> dispose) while a chunk is still being appended:
  // a spill begun before the dispose must not leave its directory behind in the spool.
  it('a dispose during a spill leaves nothing in the spool directory', async () => {
    await withSpool(async (spool) => {
      for (const pause of [0, 1, 2, 5]) {
        const b = new BodyStore(10, spool);
        const appending = b.append(Buffer.alloc(64, 'a')).catch(() => undefined);
        for (let i = 0; i < pause; i++) await new Promise((r) => setImmediate(r));
        await b.dispose();
        await appending;
        assert.deepEqual(readdirSync(spool), [], `after ${pause} turns`);
      }
    });
  });
  it('appends after a dispose keep nothing', async () => {
    await withSpool(async (spool) => {
      const b = new BodyStore(10, spool);
      await b.append(Buffer.alloc(64, 'a'));
      await b.dispose();
      await b.append(Buffer.alloc(64, 'b'));
      assert.equal(b.size, 0);
      assert.deepEqual(readdirSync(spool), []);
    });
  });
  it('keeps its own copy of a small chunk (a view into a shared pool slab)', async () => {
    const b = new BodyStore(1024);
    const src = Buffer.from('abc');
    await b.append(src);
    src.write('xyz');
    assert.equal((await read(b.stream())).toString(), 'abc');
  });
});

describe('message source', () => {
  it('releases the spilled body file when a reader stops early', async () => {
    const { parsePolicyText } = await import('../../src/rules/policy-schema.js');
    const { CompiledPolicy } = await import('../../src/rules/compiled-policy.js');
    const { Conversation } = await import('../../src/session/conversation.js');
    const { silentLogger } = await import('../../src/ops/logging.js');
    const r = parsePolicyText('server: { body_memory_bytes: 1024 }', 'x.yaml');
    assert.ok(r.ok);
    const conv = new Conversation({
      policy: new CompiledPolicy(r.config, 'x.yaml', silentLogger()),
      log: silentLogger(),
    });
    await conv.connect({ hostname: 'h', family: 'inet', port: 1, address: '203.0.113.9' });
    await conv.mail(['<a@b.test>']);
    await conv.rcpt(['<c@d.test>']);
    await conv.header('Subject', ' x', true);
    for (let i = 0; i < 64; i++) await conv.bodyChunk(Buffer.alloc(1024, 'z'));
    const stream = conv.msg!.source.message();
    const first = await new Promise<Buffer>((res) => stream.once('data', res));
    assert.ok(first.length > 0);
    stream.destroy();
    await new Promise((r) => setTimeout(r, 50));
    // Only the store's own write handle may still point at the body file.
    const { readdirSync, readlinkSync } = await import('node:fs');
    const open = readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return /relayguard-body-.*\/body$/.test(readlinkSync(`/proc/self/fd/${fd}`));
      } catch {
        return false;
      }
    });
    assert.equal(open.length, 1, 'the reader released its file descriptor');
    await conv.close();
  });
});

describe('spool and the server', () => {
  // serve exits right after MilterServer.close(): a body cut at shutdown must be gone by then.
  it('close() returns after the spilled bodies of the sessions it cut are removed', async () => {
    const { parsePolicyText } = await import('../../src/rules/policy-schema.js');
    const { CompiledPolicy } = await import('../../src/rules/compiled-policy.js');
    const { MilterServer } = await import('../../src/session/server.js');
    const { MilterClient } = await import('../../src/audit/milter-client.js');
    const { silentLogger } = await import('../../src/ops/logging.js');
    await withSpool(async (spool) => {
      const yaml = `local_domains: [example.test]\nserver: { body_memory_bytes: 1024, spool_dir: ${spool} }\nrules:\n  content: { mode: enforce }\n`;
      const r = parsePolicyText(yaml, 'spool.yaml');
      assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
      const log = silentLogger();
      const port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
      const server = new MilterServer(new CompiledPolicy(r.config, 'spool.yaml', log), {
        listen: { kind: 'inet', host: '127.0.0.1', port },
        maxConnections: 10,
        log,
      });
      await server.start();
      const clients = [];
      for (let i = 0; i < 3; i++) {
        const c = await MilterClient.open(port);
        await c.negotiate();
        c.connectCmd('client.test', '203.0.113.9');
        assert.equal((await c.next()).code, 'c');
        c.mail('<a@outside.test>');
        assert.equal((await c.next()).code, 'c');
        c.rcpt('<b@example.test>');
        assert.equal((await c.next()).code, 'c');
        c.header('Subject', 'half a message'); // no reply: no rule judges headers (SMFIP_NR_HDR)
        c.eoh();
        assert.equal((await c.next()).code, 'c');
        for (let k = 0; k < 4; k++) {
          c.body(Buffer.alloc(60_000, 'x'));
          assert.equal((await c.next()).code, 'c');
        }
        clients.push(c);
      }
      assert.equal(readdirSync(spool).length, 3, 'each message spilled');
      await server.close(0);
      assert.deepEqual(readdirSync(spool), [], 'nothing left in the spool when close() returns');
      for (const c of clients) c.socket.destroy();
    });
  });
});

describe('spill directories of a relayguard that died', () => {
  /** The pid of a process that has exited (and, for the moment, not been reused). */
  const deadPid = () =>
    spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();

  it('are removed when their process is gone, or a day old when named without a pid; live, linked and unrelated entries stay', async () => {
    const spool = mkdtempSync(join(tmpdir(), 'rg-spool-test-'));
    const outside = mkdtempSync(join(tmpdir(), 'rg-spool-outside-'));
    try {
      const dead = deadPid();
      const make = (name: string) => (mkdirSync(join(spool, name)), writeFileSync(join(spool, name, 'body'), 'x'));
      make(`relayguard-body-${dead}-Ab12Cd`);
      make(`relayguard-body-${process.pid}-Ab12Cd`); // this process: alive
      make('relayguard-body-1-Ab12Cd'); // pid 1: alive
      make('relayguard-body-Ab12Cd'); // the old name, without a pid: whose it is cannot be told
      make(`other-${dead}-Ab12Cd`);
      writeFileSync(join(outside, 'keep'), 'x');
      symlinkSync(outside, join(spool, `relayguard-body-${dead}-Li9kEd`));
      assert.deepEqual(await removeStaleSpills(spool), [`relayguard-body-${dead}-Ab12Cd`]);
      assert.deepEqual(
        readdirSync(spool).sort(),
        [
          `other-${dead}-Ab12Cd`,
          'relayguard-body-1-Ab12Cd',
          'relayguard-body-Ab12Cd',
          `relayguard-body-${dead}-Li9kEd`,
          `relayguard-body-${process.pid}-Ab12Cd`,
        ].sort(),
      );
      assert.ok(existsSync(join(outside, 'keep')), 'a link is never followed');
      assert.deepEqual(await removeStaleSpills(join(spool, 'missing')), []);

      // The old name without a pid: removed once it has not been touched for a day, not before.
      symlinkSync(outside, join(spool, 'relayguard-body-Li9kEd'));
      const dayLater = Date.now() + PIDLESS_SPILL_MAX_AGE_MS + 60_000;
      assert.deepEqual(await removeStaleSpills(spool, dayLater - 120_000), []);
      assert.deepEqual(await removeStaleSpills(spool, dayLater), ['relayguard-body-Ab12Cd']);
      assert.ok(existsSync(join(spool, 'relayguard-body-Li9kEd')), 'nor is an old-named link');
      assert.ok(existsSync(join(outside, 'keep')));
    } finally {
      rmSync(spool, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('a spill directory is named with the pid of the relayguard that made it', async () => {
    await withSpool(async (spool) => {
      const b = new BodyStore(10, spool);
      await b.append(Buffer.alloc(64, 'a'));
      assert.match(readdirSync(spool)[0] ?? '', new RegExp(`^relayguard-body-${process.pid}-[A-Za-z0-9]{6}$`));
      await b.dispose();
    });
  });

  it('serve removes them at start and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rg-spool-serve-'));
    const spool = join(dir, 'spool');
    mkdirSync(spool);
    const stale = `relayguard-body-${deadPid()}-Xy34Zw`;
    mkdirSync(join(spool, stale));
    writeFileSync(join(spool, stale, 'body'), 'x'.repeat(1000));
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      `server:\n  listen: unix:${join(dir, 'milter.sock')}\n  state_dir: ${join(dir, 'state')}\n  spool_dir: ${spool}\nrules: {}\n`,
    );
    const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    const rg = spawn(process.execPath, [main, 'serve', '--config', policy, '--metrics', 'off'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise((r) => rg.once('exit', r));
    let log = '';
    rg.stderr.on('data', (c: Buffer) => (log += c.toString()));
    try {
      const until = Date.now() + 15_000;
      while (!/listening/.test(log) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      assert.match(log, /removed 1 message bodies left in .*spool by a relayguard that did not exit cleanly/);
      assert.deepEqual(readdirSync(spool), []);
    } finally {
      rg.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
