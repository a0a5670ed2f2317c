// The memory valve: when it asks for a young collection, that it does not ask again for Buffers
// that are still alive, that the collector it uses frees dead Buffers, and that the server
// tells it when connections come and go.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { silentLogger } from '../../src/ops/logging.js';
import {
  gcCollector,
  MemoryValve,
  VALVE_INTERVAL_MS,
  VALVE_STEP_BYTES,
  type CollectionKind,
} from '../../src/ops/memory-valve.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { MilterServer } from '../../src/session/server.js';

const MIB = 1024 * 1024;

/** A valve over a fake ArrayBuffer total; `collected` counts the collections it asked for. */
function fakeValve(step = 4 * MIB) {
  const state = { total: 10 * MIB, collected: 0, kinds: [] as CollectionKind[] };
  const valve = new MemoryValve({
    collect: (kind) => (state.collected++, state.kinds.push(kind)),
    sample: () => state.total,
    stepBytes: step,
    intervalMs: 1000,
  });
  return { state, valve };
}

describe('memory valve: when it collects', () => {
  it('the limits are named and sane', () => {
    assert.equal(VALVE_STEP_BYTES, 4 * MIB);
    assert.ok(VALVE_INTERVAL_MS > 0 && VALVE_INTERVAL_MS <= 100);
  });

  it('collects once the total has grown by the step since start, not before', () => {
    const { state, valve } = fakeValve();
    valve.start();
    try {
      state.total += 4 * MIB - 1;
      assert.equal(valve.tick(), false);
      state.total += 1;
      assert.equal(valve.tick(), 'minor');
      assert.equal(state.collected, 1);
    } finally {
      valve.stop();
    }
  });

  it('Buffers still alive after a collection become the new base: no collection at every tick', () => {
    const { state, valve } = fakeValve();
    valve.start();
    try {
      state.total += 6 * MIB;
      assert.equal(valve.tick(), 'minor');
      // Nothing was freed (all alive): the next tick takes the base, later ones stay quiet.
      assert.equal(valve.tick(), false);
      for (let i = 0; i < 5; i++) assert.equal(valve.tick(), false);
      assert.equal(state.collected, 1);
      state.total += 4 * MIB;
      assert.equal(
        valve.tick(),
        'major',
        'growth on top counts again; the young collection freed nothing, so a full one',
      );
      assert.equal(valve.tick(), false);
      state.total += 4 * MIB;
      assert.equal(
        valve.tick(),
        'minor',
        'the full one freed nothing either: the Buffers are alive, back to young collections',
      );
      assert.deepEqual(state.kinds, ['minor', 'major', 'minor']);
    } finally {
      valve.stop();
    }
  });

  it('a young collection that frees nothing is followed by a full one; one that frees keeps it young', () => {
    const { state, valve } = fakeValve();
    valve.start();
    try {
      const grow = () => {
        state.total += 4 * MIB;
        return valve.tick();
      };
      assert.equal(grow(), 'minor');
      state.total -= 4 * MIB; // freed
      valve.tick();
      assert.equal(grow(), 'minor', 'it freed the step: young again');
      state.total -= 1 * MIB; // freed a quarter of the step: too little
      valve.tick();
      assert.equal(grow(), 'major');
      state.total -= 7 * MIB; // the full collection freed the Buffers
      valve.tick();
      assert.equal(grow(), 'minor', 'after a full collection the next is young again');
      assert.deepEqual(state.kinds, ['minor', 'minor', 'major', 'minor']);
    } finally {
      valve.stop();
    }
  });

  it('follows a drop (V8 collected on its own) so later growth is measured from there', () => {
    const { state, valve } = fakeValve();
    valve.start();
    try {
      state.total += 3 * MIB;
      assert.equal(valve.tick(), false);
      state.total -= 8 * MIB; // 5 MiB, below the 10 MiB base
      assert.equal(valve.tick(), false);
      state.total += 4 * MIB; // 9 MiB: 4 above the new base, though below the old one
      assert.equal(valve.tick(), 'minor');
    } finally {
      valve.stop();
    }
  });

  it('start and stop are idempotent, and start takes a fresh base', () => {
    const { state, valve } = fakeValve();
    assert.equal(valve.running, false);
    valve.start();
    valve.start();
    assert.equal(valve.running, true);
    valve.stop();
    valve.stop();
    assert.equal(valve.running, false);
    state.total += 20 * MIB; // grew while stopped (idle)
    valve.start();
    try {
      assert.equal(valve.tick(), false, 'growth while stopped is not counted');
    } finally {
      valve.stop();
    }
  });

  it('samples on its own timer while running', async () => {
    const state = { total: 0, collected: 0 };
    const valve = new MemoryValve({
      collect: () => state.collected++,
      sample: () => state.total,
      stepBytes: 1,
      intervalMs: 5,
    });
    valve.start();
    state.total = 10;
    for (let i = 0; i < 200 && state.collected === 0; i++) await sleep(5);
    valve.stop();
    assert.ok(state.collected >= 1);
  });
});

describe('memory valve: the collector', () => {
  it('sees Buffers with its own sampling (V8 external memory), and they are what it collects for', () => {
    const kinds: CollectionKind[] = [];
    const valve = new MemoryValve({ collect: (kind) => kinds.push(kind), intervalMs: 60_000 });
    valve.start();
    const keep: Buffer[] = [];
    for (let i = 0; i < 128; i++) keep.push(Buffer.alloc(64 * 1024, i)); // 8 MiB, twice a step
    assert.equal(valve.tick(), 'minor');
    valve.stop();
    assert.deepEqual(kinds, ['minor']);
    assert.equal(keep.length, 128);
  });

  it('frees dead Buffers: a young collection, or a full one where the young one does not (as the valve does)', async () => {
    const gc = gcCollector();
    assert.ok(!('error' in gc), 'error' in gc ? gc.error : '');
    // 16 MiB of 64 KiB Buffers, dead as soon as the function returns (half V8's own trigger).
    (() => {
      const keep: Buffer[] = [];
      for (let i = 0; i < 256; i++) keep.push(Buffer.alloc(64 * 1024, i));
      assert.equal(keep.length, 256);
    })();
    const before = process.memoryUsage().arrayBuffers;
    // The ArrayBuffers are swept right after the collection or on a helper thread.
    const freedAfter = async (kind: CollectionKind) => {
      gc.collect(kind);
      let after = process.memoryUsage().arrayBuffers;
      for (let i = 0; i < 20 && before - after < 8 * MIB; i++) {
        await sleep(10);
        after = process.memoryUsage().arrayBuffers;
      }
      return after;
    };
    let after = await freedAfter('minor');
    const young = `young: ArrayBuffers ${(before / MIB).toFixed(1)} -> ${(after / MIB).toFixed(1)} MiB`;
    if (before - after < 8 * MIB) after = await freedAfter('major');
    assert.ok(before - after >= 8 * MIB, `${young}; full: -> ${(after / MIB).toFixed(1)} MiB`);
  });
});

describe('memory valve: the server says when it is busy', () => {
  it('true when the first connection opens, false when the last one closes', async () => {
    const r = parsePolicyText('rules: { trace_header: { mode: enforce } }', 'valve.yaml');
    assert.ok(r.ok);
    const policy = new CompiledPolicy(r.config, 'valve.yaml', silentLogger());
    const dir = mkdtempSync(join(tmpdir(), 'relayguard-valve-'));
    const path = join(dir, 'milter.sock');
    const seen: boolean[] = [];
    const server = new MilterServer(policy, {
      listen: { kind: 'unix', path },
      maxConnections: 5,
      log: silentLogger(),
      onBusy: (b) => seen.push(b),
    });
    await server.start();
    const open = () =>
      new Promise<ReturnType<typeof connect>>((resolve, reject) => {
        const s = connect(path, () => resolve(s));
        s.once('error', reject);
      });
    const waitFor = async (n: number) => {
      for (let i = 0; i < 200 && server.connections !== n; i++) await sleep(5);
      assert.equal(server.connections, n);
    };
    try {
      const a = await open();
      await waitFor(1);
      const b = await open();
      await waitFor(2);
      assert.deepEqual(seen, [true], 'a second connection changes nothing');
      a.destroy();
      await waitFor(1);
      assert.deepEqual(seen, [true]);
      b.destroy();
      await waitFor(0);
      assert.deepEqual(seen, [true, false]);
      const c = await open();
      await waitFor(1);
      assert.deepEqual(seen, [true, false, true]);
      c.destroy();
      await waitFor(0);
      assert.deepEqual(seen, [true, false, true, false]);
    } finally {
      await server.close(100);
      await policy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
