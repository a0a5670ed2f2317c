// Keeps dead Buffers from piling up while a large message streams through.
//
// Why it exists: V8 frees a dead Buffer's memory only when a garbage collection finds it dead.
// The young generation is collected when its JS objects fill their space, or when the memory
// behind its ArrayBuffers passes twice the largest semi-space: 32 MiB on 64-bit Node 20
// (V8 11.3, Heap::AllocateExternalBackingStore). A 50 MB message is mostly Buffers with few
// JS objects around them: 64 KiB socket reads, spool reads for the content walk and the
// disclaimer, the rewritten body. So about 32 MiB of dead Buffers collect between two young
// collections, and the process's RSS grows by that much (bench/RESULTS.md, "The 50 MB bound").
//
// The valve samples the ArrayBuffer total while connections are open and asks for a young
// collection when it has grown by `stepBytes` since the last one. Under ordinary load the
// young generation is collected anyway (bench: 3 000 messages of 100 KB, 25 more scavenges
// over 108, +5% scavenge time); for a 50 MB message the growth drops from 30–33 to 18–26 MiB.
// Buffers that are still alive survive the collection and become the new base, so a
// process that legitimately holds many Buffers is not collected again and again.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Growth of the ArrayBuffer total that triggers a young collection. */
export const VALVE_STEP_BYTES = 4 * 1024 * 1024;
/** How often the total is sampled while connections are open: Buffers allocated at 150 MB/s
 *  add under 4 MiB between two samples. */
export const VALVE_INTERVAL_MS = 25;

export interface MemoryValveOptions {
  /** Runs a young-generation collection. */
  collect: () => void;
  /** The ArrayBuffer total now (default: process.memoryUsage().arrayBuffers). */
  sample?: () => number;
  stepBytes?: number;
  intervalMs?: number;
  /** Called after each collection (a metric). */
  onCollect?: () => void;
}

export class MemoryValve {
  private timer: NodeJS.Timeout | null = null;
  private base = 0;
  /** A collection ran at the last tick: its sweep may still be freeing, take the base next tick. */
  private settling = false;
  private readonly sample: () => number;
  private readonly stepBytes: number;
  private readonly intervalMs: number;

  constructor(private readonly opts: MemoryValveOptions) {
    this.sample = opts.sample ?? (() => process.memoryUsage().arrayBuffers);
    this.stepBytes = opts.stepBytes ?? VALVE_STEP_BYTES;
    this.intervalMs = opts.intervalMs ?? VALVE_INTERVAL_MS;
  }

  get running(): boolean {
    return this.timer !== null;
  }

  /** Start sampling (idempotent). */
  start(): void {
    if (this.timer) return;
    this.base = this.sample();
    this.settling = false;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stop sampling (idempotent): an idle server does not wake up 40 times a second. */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
  }

  /** One sample; returns whether it collected. @internal (tests drive it directly) */
  tick(): boolean {
    const now = this.sample();
    if (this.settling) {
      this.settling = false;
      this.base = now;
      return false;
    }
    if (now < this.base) {
      this.base = now; // a collection of V8's own freed some
      return false;
    }
    if (now - this.base < this.stepBytes) return false;
    this.opts.collect();
    this.settling = true;
    this.opts.onCollect?.();
    return true;
  }
}

/** A function that runs a young-generation collection, or the reason there is none. */
export function youngCollector(): { collect: () => void } | { error: string } {
  try {
    // --expose-gc set at run time puts gc() into contexts created afterwards (not the main one).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    if (typeof gc !== 'function') return { error: 'this Node.js does not expose gc()' };
    const minor = gc as (options: { type: 'minor' }) => void;
    return { collect: () => minor({ type: 'minor' }) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}
