// Connections to clamd kept open between scans (clamd's IDSESSION mode), so a busy gateway does
// not pay connect, accept and close per message. In a session every command is answered as
// "<id>: <reply>\0", with ids counted from 1 per connection; "zEND\0" closes it.
//
// A connection is only ever reused after a complete, well-formed verdict for exactly the request
// it carried; anything else (an error reply, a reply for another id, trailing bytes, a stream
// given up half-way, silence) destroys it, and the scan reports an error as before. A
// connection idle for longer than `checkAfterMs` is asked PING before it carries a message, and
// one clamd closed while it was idle is dropped: neither costs a scan, the next connection is
// tried (or a new one opened).
import { connect, type Socket } from 'node:net';
import type { ClamdAddress } from './clamd.js';

/** One scan's use of a connection. */
export interface Lease {
  readonly socket: Socket;
  /** The request id of this scan within its session; 0 on a one-shot connection (reply without id). */
  readonly id: number;
  /** Hand the connection back: `reusable` only after a complete verdict for `id`. */
  release(reusable: boolean): void;
}

export interface SessionPoolOptions {
  /** Idle connections kept open at most (more are closed when their scan ends). */
  maxIdle: number;
  /** An idle connection is closed after this long (keep it below clamd's IdleTimeout, 30 s by default). */
  idleMs: number;
  /** A connection idle for longer than this answers PING before it is used. */
  checkAfterMs: number;
  /** How long that PING may take before the connection is dropped. */
  pingTimeoutMs: number;
  now?: () => number;
}

const MAX_PING_REPLY_BYTES = 256;
/** Idle sessions are closed after this long: a third of clamd's default IdleTimeout (30 s). */
const SESSION_IDLE_MS = 10_000;
/** A session idle longer than this answers PING first (under load they are reused within ms). */
const SESSION_CHECK_AFTER_MS = 2_000;

export function sessionPoolOptions(maxIdle: number, pingTimeoutMs: number): SessionPoolOptions {
  return { maxIdle, idleMs: SESSION_IDLE_MS, checkAfterMs: SESSION_CHECK_AFTER_MS, pingTimeoutMs };
}

export function openSocket(a: ClamdAddress): Socket {
  return a.kind === 'unix' ? connect({ path: a.path }) : connect({ host: a.host, port: a.port });
}

/** A lease on a connection of its own, closed after the scan (no session). */
export function oneShotLease(a: ClamdAddress): Lease {
  const socket = openSocket(a);
  return { socket, id: 0, release: () => socket.destroy() };
}

interface Pooled {
  socket: Socket;
  /** Id of the next command sent on it. */
  nextId: number;
  idleSince: number;
  idleTimer: NodeJS.Timeout | null;
  onIdleTrouble: (() => void) | null;
}

export class ClamdSessionPool {
  /** Most recently used last: hot connections stay hot, cold ones age out. */
  private readonly idle: Pooled[] = [];
  private readonly now: () => number;
  private closed = false;
  /** Connections opened, ever (tests and the benchmark read it). */
  opened = 0;

  constructor(
    private readonly address: ClamdAddress,
    private readonly opts: SessionPoolOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** A connection for one scan: an idle one that is still alive, or a new session. */
  async acquire(): Promise<Lease> {
    for (let c = this.idle.pop(); c; c = this.idle.pop()) {
      this.leaveIdle(c);
      if (c.socket.destroyed || !c.socket.writable) continue;
      if (this.now() - c.idleSince >= this.opts.checkAfterMs && !(await this.ping(c))) {
        // One silent session says clamd may be hung: do not wait for the next idle one as well.
        c.socket.destroy();
        break;
      }
      return this.lease(c);
    }
    return this.lease(this.open());
  }

  /** Close every idle connection; connections in use are closed when their scan ends. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) this.retire(c);
  }

  private open(): Pooled {
    const socket = openSocket(this.address);
    this.opened++;
    socket.setNoDelay(true);
    socket.write('zIDSESSION\0');
    return { socket, nextId: 1, idleSince: this.now(), idleTimer: null, onIdleTrouble: null };
  }

  private lease(c: Pooled): Lease {
    const id = c.nextId++;
    let released = false;
    return {
      socket: c.socket,
      id,
      release: (reusable) => {
        if (released) return;
        released = true;
        if (
          reusable &&
          !this.closed &&
          !c.socket.destroyed &&
          c.socket.writable &&
          this.idle.length < this.opts.maxIdle
        )
          this.enterIdle(c);
        else if (reusable && !c.socket.destroyed) this.retire(c);
        else c.socket.destroy();
      },
    };
  }

  /** End the session politely (clamd frees it at once), then close. */
  private retire(c: Pooled): void {
    c.socket.on('error', () => undefined); // nobody waits on it any more
    c.socket.end('zEND\0');
    setTimeout(() => c.socket.destroy(), 1000).unref();
  }

  private enterIdle(c: Pooled): void {
    c.idleSince = this.now();
    // clamd sends nothing on an idle session: any byte, an end or an error makes it unusable.
    const trouble = () => {
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
      this.leaveIdle(c);
      c.socket.destroy();
    };
    c.onIdleTrouble = trouble;
    c.socket.on('data', trouble);
    c.socket.on('end', trouble);
    c.socket.on('close', trouble);
    c.socket.on('error', trouble);
    c.idleTimer = setTimeout(() => {
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
      this.leaveIdle(c);
      this.retire(c);
    }, this.opts.idleMs);
    c.idleTimer.unref();
    this.idle.push(c);
  }

  private leaveIdle(c: Pooled): void {
    if (c.idleTimer) clearTimeout(c.idleTimer);
    c.idleTimer = null;
    const t = c.onIdleTrouble;
    if (!t) return;
    c.onIdleTrouble = null;
    c.socket.off('data', t);
    c.socket.off('end', t);
    c.socket.off('close', t);
    c.socket.off('error', t);
  }

  /** PING within the session: true only for "<id>: PONG" in time. */
  private ping(c: Pooled): Promise<boolean> {
    const id = c.nextId++;
    const socket = c.socket;
    return new Promise<boolean>((resolve) => {
      const parts: Buffer[] = [];
      let size = 0;
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', onFail);
        socket.off('close', onFail);
        socket.off('error', onFail);
        resolve(ok);
      };
      const onFail = () => finish(false);
      const onData = (d: Buffer) => {
        parts.push(d);
        size += d.length;
        const all = Buffer.concat(parts);
        const nul = all.indexOf(0);
        if (nul >= 0) finish(nul === all.length - 1 && all.subarray(0, nul).toString('latin1') === `${id}: PONG`);
        else if (size > MAX_PING_REPLY_BYTES) finish(false);
      };
      const timer = setTimeout(onFail, this.opts.pingTimeoutMs);
      timer.unref();
      socket.on('data', onData);
      socket.on('end', onFail);
      socket.on('close', onFail);
      socket.on('error', onFail);
      socket.write('zPING\0');
    });
  }
}
