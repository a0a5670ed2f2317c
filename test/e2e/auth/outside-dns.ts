// The outside world's DNS for the authentication e2e tests: Debian's nsd, authoritative on
// loopback for the outside domains, serving their DKIM keys (made fresh per run), SPF and DMARC
// records. Its port is derived from the slot like the stack's (5354 + 100 * slot), its files
// live in the slot's directory, and the test that starts it stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pollUntil, run, stack } from '../harness.js';

export const OUTSIDE_DNS_BASE_PORT = 5354;
export const outsideDnsPort = OUTSIDE_DNS_BASE_PORT + 100 * stack.slot;
export const outsideDnsServer = `127.0.0.1:${outsideDnsPort}`;

export interface DkimKey {
  domain: string;
  selector: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  privateKeyPem: string;
  publicKey: KeyObject;
}

export function makeKey(domain: string, selector: string, algorithm: DkimKey['algorithm']): DkimKey {
  const pair =
    algorithm === 'rsa-sha256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  return {
    domain,
    selector,
    algorithm,
    privateKeyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: pair.publicKey,
  };
}

/** The DKIM TXT record of a key (RFC 6376 / RFC 8463), as one string. */
export function dkimRecord(key: DkimKey): string {
  const der = key.publicKey.export({ type: 'spki', format: 'der' });
  // Ed25519: the raw 32-byte key, the last bytes of the SubjectPublicKeyInfo.
  return key.algorithm === 'rsa-sha256'
    ? `v=DKIM1; k=rsa; p=${der.toString('base64')}`
    : `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`;
}

export interface Zone {
  domain: string;
  /** owner (relative, "@" for the apex) -> TXT record. */
  txt: Record<string, string>;
}

/** A TXT value in zone-file syntax: quoted strings of at most 255 bytes. */
const txtData = (v: string) => (v.match(/.{1,255}/g) ?? ['']).map((s) => `"${s.replace(/["\\]/g, '\\$&')}"`).join(' ');

function zoneText(z: Zone): string {
  const lines = [
    `$ORIGIN ${z.domain}.`,
    '$TTL 60',
    `@ IN SOA ns.${z.domain}. hostmaster.${z.domain}. 1 3600 600 86400 60`,
    `@ IN NS ns.${z.domain}.`,
    'ns IN A 127.0.0.1',
  ];
  for (const [owner, value] of Object.entries(z.txt)) lines.push(`${owner} IN TXT ( ${txtData(value)} )`);
  return lines.join('\n') + '\n';
}

export class OutsideDns {
  private child: ChildProcess | null = null;
  private output = '';
  readonly dir = join(stack.baseDir, 'outside-dns');

  async start(zones: Zone[]): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
    const conf = [
      'server:',
      `  ip-address: 127.0.0.1@${outsideDnsPort}`,
      `  port: ${outsideDnsPort}`,
      '  username: ""',
      '  chroot: ""',
      `  zonesdir: "${this.dir}"`,
      `  pidfile: "${this.dir}/nsd.pid"`,
      '  database: ""',
      `  xfrdfile: "${this.dir}/xfrd.state"`,
      `  zonelistfile: "${this.dir}/zone.list"`,
      '  server-count: 1',
      '  verbosity: 1',
      'remote-control:',
      '  control-enable: no',
      ...zones.flatMap((z) => ['zone:', `  name: "${z.domain}"`, `  zonefile: "${z.domain}.zone"`]),
    ].join('\n');
    writeFileSync(join(this.dir, 'nsd.conf'), conf + '\n');
    for (const z of zones) writeFileSync(join(this.dir, `${z.domain}.zone`), zoneText(z));
    const check = await run('nsd-checkconf', [join(this.dir, 'nsd.conf')]);
    if (check.code !== 0) throw new Error(`nsd-checkconf: ${check.stderr}${check.stdout}`);
    const child = spawn('nsd', ['-d', '-c', join(this.dir, 'nsd.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.on('data', (c: Buffer) => (this.output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (this.output += c.toString()));
    process.once('exit', () => child.kill('SIGKILL'));
    const probe = zones[0]!;
    await pollUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`nsd exited (${child.exitCode}): ${this.output}`);
        const r = await run('dig', [
          '+short',
          '+time=1',
          '+tries=1',
          '-p',
          String(outsideDnsPort),
          '@127.0.0.1',
          probe.domain,
          'SOA',
        ]);
        return r.stdout.includes(`ns.${probe.domain}.`) ? true : undefined;
      },
      15_000,
      `nsd to answer on ${outsideDnsServer}: ${this.output}`,
    );
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  }
}
