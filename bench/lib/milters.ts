// The configurations of the benchmark: which milter, over which transport, and how to start it.
// Every milter runs for the whole benchmark (so each is warm and equally treated); Postfix has
// one smtpd listener per configuration whose smtpd_milters points at that milter.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  childrenOf,
  procUsage,
  startDaemon,
  waitFor,
  accepts,
  alive,
  type Daemon,
  type SocketAddress,
} from './proc.js';
import type { BenchLayout } from './bench-postfix.js';
import type { PolicyVariant } from './policies.js';
import { benchNodeArgs, serveCommand } from './relayguard-proc.js';

export type MilterKind =
  | 'none'
  | 'c-null'
  | 'c-body'
  | 'rg-trace'
  | 'rg-policy'
  | 'rg-disclaimer'
  | 'rg-av'
  | 'rg-full'
  | 'rg-av-1conn'
  | 'rg-full-1conn'
  | 'rg-full-heap-large'
  | 'mimedefang'
  | 'clamav-milter';
export type Transport = 'unix' | 'tcp';
export const TRANSPORTS: readonly Transport[] = ['unix', 'tcp'];

export const RELAYGUARD_VARIANT: Partial<Record<MilterKind, PolicyVariant>> = {
  'rg-trace': 'trace',
  'rg-policy': 'policy',
  'rg-disclaimer': 'disclaimer',
  'rg-av': 'antivirus',
  'rg-full': 'full',
  'rg-av-1conn': 'antivirus-1conn',
  'rg-full-1conn': 'full-1conn',
  'rg-full-heap-large': 'full-heap-large',
};

export const KIND_LABEL: Record<MilterKind, string> = {
  none: 'Postfix, no milter (ceiling)',
  'c-null': 'C libmilter null milter (+1 header)',
  'c-body': 'C libmilter body-replacing milter (+1 header, +1 line)',
  'rg-trace': 'relayguard, every rule off but trace_header',
  'rg-policy': 'relayguard, reference policy without clamd and disclaimer',
  'rg-disclaimer': 'relayguard, reference policy without clamd, with disclaimer',
  'rg-av': 'relayguard, clamd scanning only (+ trace header)',
  'rg-full': 'relayguard, reference policy with clamd and disclaimer',
  'rg-av-1conn': 'relayguard, clamd scanning only, one clamd connection per scan',
  'rg-full-1conn': 'relayguard, reference policy, one clamd connection per scan',
  'rg-full-heap-large': 'relayguard, reference policy, server.heap: large (V8 sizes its heap itself)',
  mimedefang: 'MIMEDefang 3.3 (embedded Perl), text+HTML boilerplate',
  'clamav-milter': 'clamav-milter 1.4 (same clamd)',
};

export interface BenchConfig {
  id: string;
  kind: MilterKind;
  transport: Transport | null;
  /** Postfix's smtpd listener for this configuration. */
  smtpdPort: number;
  /** smtpd_milters value ('' for none). */
  postfixMilter: string;
  /** Where the milter listens. */
  listen: SocketAddress | null;
}

export const SMTPD_PORT_OFFSET = 10;
export const MILTER_TCP_PORT_BASE = 10730;

export function configurations(
  kinds: MilterKind[],
  transports: Transport[],
  l: BenchLayout,
  basePort: number,
): BenchConfig[] {
  const out: BenchConfig[] = [];
  let i = 0;
  for (const kind of kinds) {
    for (const transport of kind === 'none' ? [null] : transports) {
      const index = i++;
      const smtpdPort = basePort + SMTPD_PORT_OFFSET + index;
      if (transport === null) {
        out.push({ id: 'none', kind, transport, smtpdPort, postfixMilter: '', listen: null });
        continue;
      }
      const id = `${kind}/${transport}`;
      if (transport === 'unix') {
        const path = join(l.socketDir, `${kind}.sock`);
        out.push({ id, kind, transport, smtpdPort, postfixMilter: `unix:${path}`, listen: { kind: 'unix', path } });
      } else {
        const port = MILTER_TCP_PORT_BASE + index;
        out.push({
          id,
          kind,
          transport,
          smtpdPort,
          postfixMilter: `inet:127.0.0.1:${port}`,
          listen: { kind: 'inet', host: '127.0.0.1', port },
        });
      }
    }
  }
  return out;
}

/** libmilter's socket syntax (unix:/path, inet:PORT@HOST). */
export function libmilterSpec(a: SocketAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `inet:${a.port}@${a.host}`;
}

/** relayguard's and Postfix's syntax (unix:/path, inet:HOST:PORT). */
export function postfixSpec(a: SocketAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `inet:${a.host}:${a.port}`;
}

export interface RunningMilter {
  config: BenchConfig;
  daemons: Daemon[];
  /** The processes whose CPU and memory belong to this milter (recomputed: workers come and go). */
  pids(): number[];
  /** CPU of the milter's processes including reaped children (ms). */
  cpuMs(): number;
  /** Sum of VmHWM of its processes (KiB). */
  hwmKiB(): number;
}

export interface StartContext {
  layout: BenchLayout;
  cMilterBinary: string;
  relayguardMain: string;
  policies: Partial<Record<PolicyVariant, string>>;
  /** Shared MIMEDefang multiplexor (started once for both transports). */
  mimedefang?: { multiplexorSocket: string; spool: string; multiplexor: Daemon };
}

function childCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[13]) + Number(f[14])) * 1000) / 100; // cutime + cstime
  } catch {
    return 0;
  }
}

function runningMilter(config: BenchConfig, daemons: Daemon[], withChildren = false): RunningMilter {
  const pids = () => {
    const own = daemons.map((d) => d.pid).filter(alive);
    return withChildren ? [...own, ...own.flatMap(childrenOf)] : own;
  };
  return {
    config,
    daemons,
    pids,
    cpuMs: () =>
      pids().reduce((a, p) => {
        try {
          return a + procUsage(p).cpuMs + (withChildren ? childCpuMs(p) : 0);
        } catch {
          return a;
        }
      }, 0),
    hwmKiB: () =>
      pids().reduce((a, p) => {
        try {
          return a + procUsage(p).hwmKiB;
        } catch {
          return a;
        }
      }, 0),
  };
}

async function ready(a: SocketAddress, what: string, d: Daemon): Promise<void> {
  await waitFor(
    async () => {
      if (!alive(d.pid)) throw new Error(`${what} exited before listening; see ${d.logFile}`);
      return (await accepts(a)) ? true : undefined;
    },
    30_000,
    `${what} to listen on ${postfixSpec(a)}`,
  );
  // smtpd runs as user postfix: the socket must be writable for it.
  if (a.kind === 'unix') chmodSync(a.path, 0o666);
}

export async function startMilter(c: BenchConfig, ctx: StartContext): Promise<RunningMilter | null> {
  if (!c.listen) return null;
  const log = (name: string) => join(ctx.layout.logDir, `${name.replace('/', '-')}.log`);
  switch (c.kind) {
    case 'c-null':
    case 'c-body': {
      const d = startDaemon(
        c.id,
        ctx.cMilterBinary,
        ['-p', libmilterSpec(c.listen), ...(c.kind === 'c-body' ? ['-b'] : [])],
        log(c.id),
      );
      await ready(c.listen, c.id, d);
      return runningMilter(c, [d]);
    }
    case 'rg-trace':
    case 'rg-policy':
    case 'rg-disclaimer':
    case 'rg-av':
    case 'rg-full':
    case 'rg-av-1conn':
    case 'rg-full-1conn':
    case 'rg-full-heap-large': {
      const policy = ctx.policies[RELAYGUARD_VARIANT[c.kind]!];
      if (!policy) throw new Error(`no policy for ${c.kind}`);
      const serve = serveCommand(
        ctx.relayguardMain,
        benchNodeArgs(),
        ['--config', policy, '--listen', postfixSpec(c.listen), '--metrics', 'off'],
        join(ctx.layout.dir, 'node-shim'),
      );
      const d = startDaemon(c.id, serve.cmd, serve.args, log(c.id), serve.env);
      await ready(c.listen, c.id, d);
      return runningMilter(c, [d]);
    }
    case 'mimedefang': {
      const md = ctx.mimedefang ?? (ctx.mimedefang = await startMultiplexor(ctx.layout));
      const d = startDaemon(
        c.id,
        'mimedefang',
        ['-D', '-U', 'defang', '-m', md.multiplexorSocket, '-p', libmilterSpec(c.listen), '-z', md.spool, '-X'],
        log(c.id),
      );
      await ready(c.listen, c.id, d);
      return runningMilter(c, [d, md.multiplexor], true);
    }
    case 'clamav-milter': {
      const dir = join(ctx.layout.dir, 'clamav-milter');
      mkdirSync(dir, { recursive: true });
      const conf = join(dir, `${c.transport}.conf`);
      writeFileSync(
        conf,
        [
          `MilterSocket ${libmilterSpec(c.listen)}`,
          'MilterSocketMode 666',
          'FixStaleSocket yes',
          'Foreground yes',
          `PidFile ${join(dir, `${c.transport}.pid`)}`,
          `ClamdSocket tcp:127.0.0.1:${ctx.layout.clamdPort}`,
          'OnClean Accept',
          'OnInfected Reject',
          'OnFail Defer',
          'AddHeader Replace',
          'MaxFileSize 100M',
          `TemporaryDirectory ${dir}`,
          `LogFile ${join(dir, `${c.transport}.log`)}`,
          'LogClean Off',
          'LogInfected Basic',
          'ReadTimeout 120',
          '',
        ].join('\n'),
      );
      const d = startDaemon(c.id, 'clamav-milter', ['-c', conf], log(c.id));
      await ready(c.listen, c.id, d);
      return runningMilter(c, [d]);
    }
    default:
      return null;
  }
}

/** MIMEDefang's filter: accept everything, append a text and an HTML boilerplate (Debian's embedded Perl). */
const MIMEDEFANG_FILTER = `# relayguard benchmark: what a disclaimer filter does in MIMEDefang.
$AddWarningsInline = 0;
sub filter_begin { }
sub filter { my($entity, $fname, $ext, $type) = @_; return action_accept(); }
sub filter_multipart { return action_accept(); }
sub filter_end {
    my($entity) = @_;
    append_text_boilerplate($entity, "This email is confidential and intended only for the named recipients.", 0);
    append_html_boilerplate($entity, "<p>This email is confidential and intended only for the named recipients.</p>", 0);
}
1;
`;

/** Enough workers for concurrency 20: MIMEDefang tempfails when every worker is busy. */
const MIMEDEFANG_MAX_WORKERS = 24;
const MIMEDEFANG_MIN_WORKERS = 4;

async function startMultiplexor(
  l: BenchLayout,
): Promise<{ multiplexorSocket: string; spool: string; multiplexor: Daemon }> {
  const spool = join(l.dir, 'mimedefang');
  mkdirSync(spool, { recursive: true });
  const { uid, gid } = defangIds();
  chownSync(spool, uid, gid);
  chmodSync(spool, 0o755);
  const filter = join(spool, 'bench-filter.pl');
  writeFileSync(filter, MIMEDEFANG_FILTER);
  const sock = join(spool, 'mimedefang-multiplexor.sock');
  const d = startDaemon(
    'mimedefang-multiplexor',
    'mimedefang-multiplexor',
    [
      '-D',
      '-E',
      '-U',
      'defang',
      '-F',
      filter,
      '-s',
      sock,
      '-z',
      spool,
      '-m',
      String(MIMEDEFANG_MIN_WORKERS),
      '-x',
      String(MIMEDEFANG_MAX_WORKERS),
      '-b',
      '600',
      '-l',
    ],
    join(l.logDir, 'mimedefang-multiplexor.log'),
  );
  await waitFor(() => (existsSync(sock) ? true : undefined), 30_000, 'the MIMEDefang multiplexor socket');
  return { multiplexorSocket: sock, spool, multiplexor: d };
}

function defangIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((x) => x.startsWith('defang:'));
  if (!line) throw new Error('user defang missing: apt-get install mimedefang');
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** True when the Debian packages of the comparison milters are installed. */
export function comparisonAvailable(kind: MilterKind): boolean {
  if (kind === 'mimedefang') return existsSync('/usr/bin/mimedefang') && existsSync('/usr/bin/mimedefang-multiplexor');
  if (kind === 'clamav-milter') return existsSync('/usr/sbin/clamav-milter');
  return true;
}
