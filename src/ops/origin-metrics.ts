// Metrics of the origin rule: how old its country/ASN data is (an admin alerts on it, e.g.
// age > 30 days means geoipupdate stopped working) and what it decided.
import client from './prom.js';
import { registry } from './metrics.js';

export interface DatabaseAge {
  database: string;
  /** Epoch ms of the file's build date; null while it is not loaded. */
  builtAt: number | null;
}

let source: (() => DatabaseAge[]) | null = null;

/**
 * The loaded policy's databases; a reload's new policy replaces them. Returns the undo for the
 * policy's close, which clears only its own source (the new policy's stays).
 */
export function reportOriginDatabases(read: () => DatabaseAge[]): () => void {
  source = read;
  return () => {
    if (source === read) source = null;
  };
}

// Read only through the registry (its collect() runs at each scrape).
new client.Gauge({
  name: 'relayguard_origin_database_age_seconds',
  help: 'Age of each origin database (from its build date), by file; absent while a file is not loaded',
  labelNames: ['database'] as const,
  registers: [registry],
  collect() {
    this.reset();
    const now = Date.now();
    for (const d of source?.() ?? [])
      if (d.builtAt !== null) this.set({ database: d.database }, Math.round((now - d.builtAt) / 1000));
  },
});

export const originVerdictsTotal = new client.Counter({
  name: 'relayguard_origin_verdicts_total',
  help: 'Inbound clients the origin rule judged at MAIL: result expected or out_of_place, and the action taken',
  labelNames: ['result', 'action'] as const,
  registers: [registry],
});
