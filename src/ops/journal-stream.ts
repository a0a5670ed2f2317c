// Whether stderr is systemd's journal, and error text written so that the journal files it as an
// error: a daemon that refuses to start (a bad policy, a bad argument) says why on stderr, and
// `journalctl -p err -u relayguard` should show it, not only the unit's "failed" line.
import { fstatSync } from 'node:fs';

/** sd-daemon(3): journald reads `<3>` at the start of a line as priority 3, "err", and drops it. */
const ERROR_PRIORITY = '<3>';

/**
 * True when stderr is the journal's stream: systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the
 * stream it connected to stdout/stderr; a redirected stderr (a file, a pipe) is not the journal.
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const want = env.JOURNAL_STREAM;
  if (!want) return false;
  try {
    const st = fstatSync(2);
    return want === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** `text` with the error priority at the start of every line that is not empty. Lines are what
 *  journald splits on, "\n" only: a CR or U+2028 inside a quoted value does not start one. */
export function withErrorPriority(text: string): string {
  return text.replace(/(^|\n)(?=[^\n])/g, `$1${ERROR_PRIORITY}`);
}

/** Writes an error to stderr; under the journal every line carries the error priority. */
export function writeError(text: string): void {
  process.stderr.write(stderrIsJournal() ? withErrorPriority(text) : text);
}
