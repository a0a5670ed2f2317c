// Prometheus metrics (prom-client). Names start with relayguard_. One registry per process;
// the engine, the conversation and the server report into it, /metrics serves it.
import client, { whenCreated, type Gauge } from './prom.js';

export const registry = new client.Registry();
/**
 * prom-client's sums of the per-type gauges (relayguard_nodejs_active_handles{type} ...) end in
 * _total, which Prometheus reserves for counters (`promtool check metrics` fails on them);
 * sum(relayguard_nodejs_active_handles) gives the same.
 */
const DROPPED_DEFAULT_METRICS = [
  'relayguard_nodejs_active_handles_total',
  'relayguard_nodejs_active_requests_total',
  'relayguard_nodejs_active_resources_total',
];
whenCreated((prom) => {
  // prom-client's process and Node.js metrics, named relayguard_process_cpu_seconds_total,
  // relayguard_nodejs_heap_size_used_bytes... (its names already start with process_/nodejs_).
  prom.collectDefaultMetrics({ register: registry, prefix: 'relayguard_' });
  for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);
});

export const messagesTotal = new client.Counter({
  name: 'relayguard_messages_total',
  help: 'Final decisions on messages and refused commands, by action, direction and phase',
  labelNames: ['action', 'direction', 'phase'] as const,
  registers: [registry],
});

export const ruleVerdictsTotal = new client.Counter({
  name: 'relayguard_rule_verdicts_total',
  help: 'Verdicts of each rule; mode="monitor" counts what a monitored rule would have done',
  labelNames: ['rule', 'phase', 'action', 'mode'] as const,
  registers: [registry],
});

export const phaseSeconds = new client.Histogram({
  name: 'relayguard_phase_duration_seconds',
  help: 'Time the rules of one milter phase took',
  labelNames: ['phase'] as const,
  buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
  registers: [registry],
});

export const connectionsActive = new client.Gauge({
  name: 'relayguard_connections_active',
  help: 'Milter connections currently open',
  registers: [registry],
});

export const connectionsTotal = new client.Counter({
  name: 'relayguard_connections_total',
  help: 'Milter connections accepted',
  registers: [registry],
});

export const connectionsRefusedTotal = new client.Counter({
  name: 'relayguard_connections_refused_total',
  help: 'Milter connections refused (per_peer: the peer holds max_connections_per_peer; full: no idle slot) or evicted to make room (evicted)',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const protocolErrorsTotal = new client.Counter({
  name: 'relayguard_protocol_errors_total',
  help: 'Connections closed because of a malformed or oversized frame',
  registers: [registry],
});

export const memoryValveCollectionsTotal = new client.Counter({
  name: 'relayguard_memory_valve_collections_total',
  help: 'Collections the memory valve asked for (dead Buffers piling up): young-generation ones, and full ones where a young one freed nothing',
  registers: [registry],
});

export const reloadsTotal = new client.Counter({
  name: 'relayguard_policy_reloads_total',
  help: 'Policy reloads by result',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const dependencyUp = new client.Gauge({
  name: 'relayguard_dependency_up',
  help: 'Health of a dependency (clamd, dns list) as last seen: 1 up, 0 down',
  labelNames: ['dependency'] as const,
  registers: [registry],
});

export const dependencySeconds = new client.Histogram({
  name: 'relayguard_dependency_duration_seconds',
  help: 'Latency of dependency calls (clamd scans, DNS list queries)',
  labelNames: ['dependency', 'result'] as const,
  buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
  registers: [registry],
});

/** Gauges whose value is read when scraped (ledger size, quarantine size, breaker state). */
export function gaugeFromCallback(name: string, help: string, read: () => number | Promise<number>): Gauge {
  const existing = registry.getSingleMetric(name);
  if (existing) registry.removeSingleMetric(name);
  return new client.Gauge({
    name,
    help,
    registers: [registry],
    async collect() {
      try {
        this.set(await read());
      } catch {
        /* a failed read leaves the last value */
      }
    },
  });
}
