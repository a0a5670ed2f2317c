// A unix socket an MTA in a chroot can reach: smtpd in Debian's default master.cf runs chrooted
// in /var/spool/postfix as user postfix, so relayguard's socket lives under that directory
// (server.listen: unix:/var/spool/postfix/relayguard/milter.sock; Postfix names it
// unix:/relayguard/milter.sock) and belongs to a group smtpd is in, mode 0660. The directory is
// created when missing, group-owned by that group with the set-group-id bit, so whatever
// relayguard creates in it belongs to that group even where relayguard may not chown.
import { runProgramSync } from '../ops/exec.js';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/** The socket's directory when relayguard creates it: owner rwx, group r-x (enough to connect), set-group-id. */
const SOCKET_DIR_MODE = 0o2750;
/** The group smtpd runs as on Debian and most installs; used when it exists and none is configured. */
const DEFAULT_SOCKET_GROUP = 'postfix';
/** `getent group` asks NSS (LDAP, sssd): a slow directory must not hold up start-up for long. */
const GETENT_TIMEOUT_MS = 5_000;
/** One group line; a group with many members is a long one. */
const GETENT_MAX_OUTPUT = 1024 * 1024;

/** A group's id from /etc/group, else from `getent group` (LDAP, sssd); null when it does not exist. */
export function groupId(name: string, groupFile = '/etc/group'): number | null {
  try {
    for (const line of readFileSync(groupFile, 'utf8').split('\n')) {
      const [n, , gid] = line.split(':');
      if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
    }
  } catch {
    /* no /etc/group: ask NSS */
  }
  const out = runProgramSync('getent', ['group', name], {
    timeoutMs: GETENT_TIMEOUT_MS,
    maxOutputBytes: GETENT_MAX_OUTPUT,
  });
  const gid = out?.split(':')[2];
  return gid && /^\d+$/.test(gid) ? Number(gid) : null;
}

/**
 * The group the socket gets: the configured one (which must exist), else "postfix" when that
 * group exists, else none (the socket keeps relayguard's own group).
 */
export function socketGroup(configured: string | undefined): { gid: number; name: string } | null {
  if (configured !== undefined) {
    const gid = /^\d+$/.test(configured) ? Number(configured) : groupId(configured);
    if (gid === null) throw new Error(`server.socket_group: no group "${configured}" on this host`);
    return { gid, name: configured };
  }
  const gid = groupId(DEFAULT_SOCKET_GROUP);
  return gid === null ? null : { gid, name: DEFAULT_SOCKET_GROUP };
}

/** chgrp that reports instead of throwing when relayguard may not give the file that group. */
function chgrp(path: string, gid: number): string | null {
  if (statSync(path).gid === gid) return null;
  try {
    chownSync(path, -1, gid);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'EACCES') throw err;
    return `cannot give ${path} group ${gid} (${code}: relayguard is neither root nor in that group); the MTA may be refused access`;
  }
}

/**
 * Creates the socket's directory when missing: SOCKET_DIR_MODE, group `gid`. Returns whether it
 * created it, and a warning when the group could not be set.
 */
export function prepareSocketDir(socketPath: string, gid: number | null): { created: boolean; warning: string | null } {
  const dir = dirname(socketPath);
  if (existsSync(dir)) return { created: false, warning: null };
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const warning = gid === null ? null : chgrp(dir, gid);
  chmodSync(dir, SOCKET_DIR_MODE); // after chown, which clears the set-group-id bit
  return { created: true, warning };
}

/** Gives the socket its mode and group (chown only when the group differs: the set-gid directory usually did it). */
export function setSocketOwner(socketPath: string, mode: number, gid: number | null): string | null {
  const warning = gid === null ? null : chgrp(socketPath, gid);
  chmodSync(socketPath, mode);
  return warning;
}
