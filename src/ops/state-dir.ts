// Where relayguard keeps its state (offender ledger, quarantine index) when the policy's
// state_dir is the default /var/lib/relayguard and this user cannot write there (a first run as a
// normal user): $STATE_DIRECTORY (systemd's StateDirectory=), then $XDG_STATE_HOME/relayguard,
// then ./.relayguard. Nothing is created here: the check only asks whether the directory, or the
// nearest directory above it that exists, is writable.
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** The schema's default state_dir: only that one falls back (an explicitly chosen one is the admin's). */
export const DEFAULT_STATE_DIR = '/var/lib/relayguard';

/** True when `dir` exists and is writable, or could be created under its nearest existing ancestor. */
function usableDir(dir: string, canWrite: (path: string) => boolean = writable): boolean {
  let d = resolve(dir);
  while (!existsSync(d)) {
    const up = dirname(d);
    if (up === d) return false;
    d = up;
  }
  return canWrite(d);
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The state directory to use, and a note saying why when it is not the configured one. */
export function resolveStateDir(
  configured: string,
  env: NodeJS.ProcessEnv = process.env,
  canWrite?: (path: string) => boolean,
): { dir: string; note?: string } {
  if (configured !== DEFAULT_STATE_DIR || usableDir(configured, canWrite)) return { dir: configured };
  const candidates = [
    env.STATE_DIRECTORY?.split(':')[0],
    env.XDG_STATE_HOME ? join(env.XDG_STATE_HOME, 'relayguard') : undefined,
    resolve('.relayguard'),
  ];
  for (const c of candidates) {
    if (c && usableDir(c, canWrite))
      return {
        dir: c,
        note: `state in ${c}: ${configured} is not writable for this user (set server.state_dir to choose)`,
      };
  }
  return { dir: configured };
}
