// The metrics and health endpoint (loopback by default): /metrics for Prometheus, /health for
// load balancers and systemd (200 when listening with a policy, 503 while stopping).
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { registry } from './metrics.js';

// Why require and not import: importing node:http as an ES module makes Node 22 and later build
// its namespace, which reads http's lazy `WebSocket` export and so loads undici (fetch,
// WebSocket), which relayguard never uses and which stays in memory (bench/RESULTS.md, "Issue 22,
// fourth pass").
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export interface HealthSource {
  healthy(): { ok: boolean; detail: Record<string, unknown> };
}

function parseHostPort(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(spec);
  if (!m) throw new Error(`bad metrics address "${spec}": use HOST:PORT or "off"`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

export async function startOpsServer(spec: string, health: HealthSource): Promise<Server> {
  const { host, port } = parseHostPort(spec);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/metrics') {
      registry
        .metrics()
        .then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body))
        .catch((err: Error) => res.writeHead(500).end(err.message));
      return;
    }
    if (path === '/health') {
      const h = health.healthy();
      res
        .writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ok: h.ok, ...h.detail }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => (server.off('error', reject), resolve()));
  });
  return server;
}
