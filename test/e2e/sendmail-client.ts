// SMTP clients with real outside addresses for the Sendmail tests. Sendmail has no XCLIENT, so
// a client that must look like 203.0.113.9 has to connect from 203.0.113.9: that address only
// exists inside the Sendmail stack's network namespace (test/e2e/sendmail-stack.sh). This file is
// both sides of that:
//  - in the test process, NetnsSmtpClient starts one helper process inside the namespace and
//    sends it sessions to run (IPC, structured clone so Buffers pass intact);
//  - run as that helper (`node sendmail-client.js --serve`), it runs each session with the
//    harness's SMTP sessions (smtp-client.ts), connecting from the requested source address.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { smtpSession, type SmtpOptions, type SmtpResult } from './smtp-client.js';

const SERVE_FLAG = '--serve';
/** How long the helper may take to start inside the namespace. */
const HELPER_START_MS = 10_000;

interface SessionRequest {
  id: number;
  host: string;
  port: number;
  localAddress: string;
  opts: SmtpOptions;
}

interface SessionResponse {
  id: number;
  result?: SmtpResult;
  error?: string;
}

// ------------------------------------------------------------------ test-process side

export class NetnsSmtpClient {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (r: SmtpResult) => void; reject: (e: Error) => void }>();
  private exited: string | null = null;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: SessionResponse) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.result) p.resolve(m.result);
      else p.reject(new Error(m.error ?? 'no result'));
    });
    child.on('exit', (code, signal) => {
      this.exited = `SMTP helper in the namespace exited (${code ?? signal})`;
      for (const p of this.pending.values()) p.reject(new Error(this.exited));
      this.pending.clear();
    });
  }

  /** Starts the helper inside network namespace `netns` and waits until it is ready. */
  static async start(netns: string): Promise<NetnsSmtpClient> {
    const self = fileURLToPath(import.meta.url);
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, self, SERVE_FLAG], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`SMTP helper did not start in ${netns} within ${HELPER_START_MS} ms`)),
        HELPER_START_MS,
      );
      child.once('message', (m) => {
        clearTimeout(timer);
        if (m === 'ready') resolve();
        else reject(new Error(`SMTP helper: unexpected first message ${JSON.stringify(m)}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`SMTP helper exited (${code}) before it was ready`));
      });
    });
    return new NetnsSmtpClient(child);
  }

  /** One SMTP session from `localAddress` to host:port inside the namespace. */
  session(host: string, port: number, localAddress: string, opts: SmtpOptions): Promise<SmtpResult> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    const id = ++this.nextId;
    return new Promise<SmtpResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const req: SessionRequest = { id, host, port, localAddress, opts };
      this.child.send(req);
    });
  }

  close(): void {
    if (!this.exited) this.child.kill('SIGTERM');
  }
}

// ------------------------------------------------------------------ helper side (inside the namespace)

function serve(): void {
  let queue = Promise.resolve();
  process.on('message', (req: SessionRequest) => {
    queue = queue.then(async () => {
      let res: SessionResponse;
      try {
        res = {
          id: req.id,
          result: await smtpSession(req.host, req.port, { ...req.opts, localAddress: req.localAddress }),
        };
      } catch (err) {
        res = { id: req.id, error: (err as Error).message };
      }
      process.send!(res);
    });
  });
  process.on('disconnect', () => process.exit(0));
  process.send!('ready');
}

if (process.argv.includes(SERVE_FLAG) && process.argv[1] === fileURLToPath(import.meta.url)) {
  serve();
}
