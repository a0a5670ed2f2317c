// Decoder fuzz: random, truncated and oversized frames never crash the process; a bad stream
// closes that connection and the server keeps serving others. (The million-frame run is in bench/.)
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { silentLogger } from '../../src/ops/logging.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { decodeCommand } from '../../src/protocol/decode.js';
import { FrameDecoder, FrameError } from '../../src/protocol/frame.js';
import { MilterServer } from '../../src/session/server.js';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';

/** Deterministic PRNG so a failure can be replayed. */
function rng(seed: number) {
  return () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
}

describe('decoder fuzz', () => {
  it('20,000 random frames decode or fail with FrameError only', () => {
    const rand = rng(42);
    const commands = 'OCDHMRTLNBEAQKUZ\x00\xff';
    for (let i = 0; i < 20_000; i++) {
      const len = Math.floor(rand() * 64);
      const cmd = commands.charCodeAt(Math.floor(rand() * commands.length));
      const payload = Buffer.from(Array.from({ length: len }, () => Math.floor(rand() * 256)));
      const frame = Buffer.alloc(5 + len);
      frame.writeUInt32BE(len + 1);
      frame[4] = cmd;
      payload.copy(frame, 5);
      const d = new FrameDecoder(4096);
      try {
        for (const f of d.push(frame)) decodeCommand(f);
      } catch (err) {
        assert.ok(err instanceof FrameError, `unexpected ${(err as Error).name}: ${(err as Error).message}`);
      }
    }
  });

  it('random byte streams against a live server: connections close, the server survives', async () => {
    const r = parsePolicyText('rules: { trace_header: { mode: enforce } }', 't.yaml');
    assert.ok(r.ok);
    const policy = new CompiledPolicy(r.config, 't.yaml', silentLogger());
    const port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
    const server = new MilterServer(policy, {
      listen: { kind: 'inet', host: '127.0.0.1', port },
      maxConnections: 50,
      log: silentLogger(),
    });
    await server.start();
    try {
      for (let i = 0; i < 40; i++) {
        await new Promise<void>((resolve) => {
          const s = connect(port, '127.0.0.1', () => {
            s.write(randomBytes(1 + Math.floor(Math.random() * 300)));
            setTimeout(() => s.destroy(), 20);
          });
          s.on('error', () => undefined);
          s.on('close', () => resolve());
        });
      }
      const c = await TestMilterClient.open(port);
      const n = await c.negotiate();
      assert.equal(n.version, 6);
      c.close();
    } finally {
      await server.close(100);
    }
  });
});
