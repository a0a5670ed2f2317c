// The listener: inet:HOST:PORT or unix:PATH (Postfix syntax), a connection limit, the current
// policy (swapped atomically on reload; connections keep the policy they started with), and a
// graceful close that lets sessions in flight finish within a bound.
import { existsSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'winston';
import { connectionsActive, connectionsTotal } from '../ops/metrics.js';
import type { CompiledPolicy } from '../policy/compile.js';
import type { Decision } from './conversation.js';
import { MilterSession } from './milter-session.js';
import { prepareSocketDir, setSocketOwner } from './socket-owner.js';

export type ListenAddress = { kind: 'inet'; host: string; port: number } | { kind: 'unix'; path: string };

export function parseListen(spec: string): ListenAddress {
  if (spec.startsWith('unix:') && spec.length > 5) return { kind: 'unix', path: spec.slice(5) };
  const forms = [
    /^inet6?:\[([^\]]+)\]:(\d+)$/, // inet:[::1]:10025
    /^inet6?:([^:@\[\]]+):(\d+)$/, // inet:127.0.0.1:10025 (Postfix)
  ];
  for (const re of forms) {
    const m = re.exec(spec);
    if (m && validPort(m[2]!)) return { kind: 'inet', host: m[1]!, port: Number(m[2]) };
  }
  const lib = /^inet6?:(\d+)@(.+)$/.exec(spec); // inet:10025@127.0.0.1 (libmilter, Sendmail)
  if (lib && validPort(lib[1]!)) return { kind: 'inet', host: lib[2]!, port: Number(lib[1]) };
  throw new Error(`bad listen address "${spec}": use inet:HOST:PORT or unix:PATH`);
}

function validPort(p: string): boolean {
  const n = Number(p);
  return Number.isInteger(n) && n > 0 && n < 65536;
}

export interface MilterServerOptions {
  listen: ListenAddress;
  socketMode?: number;
  /** Group of a unix socket (and of its directory when relayguard creates it); null: relayguard's own. */
  socketGid?: number | null;
  maxConnections: number;
  log: Logger;
  onDecision?: (d: Decision) => void;
  /** Called with true when the first connection opens and false when the last one closes. */
  onBusy?: (busy: boolean) => void;
}

export class MilterServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private policy: CompiledPolicy;

  constructor(
    policy: CompiledPolicy,
    private readonly opts: MilterServerOptions,
  ) {
    this.policy = policy;
  }

  get currentPolicy(): CompiledPolicy {
    return this.policy;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** New connections use `next`; the old policy is closed once its connections are gone. */
  swapPolicy(next: CompiledPolicy): CompiledPolicy {
    const old = this.policy;
    this.policy = next;
    return old;
  }

  async start(): Promise<void> {
    const server = createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    server.maxConnections = this.opts.maxConnections;
    server.on('drop', (d) => this.opts.log.warn(`connection limit ${this.opts.maxConnections} reached; dropped ${d?.remoteAddress ?? 'a connection'} (the MTA applies its default action)`));
    const l = this.opts.listen;
    if (l.kind === 'unix') {
      const dir = prepareSocketDir(l.path, this.opts.socketGid ?? null);
      if (dir.created) this.opts.log.info(`created ${dirname(l.path)} for the milter socket`);
      if (dir.warning) this.opts.log.warn(dir.warning);
    }
    if (l.kind === 'unix' && existsSync(l.path)) unlinkSync(l.path); // stale socket of an earlier run
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const done = () => (server.off('error', reject), resolve());
      if (l.kind === 'unix') server.listen(l.path, done);
      else server.listen(l.port, l.host, done);
    });
    if (l.kind === 'unix') {
      const warning = setSocketOwner(l.path, this.opts.socketMode ?? 0o660, this.opts.socketGid ?? null);
      if (warning) this.opts.log.warn(warning);
    }
    server.on('error', (err) => this.opts.log.error(`listener error: ${err.message}`));
    this.server = server;
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    if (this.sockets.size === 1) this.opts.onBusy?.(true);
    connectionsTotal.inc();
    connectionsActive.set(this.sockets.size);
    const policy = this.policy;
    new MilterSession(socket, {
      policy,
      log: this.opts.log,
      maxFrameBytes: policy.config.server.max_frame_bytes,
      progressIntervalMs: policy.config.server.progress_interval,
      transport: this.opts.listen.kind,
      ...(this.opts.onDecision ? { onDecision: this.opts.onDecision } : {}),
      onClose: () => {
        this.sockets.delete(socket);
        connectionsActive.set(this.sockets.size);
        if (this.sockets.size === 0) this.opts.onBusy?.(false);
      },
    });
  }

  /** Stop accepting, wait up to `graceMs` for sessions to finish, then cut the rest. */
  async close(graceMs: number): Promise<void> {
    const server = this.server;
    this.server = null;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
