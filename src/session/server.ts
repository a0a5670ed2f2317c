// The listener: inet:HOST:PORT or unix:PATH (Postfix syntax), the connection table, the current
// policy (swapped atomically on reload; connections keep the policy they started with), and a
// graceful close that lets sessions in flight finish within a bound.
// The table is bounded in all (max_connections) and per peer address (max_connections_per_peer).
// When it is full, a new connection takes the slot of the stalest idle connection of the peer
// that holds the most, rather than being dropped: a client that opens connections and sits on
// them (silent, or a byte now and then) cannot lock the MTA out; it only evicts its own.
import { existsSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'winston';
import { connectionsActive, connectionsRefusedTotal, connectionsTotal } from '../ops/metrics.js';
import type { Decision } from '../policy/decision.js';
import type { RunningPolicy } from '../policy/running-policy.js';
import { MilterSession } from './milter-session.js';
import { pickEviction } from './eviction.js';
import { prepareSocketDir, setSocketOwner } from './socket-owner.js';

export type ListenAddress = { kind: 'inet'; host: string; port: number } | { kind: 'unix'; path: string };

export function parseListen(spec: string): ListenAddress {
  if (spec.startsWith('unix:') && spec.length > 5) return { kind: 'unix', path: spec.slice(5) };
  const forms = [
    /^inet6?:\[([^\]]+)\]:(\d+)$/, // inet:[::1]:10025
    /^inet6?:([^:@[\]]+):(\d+)$/, // inet:127.0.0.1:10025 (Postfix)
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
  /** Default: max_connections_per_peer of the current policy. */
  maxConnectionsPerPeer?: number;
  log: Logger;
  onDecision?: (d: Decision) => void;
  /** Called with true when the first connection opens and false when the last one closes. */
  onBusy?: (busy: boolean) => void;
}

/** At most one log line per this many ms about refused or evicted connections (a flood would drown the log). */
const LOG_EVERY_MS = 10_000;

/** `P`: the caller's own policy type, handed back by currentPolicy and swapPolicy. */
export class MilterServer<P extends RunningPolicy = RunningPolicy> {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  /** Per open socket: settles once its session has closed and released its message (see close()). */
  private readonly released = new Map<Socket, Promise<void>>();
  /** Open sessions with the peer they came from ('local' for a unix socket). */
  private readonly sessions = new Map<MilterSession, string>();
  private readonly perPeer = new Map<string, number>();
  private policy: P;
  /** Refusals and evictions are logged at most once per LOG_EVERY_MS, with a count. */
  private untold = { refused: 0, evicted: 0, since: 0 };

  constructor(
    policy: P,
    private readonly opts: MilterServerOptions,
  ) {
    this.policy = policy;
  }

  get currentPolicy(): P {
    return this.policy;
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** New connections use `next`; the old policy is closed once its connections are gone. */
  swapPolicy(next: P): P {
    const old = this.policy;
    this.policy = next;
    return old;
  }

  async start(): Promise<void> {
    const server = createServer({ noDelay: true }, (socket) => this.onConnection(socket));
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
    const peer = this.opts.listen.kind === 'unix' ? 'local' : (socket.remoteAddress ?? 'unknown');
    if (!this.admit(peer)) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1);
    if (this.sockets.size === 1) this.opts.onBusy?.(true);
    connectionsTotal.inc();
    connectionsActive.set(this.sockets.size);
    let release!: (cleanedUp: Promise<void>) => void;
    this.released.set(socket, new Promise<void>((r) => (release = r)));
    const policy = this.policy;
    const session = new MilterSession(socket, {
      policy,
      log: this.opts.log,
      maxFrameBytes: policy.config.server.max_frame_bytes,
      progressIntervalMs: policy.config.server.progress_interval,
      transport: this.opts.listen.kind,
      ...(this.opts.onDecision ? { onDecision: this.opts.onDecision } : {}),
      onClose: (cleanedUp) => {
        release(cleanedUp);
        void cleanedUp.finally(() => this.released.delete(socket));
        this.sockets.delete(socket);
        this.forget(session);
        connectionsActive.set(this.sockets.size);
        if (this.sockets.size === 0) this.opts.onBusy?.(false);
      },
    });
    this.sessions.set(session, peer);
  }

  /** Whether a connection from `peer` may open; makes room by evicting when the table is full. */
  private admit(peer: string): boolean {
    const perPeerMax = this.opts.maxConnectionsPerPeer ?? this.policy.config.server.max_connections_per_peer;
    if (peer !== 'local' && (this.perPeer.get(peer) ?? 0) >= perPeerMax) {
      connectionsRefusedTotal.inc({ reason: 'per_peer' });
      this.tell('refused', `${peer} already holds ${perPeerMax} connections (max_connections_per_peer)`);
      return false;
    }
    if (this.sessions.size < this.opts.maxConnections) return true;
    const victim = pickEviction(this.sessions, this.perPeer);
    if (!victim) {
      connectionsRefusedTotal.inc({ reason: 'full' });
      this.tell(
        'refused',
        `all ${this.opts.maxConnections} connections are busy (max_connections); the MTA applies its default action`,
      );
      return false;
    }
    connectionsRefusedTotal.inc({ reason: 'evicted' });
    this.tell(
      'evicted',
      `connection table full (max_connections ${this.opts.maxConnections}): the stalest idle connection of ${this.sessions.get(victim)} makes room`,
    );
    this.forget(victim); // its slot is free now, whenever its socket's close event comes
    victim.evict('evicted to make room for a new connection', 'debug');
    return true;
  }

  private forget(session: MilterSession): void {
    const peer = this.sessions.get(session);
    if (peer === undefined || !this.sessions.delete(session)) return;
    const left = (this.perPeer.get(peer) ?? 1) - 1;
    if (left > 0) this.perPeer.set(peer, left);
    else this.perPeer.delete(peer);
  }

  private tell(kind: 'refused' | 'evicted', line: string): void {
    this.untold[kind]++;
    const now = Date.now();
    if (now - this.untold.since < LOG_EVERY_MS) return;
    const more = this.untold.refused + this.untold.evicted - 1;
    this.opts.log.warn(
      `${line}${more > 0 ? ` (and ${more} more refusals or evictions since the last such line)` : ''}`,
    );
    this.untold = { refused: 0, evicted: 0, since: now };
  }

  /** Stop accepting, wait up to `graceMs` for sessions to finish, then cut the rest. */
  async close(graceMs: number): Promise<void> {
    const server = this.server;
    this.server = null;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const s of this.sockets) s.destroy();
    // The sessions cut above still remove their spilled bodies: done before the process exits.
    await Promise.allSettled([...this.released.values()]);
    await closed;
  }
}
