// Keeps dead Buffers from piling up while a large message streams through.
//
// Why it exists: V8 frees a dead Buffer's memory only when a garbage collection finds it dead.
// The young generation is collected when its JS objects fill their space, or when the memory
// behind its ArrayBuffers passes twice the largest semi-space: 32 MiB on 64-bit Node 20
// (V8 11.3, Heap::AllocateExternalBackingStore). A 50 MB message is mostly Buffers with few
// JS objects around them: 64 KiB socket reads, spool reads for the content walk and the
// disclaimer, the rewritten body. So up to that threshold of dead Buffers collects between two
// young collections, and the process's RSS grows by that much.
//
// The valve samples the ArrayBuffer total while connections are open and asks for a young
// collection when it has grown by `stepBytes` since the last one. Under ordinary load the
// young generation is collected anyway, so the valve adds few collections; for a 50 MB message
// it cuts the growth well under the bound (the figures: bench/RESULTS.md, "The 50 MB bound, now
// with headroom"). Buffers that are still alive survive the collection and become the new base,
// so a process that legitimately holds many Buffers is not collected again and again.
//
// Newer V8 (Node 24, V8 13.6) does not always free dead Buffers in a young collection: while
// V8 is incrementally marking the old generation, a requested young collection finishes that
// marking as a full one, and Buffers allocated during the marking are allocated as live, so
// they survive it (bench/RESULTS.md, "The 50 MB bound on every supported Node line").
// So when a young collection freed less than half a step, the next one is a full collection;
// when a full one frees less than half a step too, the Buffers are alive and the valve goes
// back to young collections.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Growth of the ArrayBuffer total that triggers a young collection. */
export const VALVE_STEP_BYTES = 4 * 1024 * 1024;
/**
 * How often the total is sampled while connections are open: a spilled message is read back
 * from the page cache several times at end of message (the MIME parse, the part walk, the
 * disclaimer's check), fast enough that a long interval lets most of a large message pass
 * between two samples (bench/RESULTS.md, "The 50 MB bound after the shared MIME parse").
 */
export const VALVE_INTERVAL_MS = 5;

export type CollectionKind = 'minor' | 'major';

export interface MemoryValveOptions {
  /** Runs a young-generation ('minor') or a full ('major') collection. */
  collect: (kind: CollectionKind) => void;
  /**
   * The ArrayBuffer total now. Default: V8's external memory (ArrayBuffers and external
   * strings), which moves with it; process.memoryUsage() also reads the RSS from /proc, at
   * 200 samples a second a cost that showed in profiles under load.
   */
  sample?: () => number;
  stepBytes?: number;
  intervalMs?: number;
  /** Called after each collection (a metric). */
  onCollect?: (kind: CollectionKind) => void;
}

export class MemoryValve {
  private timer: NodeJS.Timeout | null = null;
  private base = 0;
  /** A collection ran at the last tick: its sweep may still be freeing, take the base next tick. */
  private settling = false;
  /** The total when the last collection was asked for, and its kind. */
  private beforeCollect = 0;
  private lastKind: CollectionKind = 'minor';
  /** The last young collection freed (almost) nothing: the next one is full. */
  private escalate = false;
  private readonly sample: () => number;
  private readonly stepBytes: number;
  private readonly intervalMs: number;

  constructor(private readonly opts: MemoryValveOptions) {
    this.sample = opts.sample ?? (() => getHeapStatistics().external_memory);
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
    this.escalate = false;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stop sampling (idempotent): an idle server does not wake up 40 times a second. */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
  }

  /** One sample; returns the kind of collection it asked for, or false. @internal (tests drive it directly) */
  tick(): CollectionKind | false {
    const now = this.sample();
    if (this.settling) {
      this.settling = false;
      const freedLittle = now > this.beforeCollect - this.stepBytes / 2;
      this.escalate = this.lastKind === 'minor' && freedLittle;
      this.base = now;
      return false;
    }
    if (now < this.base) {
      this.base = now; // a collection of V8's own freed some
      return false;
    }
    if (now - this.base < this.stepBytes) return false;
    const kind: CollectionKind = this.escalate ? 'major' : 'minor';
    this.beforeCollect = now;
    this.lastKind = kind;
    this.opts.collect(kind);
    this.settling = true;
    this.opts.onCollect?.(kind);
    return kind;
  }
}

/** A function that runs a young-generation or a full collection, or the reason there is none. */
export function gcCollector(): { collect: (kind: CollectionKind) => void } | { error: string } {
  try {
    // --expose-gc set at run time puts gc() into contexts created afterwards (not the main one).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    if (typeof gc !== 'function') return { error: 'this Node.js does not expose gc()' };
    const run = gc as (options: { type: CollectionKind }) => void;
    return { collect: (kind) => run({ type: kind }) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}
