// Builds .mmdb files for the origin rule's tests with MaxMind's Perl writer
// (libmaxmind-db-writer-perl, installed by `test/e2e/stack.sh packages`), and looks addresses up
// with libmaxminddb's mmdblookup (mmdb-bin) as an independent reader.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const WRITER = join(REPO, 'test/fixtures/origin/write-mmdb.pl');

export interface MmdbSpec {
  type: string;
  /** Seconds since 1970; default: now. */
  build_epoch?: number;
  networks: Array<{ network: string; data: Record<string, unknown> }>;
}

/** Writes `spec` to `out` (through a temporary file renamed over it, as geoipupdate does). */
export function writeMmdb(spec: MmdbSpec, out: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'rg-mmdb-'));
  const specFile = join(dir, 'spec.json');
  writeFileSync(specFile, JSON.stringify(spec));
  const tmp = join(dirname(out), `.${Date.now()}.${process.pid}.tmp`);
  const r = spawnSync('perl', [WRITER, specFile, tmp], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0)
    throw new Error(
      `write-mmdb.pl failed (is libmaxmind-db-writer-perl installed? run test/e2e/stack.sh packages): ${r.stderr || r.error?.message}`,
    );
  renameSync(tmp, out);
  return out;
}

/** `mmdblookup --file F --ip IP PATH...` as a string, or null when the address is not in the file. */
export function mmdblookup(file: string, ip: string, ...path: string[]): string | null {
  try {
    const out = execFileSync('mmdblookup', ['--file', file, '--ip', ip, ...path], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const m = /"([^"]*)" <utf8_string>|(\d+) <uint32>/.exec(out);
    return m ? (m[1] ?? m[2]!) : out.trim();
  } catch (err) {
    if (/Could not find an entry/.test(String((err as { stderr?: string }).stderr ?? ''))) return null;
    throw err;
  }
}

const country = (iso: string) => ({
  country: { iso_code: iso, names: { en: iso } },
  registered_country: { iso_code: iso },
});
const as = (n: number, org: string) => ({ autonomous_system_number: n, autonomous_system_organization: org });

/** The test world, IPv4 and IPv6 (documentation and test ranges, and a few public blocks). */
export const COUNTRIES: MmdbSpec = {
  type: 'GeoLite2-Country',
  networks: [
    { network: '192.0.2.0/24', data: country('DE') },
    { network: '198.51.100.0/24', data: country('RU') },
    { network: '203.0.113.0/25', data: country('KP') },
    { network: '203.0.113.128/25', data: country('AT') },
    { network: '100.64.0.0/16', data: country('US') },
    { network: '2001:db8:de::/48', data: country('DE') },
    { network: '2001:db8:ee::/48', data: country('RU') },
  ],
};

export const ASNS: MmdbSpec = {
  type: 'GeoLite2-ASN',
  networks: [
    { network: '192.0.2.0/24', data: as(64500, 'Example Telekom AG') },
    { network: '198.51.100.0/25', data: as(64501, 'Bulletproof Hosting Ltd') },
    { network: '198.51.100.128/25', data: as(64502, 'Partner Carrier plc') },
    { network: '203.0.113.0/24', data: as(64503, 'Example Cloud Hosting LLC') },
    { network: '100.64.0.0/16', data: as(64504, 'Big Mail Provider Inc') },
    { network: '2001:db8:de::/48', data: as(64500, 'Example Telekom AG') },
    { network: '2001:db8:ee::/48', data: as(64501, 'Bulletproof Hosting Ltd') },
  ],
};
