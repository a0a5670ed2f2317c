// The one SQLite file that holds relayguard's local state (offender ledger, quarantine index),
// under the policy's server.state_dir. Each module owns its own tables in it.
// It holds client addresses, envelope addresses and rejection texts: readable by relayguard's
// user only (0600; a group may be given read access by hand, 0640, which is kept). SQLite gives
// its -wal and -shm files the main file's mode, so creating that one right is enough.
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';

const STATE_DB_FILE = 'relayguard.sqlite';
/** Mode of a new state database. */
const STATE_DB_MODE = 0o600;
/** Mode of a new state directory. */
const STATE_DIR_MODE = 0o750;

export function stateDbPath(stateDir: string): string {
  return join(stateDir, STATE_DB_FILE);
}

/** For the daemon: the directory and an empty database file with the right modes; world access removed from an existing one. */
export function prepareStateDb(stateDir: string): string {
  mkdirSync(stateDir, { recursive: true, mode: STATE_DIR_MODE });
  const path = stateDbPath(stateDir);
  closeSync(openSync(path, 'a', STATE_DB_MODE));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
    } catch {
      continue;
    }
    if (mode & 0o007) chmodSync(file, mode & ~0o007);
  }
  return path;
}
