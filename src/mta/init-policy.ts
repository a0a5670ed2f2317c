// `relayguard init`: a starting policy written from the Postfix an admin already runs. Who is
// internal comes from mynetworks, our domains from mydestination, relay_domains and the virtual
// domains, the size limit from message_size_limit, the TLS floor from smtpd_tls_*, clamd's
// address from clamd.conf. Every rule starts in monitor mode (it logs what it would have done
// and changes nothing), each with a comment saying what `enforce` would do. Values Postfix keeps
// in tables (hash:..., ldap:...) cannot be read here: they are named in a comment instead.
import { postconf } from '../deps/mta-postfix.js';
import { readFileSync } from 'node:fs';
import { isValidCidr } from '../primitives/networks.js';
import type { InitFacts } from '../policy/rule-parts.js';
import { tlsRank } from '../primitives/tls-version.js';
import { lowestAllowedProtocol } from './lint.js';
import { splitList } from './postconf.js';
import { RULES } from '../rules/index.js';
import { plainCidr } from './requirements.js';

/** The parameters init reads, with $references expanded (postconf -x). */
const INIT_PARAMETERS = [
  'mydestination',
  'relay_domains',
  'virtual_alias_domains',
  'virtual_mailbox_domains',
  'mynetworks',
  'message_size_limit',
  'smtpd_tls_security_level',
  'smtpd_tls_mandatory_protocols',
  'smtpd_tls_chain_files',
  'smtpd_tls_cert_file',
  'queue_directory',
] as const;

/** Debian's clamd.conf; --clamd-conf names another. */
export const DEFAULT_CLAMD_CONF = '/etc/clamav/clamd.conf';
/** A TLS floor below this is not written: where relayguard requires TLS it asks for at least TLSv1.2. */
const TLS_FLOOR = 'TLSv1.2';

/** Runs `postconf -c DIR -x NAME...` (effective values, defaults included, $references expanded). */
export async function readPostfixValues(
  program: string,
  configDir: string,
  timeoutMs: number,
): Promise<Map<string, string>> {
  const stdout = await postconf({ program, configDir, timeoutMs }, ['-x', ...INIT_PARAMETERS]);
  const out = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^([a-z0-9_]+) = ?(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

export interface ClamdFound {
  /** antivirus.clamd.address */
  address: string;
  /** StreamMaxLength as written (e.g. "25M"), when set. */
  streamMaxLength?: string;
}

/** clamd's address from clamd.conf: LocalSocket first (no TCP needed), else TCPSocket/TCPAddr; null when neither. */
export function parseClamdConf(text: string): ClamdFound | null {
  const get = (key: string): string | undefined => {
    for (const raw of text.split('\n')) {
      const m = /^\s*([A-Za-z]+)\s+(.+?)\s*$/.exec(raw);
      if (m && m[1] === key && !raw.trimStart().startsWith('#')) return m[2]!.replace(/^"(.*)"$/, '$1');
    }
    return undefined;
  };
  if (/^\s*Example\s*$/m.test(text)) return null; // the unedited sample: clamd refuses to start with it
  const max = get('StreamMaxLength');
  const extra = max ? { streamMaxLength: max } : {};
  const local = get('LocalSocket');
  if (local) return { address: `unix:${local}`, ...extra };
  const port = get('TCPSocket');
  if (port && /^\d+$/.test(port)) {
    const host = get('TCPAddr');
    const reach = !host || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    return { address: reach.includes(':') ? `tcp:[${reach}]:${port}` : `tcp:${reach}:${port}`, ...extra };
  }
  return null;
}

export function readClamdConf(file: string): { found: ClamdFound | null; why?: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { found: null, why: `${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  const found = parseClamdConf(text);
  return found ? { found } : { found: null, why: `${file} names neither LocalSocket nor TCPSocket` };
}

const TABLE = /^[a-z0-9_]+:/i;
const DOMAIN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

interface Derived {
  domains: string[];
  networks: string[];
  /** Table lookups and entries init could not turn into policy values. */
  unread: string[];
}

/** local_domains and networks.internal from the live values. */
export function deriveSites(values: ReadonlyMap<string, string>): Derived {
  const unread: string[] = [];
  const domains: string[] = [];
  for (const p of ['mydestination', 'relay_domains', 'virtual_alias_domains', 'virtual_mailbox_domains']) {
    for (const item of splitList(values.get(p) ?? '')) {
      if (TABLE.test(item) || item.startsWith('/')) {
        unread.push(`${p}: ${item}`);
        continue;
      }
      const d = item.replace(/^\./, '').toLowerCase();
      // localhost names are this host, not a mail domain anyone outside sends to.
      if (d === 'localhost' || d.startsWith('localhost.')) continue;
      if (DOMAIN.test(d)) domains.push(d);
      else unread.push(`${p}: ${item}`);
    }
  }
  const networks: string[] = [];
  for (const item of splitList(values.get('mynetworks') ?? '')) {
    const plain = plainCidr(item);
    // A single address is written as the /32 or /128 it stands for.
    const cidr = plain && !plain.includes('/') ? `${plain}/${plain.includes(':') ? 128 : 32}` : plain;
    if (cidr && isValidCidr(cidr)) networks.push(cidr);
    else unread.push(`mynetworks: ${item}`);
  }
  return { domains: [...new Set(domains)], networks: [...new Set(networks)], unread };
}

/** The TLS floor to write: the lowest protocol mandatory TLS allows in Postfix, never below TLSv1.2. */
export function tlsFloor(values: ReadonlyMap<string, string>): string {
  const lowest = lowestAllowedProtocol(values.get('smtpd_tls_mandatory_protocols') ?? '');
  return (tlsRank(lowest) ?? 0) > (tlsRank(TLS_FLOOR) ?? 0) ? lowest : TLS_FLOOR;
}

const q = (s: string) => JSON.stringify(s);
const flow = (items: readonly string[]) => `[${items.map(q).join(', ')}]`;

export interface InitOptions {
  configDir: string;
  /** Set when master.cf runs smtpd chrooted: the jail (queue_directory). */
  chrootedSmtpd?: string;
  clamdConf: string;
  clamd: { found: ClamdFound | null; why?: string };
  now?: Date;
}

/** The policy text (YAML with comments). */
export function initPolicyText(values: ReadonlyMap<string, string>, opts: InitOptions): string {
  const { domains, networks, unread } = deriveSites(values);
  const size = Number(values.get('message_size_limit') ?? '');
  const level = values.get('smtpd_tls_security_level') || 'none';
  const hasCert = !!(values.get('smtpd_tls_chain_files') || values.get('smtpd_tls_cert_file'));
  const floor = tlsFloor(values);
  const internal = networks.length ? networks : ['127.0.0.0/8', '::1/128'];
  const L: string[] = [];
  const add = (...lines: string[]) => L.push(...lines);

  add(
    `# relayguard policy written by \`relayguard init\` from the Postfix in ${opts.configDir}`,
    `# (postconf -x) on ${(opts.now ?? new Date()).toISOString().slice(0, 10)}.`,
    '#',
    '# Every rule starts in monitor mode: it logs what it would have done, as',
    '#   monitor: RULE would reject: REASON',
    '# and changes nothing. Watch the log for a few days (journalctl -t relayguard | grep monitor:),',
    "# then change a rule's `mode: monitor` to `mode: enforce` (each rule says what that does) and",
    '# reload (systemctl reload relayguard). Check this file with: relayguard validate --config FILE',
    "# Postfix's side: relayguard postfix-config --config FILE (--apply to make the changes).",
    '',
    'server:',
    ...(opts.chrootedSmtpd
      ? [
          `  # smtpd runs chrooted in ${opts.chrootedSmtpd} (master.cf). TCP works from the jail; for a unix socket use`,
          `  # listen: unix:${opts.chrootedSmtpd.replace(/\/+$/, '')}/relayguard/milter.sock (docs/operations.md, "A chrooted smtpd").`,
        ]
      : []),
    '  listen: inet:127.0.0.1:10025',
    '  state_dir: /var/lib/relayguard',
    '',
    'mta:',
    '  kind: postfix',
    `  config_directory: ${q(opts.configDir)}`,
    '',
    '# Our domains: from mydestination, relay_domains, virtual_alias_domains and virtual_mailbox_domains.',
  );
  for (const u of unread.filter((x) => !x.startsWith('mynetworks')))
    add(`# not read (a table or file; add its domains by hand): ${u}`);
  if (!domains.length)
    add('# Postfix names no domain of its own: add yours, or every recipient of an outside client counts as foreign.');
  add(
    `local_domains: ${flow(domains)}`,
    '',
    'networks:',
    '  # From mynetworks: clients in these ranges are internal (their mail is outbound; they may relay).',
  );
  for (const u of unread.filter((x) => x.startsWith('mynetworks'))) add(`  # not read: ${u}`);
  if (!networks.length) add('  # mynetworks gave no address range: loopback only.');
  add(
    `  internal: ${flow(internal)}`,
    '  # Named groups other rules can refer to, e.g. partners that must use TLS:',
    '  groups: {}',
    '  # groups:',
    '  #   partner: [198.51.100.0/24]',
    '',
    'dns:',
    "  # Resolvers for the DNS lists; empty: the system's.",
    '  servers: []',
    '',
    'logging:',
    '  level: info',
    '  # auto: Postfix-style text lines on a terminal and under systemd, JSON lines otherwise.',
    '  format: auto',
    '',
    'rules:',
  );
  // Each rule writes its own starting block, in the registry's order.
  const facts: InitFacts = {
    messageSizeLimit: size,
    tlsLevel: level,
    tlsCertificate: hasCert,
    tlsFloor: floor,
    clamdConf: opts.clamdConf,
    clamd: opts.clamd.found,
    ...(opts.clamd.why ? { clamdMissing: opts.clamd.why } : {}),
  };
  for (const def of RULES) add(...(def.mta?.init?.(facts) ?? []));
  return L.join('\n') + '\n';
}
