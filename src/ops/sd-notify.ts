// systemd's readiness protocol (Type=notify): READY=1 once relayguard listens, STOPPING=1 when it
// drains. The message goes to the unix datagram socket in $NOTIFY_SOCKET; Node has no unix
// datagram sockets, so it is sent by systemd's own `systemd-notify` (systemd 246 and later wait
// until the manager has read it, so the short-lived sender is still known to it; the unit needs
// NotifyAccess=all, since the sender is a child of the main process). Without NOTIFY_SOCKET
// nothing is done; a failure is reported, never thrown: readiness is a courtesy to systemd, mail
// flows either way.
import { execFile } from 'node:child_process';

/** How long systemd-notify may take (it waits for the manager to read the message). */
const NOTIFY_TIMEOUT_MS = 5_000;

export interface NotifyOptions {
  env?: NodeJS.ProcessEnv;
  /** The systemd-notify program (PATH lookup by default). */
  program?: string;
  timeoutMs?: number;
}

/**
 * Sends `fields` (e.g. ["READY=1", "STATUS=listening"]) to the service manager. Resolves with
 * null when sent or when not run by systemd (no NOTIFY_SOCKET), else with why it could not be sent.
 */
export function notifySystemd(fields: readonly string[], opts: NotifyOptions = {}): Promise<string | null> {
  const env = opts.env ?? process.env;
  if (!env.NOTIFY_SOCKET) return Promise.resolve(null);
  const program = opts.program ?? 'systemd-notify';
  return new Promise((resolve) => {
    execFile(program, [...fields], { env, timeout: opts.timeoutMs ?? NOTIFY_TIMEOUT_MS, encoding: 'utf8' }, (err, _out, stderr) => {
      if (!err) return resolve(null);
      const code = (err as NodeJS.ErrnoException).code;
      resolve(code === 'ENOENT' ? `${program} not found (install systemd, or use Type=simple)` : `${program} ${fields.join(' ')}: ${stderr.trim() || err.message}`);
    });
  });
}
