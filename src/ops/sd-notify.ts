// systemd's readiness protocol (Type=notify): READY=1 once relayguard listens, STOPPING=1 when it
// drains. The message goes to the unix datagram socket in $NOTIFY_SOCKET; Node has no unix
// datagram sockets, so it is sent by systemd's own `systemd-notify` (systemd 246 and later wait
// until the manager has read it, so the short-lived sender is still known to it; the unit needs
// NotifyAccess=all, since the sender is a child of the main process). Without NOTIFY_SOCKET
// nothing is done; a failure is reported, never thrown: readiness is a courtesy to systemd, mail
// flows either way.
import { runProgram } from './exec.js';

/** How long systemd-notify may take (it waits for the manager to read the message). */
const NOTIFY_TIMEOUT_MS = 5_000;
/** systemd-notify prints nothing when it works; an error is a line or two. */
const NOTIFY_MAX_OUTPUT = 64 * 1024;

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
  return runProgram(program, fields, {
    env,
    timeoutMs: opts.timeoutMs ?? NOTIFY_TIMEOUT_MS,
    maxOutputBytes: NOTIFY_MAX_OUTPUT,
  }).then(
    (r) => (r.code === 0 ? null : `${program} ${fields.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`),
    (err: Error) =>
      /\(ENOENT\)$/.test(err.message) ? `${program} not found (install systemd, or use Type=simple)` : err.message,
  );
}
