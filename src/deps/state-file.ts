// The one SQLite file that holds relayguard's local state (offender ledger, quarantine index),
// under the policy's server.state_dir. Each module owns its own tables in it.
import { join } from 'node:path';

export const STATE_DB_FILE = 'relayguard.sqlite';

export function stateDbPath(stateDir: string): string {
  return join(stateDir, STATE_DB_FILE);
}
