// Which Postfix services run chrooted, from master.cf: a milter socket path is seen by smtpd (and
// by cleanup, for non_smtpd_milters) relative to queue_directory when they are chrooted, as in
// Debian's default master.cf. Postfix 3.x reads "-" in the chroot column as "n".
import { posix } from 'node:path';

export interface MasterService {
  service: string;
  type: string;
  chroot: boolean;
  command: string;
}

/** The services of a master.cf (comments and -o continuation lines skipped). */
function parseMasterCf(text: string): MasterService[] {
  const out: MasterService[] = [];
  for (const line of text.split('\n')) {
    if (/^\s/.test(line) || /^#/.test(line) || !line.trim()) continue;
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    out.push({ service: f[0]!, type: f[1]!, chroot: f[4] === 'y', command: f[7]! });
  }
  return out;
}

export interface ChrootInfo {
  /** Some smtpd service (inet, or pass behind postscreen) runs chrooted. */
  smtpd: boolean;
  /** The cleanup service (which runs non_smtpd_milters) runs chrooted. */
  cleanup: boolean;
  /** queue_directory: the chroot jail. */
  queueDirectory: string;
}

export function chrootInfo(masterCf: string, queueDirectory: string): ChrootInfo {
  const services = parseMasterCf(masterCf);
  return {
    smtpd: services.some((s) => s.command === 'smtpd' && s.chroot),
    cleanup: services.some((s) => s.command === 'cleanup' && s.chroot),
    queueDirectory,
  };
}

/** "/var/spool/postfix/relayguard/milter.sock" -> "/relayguard/milter.sock" inside the jail; null when outside it. */
export function insideJail(path: string, queueDirectory: string): string | null {
  const q = posix.normalize(queueDirectory).replace(/\/+$/, '');
  const p = posix.normalize(path);
  return p.startsWith(`${q}/`) ? p.slice(q.length) : null;
}
