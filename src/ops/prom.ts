// prom-client, loaded when a metric is first used rather than when a module defining one is
// imported: every rule file defines its metrics at the top, so every command that only reads the
// policy (validate, quarantine list) loaded prom-client and its default metrics (about 45 ms of
// CPU on Node 20) for nothing.
//
// `new client.Counter({...})` here returns a stand-in that creates the real metric on first use.
// The first use of any metric or of the registry creates them all, in the order they were
// defined, so a scrape sees every metric (also those only read through `collect`). The
// stand-ins keep the methods they hand out, so a hot path pays one property lookup more.
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

export type { Gauge } from 'prom-client';

/** The parts of prom-client relayguard uses. */
type PromParts = Pick<typeof Prom, 'Counter' | 'Gauge' | 'Histogram' | 'Registry' | 'collectDefaultMetrics'>;

/** prom-client's files relayguard loads, by their names under prom-client/lib. */
const PROM_FILES = {
  Registry: 'registry',
  Counter: 'counter',
  Gauge: 'gauge',
  Histogram: 'histogram',
  collectDefaultMetrics: 'defaultMetrics',
} as const satisfies Record<keyof PromParts, string>;

/**
 * prom-client file by file, through `load` (a require): its index also loads the Pushgateway
 * client (node:https, so TLS and all of node:crypto) and the cluster aggregator, which a milter
 * never uses (bench/RESULTS.md, "Issue 22, fourth pass"). prom-client 15.1 has no `exports` map,
 * so these paths are its own module files (test/unit/serve-footprint.test.ts checks they are what
 * the index exports); a later version that closes them with one gets the index instead.
 */
export function promParts(load: (id: string) => unknown): PromParts {
  try {
    const parts: Record<string, unknown> = {};
    for (const [name, file] of Object.entries(PROM_FILES)) parts[name] = load(`prom-client/lib/${file}`);
    return parts as unknown as PromParts;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw err;
    return load('prom-client') as PromParts;
  }
}

let real: PromParts | undefined;
/** The real prom-client. */
export function promClient(): PromParts {
  return (real ??= promParts(createRequire(import.meta.url)));
}

/** Stand-ins not created yet, in definition order (the registry is defined before the metrics
 *  that register into it, so it is created first). */
const pending: Array<() => void> = [];
let creating = false;
/** Everything defined so far exists: later definitions are created at once. */
let live = false;

function createAll(): void {
  if (creating) return;
  creating = true;
  try {
    while (pending.length) pending.shift()!();
    live = true;
  } finally {
    creating = false;
  }
}

/** A stand-in for the object `make` creates; creating it creates every pending one first. */
function deferred<T extends object>(make: () => T): T {
  let instance: T | undefined;
  const create = () => {
    instance ??= make();
  };
  if (live) create();
  else pending.push(create);
  const bound = new Map<PropertyKey, unknown>();
  const target = (): T => {
    if (!instance) {
      createAll();
      create();
    }
    return instance!;
  };
  return new Proxy({} as T, {
    get(_t, prop) {
      const cached = bound.get(prop);
      if (cached) return cached;
      const obj = target();
      const v = Reflect.get(obj, prop, obj) as unknown;
      if (typeof v !== 'function') return v;
      const f = (v as (...a: unknown[]) => unknown).bind(obj);
      bound.set(prop, f);
      return f;
    },
    set(_t, prop, value) {
      bound.delete(prop);
      return Reflect.set(target(), prop, value);
    },
    has(_t, prop) {
      return Reflect.has(target(), prop);
    },
    getPrototypeOf() {
      return Reflect.getPrototypeOf(target());
    },
  });
}

type Ctor<K extends 'Counter' | 'Gauge' | 'Histogram' | 'Registry'> = (typeof Prom)[K];

function lazyClass<K extends 'Counter' | 'Gauge' | 'Histogram' | 'Registry'>(name: K): Ctor<K> {
  // Called with `new`: returning an object from a constructor function makes it the result.
  return function (this: unknown, ...args: unknown[]) {
    return deferred(() => new (promClient()[name] as unknown as new (...a: unknown[]) => object)(...args));
  } as unknown as Ctor<K>;
}

/** Drop-in for `import client from 'prom-client'` where only these are used. */
const client = {
  Counter: lazyClass('Counter'),
  Gauge: lazyClass('Gauge'),
  Histogram: lazyClass('Histogram'),
  Registry: lazyClass('Registry'),
};

export default client;

/** Runs `setup` right after the objects defined before it are created (default metrics, removals). */
export function whenCreated(setup: (real: PromParts) => void): void {
  if (live) setup(promClient());
  else pending.push(() => setup(promClient()));
}
