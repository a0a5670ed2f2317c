// The benchmark's own throwaway Postfix instance (never /etc/postfix): one smtpd listener per
// configuration, each with its own smtpd_milters, all relaying to one smtp-sink. Also the
// benchmark's clamd (shared by relayguard and clamav-milter, so both scan with the same daemon).
import { chownSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { join } from 'node:path';
import { alive, runCommand, startDaemon, waitFor, type Daemon } from './proc.js';
import { eicarTestFile } from '../../src/audit/messages.js';

export interface BenchLayout {
  dir: string;
  pfDir: string;
  pfConf: string;
  maillog: string;
  sinkPort: number;
  sinkDumpDir: string;
  clamdDir: string;
  clamdPort: number;
  clamdSocket: string;
  socketDir: string;
  logDir: string;
}

export function benchLayout(dir: string, basePort: number): BenchLayout {
  const pfDir = join(dir, 'pf');
  return {
    dir,
    pfDir,
    pfConf: join(pfDir, 'etc'),
    maillog: join(pfDir, 'log', 'maillog'),
    sinkPort: basePort + 1,
    sinkDumpDir: join(dir, 'sink'),
    clamdDir: join(dir, 'clamd'),
    clamdPort: basePort + 2,
    clamdSocket: join(dir, 'clamd', 'clamd.sock'),
    socketDir: join(dir, 'sock'),
    logDir: join(dir, 'log'),
  };
}

export interface Listener {
  port: number;
  /** smtpd_milters for this listener ('' = no milter). */
  milters: string;
  /** Name shown in master.cf comments. */
  name: string;
}

const MILTER_SETTINGS = [
  'milter_protocol = 6',
  'milter_default_action = tempfail',
  // Postfix's defaults (30 s connect/command, 300 s content) stay: a stall shows as a slow run.
];

function mainCf(l: BenchLayout): string {
  return [
    '# relayguard benchmark Postfix instance (written by bench/lib/bench-postfix.ts)',
    'compatibility_level = 3.6',
    `queue_directory = ${l.pfDir}/spool`,
    `data_directory = ${l.pfDir}/data`,
    `maillog_file = ${l.maillog}`,
    `maillog_file_prefixes = ${l.pfDir}`,
    'syslog_name = postfix-rgbench',
    'myhostname = mx.bench.test',
    'mydomain = bench.test',
    'mydestination =',
    'local_recipient_maps =',
    'alias_maps =',
    'alias_database =',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.0/8',
    'relay_domains = example.test',
    `relayhost = [127.0.0.1]:${l.sinkPort}`,
    'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
    'smtp_tls_security_level = none',
    'smtpd_tls_security_level = none',
    // Room for the 50 MB message and for concurrency 20 on every listener.
    'message_size_limit = 104857600',
    'default_process_limit = 200',
    'in_flow_delay = 0',
    'smtpd_error_sleep_time = 0',
    'smtpd_client_connection_count_limit = 0',
    'smtp_destination_concurrency_limit = 20',
    'biff = no',
    ...MILTER_SETTINGS,
    '',
  ].join('\n');
}

function masterCf(listeners: Listener[]): string {
  const services = [
    'pickup     unix  n - n 60    1 pickup',
    'cleanup    unix  n - n -     0 cleanup',
    'qmgr       unix  n - n 300   1 qmgr',
    'rewrite    unix  - - n -     - trivial-rewrite',
    'bounce     unix  - - n -     0 bounce',
    'defer      unix  - - n -     0 bounce',
    'trace      unix  - - n -     0 bounce',
    'verify     unix  - - n -     1 verify',
    'flush      unix  n - n 1000? 0 flush',
    'proxymap   unix  - - n -     - proxymap',
    'proxywrite unix  - - n -     1 proxymap',
    'smtp       unix  - - n -     - smtp',
    'relay      unix  - - n -     - smtp',
    'showq      unix  n - n -     - showq',
    'error      unix  - - n -     - error',
    'retry      unix  - - n -     - error',
    'discard    unix  - - n -     - discard',
    'anvil      unix  - - n -     1 anvil',
    'scache     unix  - - n -     1 scache',
    'postlog    unix-dgram n - n - 1 postlogd',
  ];
  const smtpd = listeners.flatMap((x) => [
    `# ${x.name}`,
    `127.0.0.1:${x.port} inet n - n - - smtpd -o smtpd_milters=${x.milters}`,
  ]);
  return [...smtpd, ...services, ''].join('\n');
}

function masterPid(l: BenchLayout): number | null {
  try {
    const pid = Number(readFileSync(join(l.pfDir, 'spool', 'pid', 'master.pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** Postfix programs stall while main.cf looks freshly written: make the complete files look old. */
function backdate(...paths: string[]): void {
  const past = new Date(Date.now() - 10_000);
  for (const p of paths) utimesSync(p, past, past);
}

export async function postfixUp(l: BenchLayout, listeners: Listener[]): Promise<void> {
  await postfixDown(l);
  for (const d of [
    l.pfConf,
    join(l.pfDir, 'spool'),
    join(l.pfDir, 'data'),
    join(l.pfDir, 'log'),
    l.logDir,
    l.socketDir,
  ])
    mkdirSync(d, { recursive: true });
  const ids = await postfixIds();
  chownSync(join(l.pfDir, 'data'), ids.uid, ids.gid);
  writeFileSync(join(l.pfConf, 'main.cf'), mainCf(l));
  writeFileSync(join(l.pfConf, 'master.cf'), masterCf(listeners));
  backdate(join(l.pfConf, 'main.cf'), join(l.pfConf, 'master.cf'));
  await runCommand('postfix', ['-c', l.pfConf, 'start'], { timeoutMs: 60_000 });
  for (const x of listeners)
    await waitFor(async () => ((await greets(x.port)) ? true : undefined), 20_000, `Postfix 220 on ${x.port}`);
}

export async function postfixDown(l: BenchLayout): Promise<void> {
  const pid = masterPid(l);
  if (pid === null) return;
  await runCommand('postfix', ['-c', l.pfConf, 'stop'], { timeoutMs: 30_000, allowFail: true });
  await waitFor(() => (alive(pid) ? undefined : true), 20_000, 'the Postfix master to exit');
}

async function postfixIds(): Promise<{ uid: number; gid: number }> {
  const { output } = await runCommand('id', ['postfix']);
  const uid = Number(/uid=(\d+)/.exec(output)?.[1]);
  const gid = Number(/gid=(\d+)/.exec(output)?.[1]);
  return { uid, gid };
}

/** Messages not yet delivered (incoming, active, deferred, maildrop, hold). */
export function queuedMessages(l: BenchLayout): number {
  let n = 0;
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(d, name);
      try {
        if (statSync(p).isDirectory()) walk(p);
        else n++;
      } catch {
        /* delivered meanwhile */
      }
    }
  };
  for (const q of ['maildrop', 'incoming', 'active', 'deferred', 'hold']) walk(join(l.pfDir, 'spool', q));
  return n;
}

export function greets(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    const done = (ok: boolean) => (s.destroy(), resolve(ok));
    s.setTimeout(2000, () => done(false));
    s.once('data', (d: Buffer) => done(d.toString('latin1').startsWith('220')));
    s.once('error', () => done(false));
  });
}

/** smtp-sink: discards by default; with `dump` one file per message in sinkDumpDir. */
export async function sinkUp(l: BenchLayout, dump: boolean): Promise<Daemon> {
  const args = ['-u', 'nobody'];
  if (dump) {
    rmSync(l.sinkDumpDir, { recursive: true, force: true });
    mkdirSync(l.sinkDumpDir, { recursive: true });
    chownSync(l.sinkDumpDir, 65534, 65534);
    args.push('-d', `${l.sinkDumpDir}/%Y%m%d%H%M%S.`);
  }
  // Backlog 256: Postfix opens up to 20 connections per destination at once.
  const d = startDaemon(
    'smtp-sink',
    'smtp-sink',
    [...args, `127.0.0.1:${l.sinkPort}`, '256'],
    join(l.logDir, 'smtp-sink.log'),
  );
  await waitFor(async () => ((await greets(l.sinkPort)) ? true : undefined), 10_000, 'smtp-sink');
  return d;
}

// ---------------------------------------------------------------- clamd

/** The EICAR anti-virus test string (the audit's, assembled at run time: no file holds it whole). */
export function eicar(): string {
  return eicarTestFile().toString('latin1');
}

/** clamd threads: enough for concurrency 20 so the scanner never queues in the benchmark. */
const CLAMD_THREADS = 24;
/** Above the 50 MB message of the memory test. */
const CLAMD_STREAM_MAX = '80M';

export async function clamdUp(l: BenchLayout): Promise<Daemon> {
  const db = join(l.clamdDir, 'db');
  mkdirSync(db, { recursive: true });
  mkdirSync(join(l.clamdDir, 'tmp'), { recursive: true });
  const marker = Buffer.from(['EICAR-STANDARD-', 'ANTIVIRUS-TEST-FILE'].join('')).toString('hex');
  writeFileSync(join(db, 'bench.hdb'), `${createHash('md5').update(eicar()).digest('hex')}:68:Bench.EICAR-HDB\n`);
  writeFileSync(join(db, 'bench.ndb'), `Bench.EICAR-NDB:0:*:${marker}\n`);
  const conf = join(l.clamdDir, 'clamd.conf');
  writeFileSync(
    conf,
    [
      `DatabaseDirectory ${db}`,
      `LocalSocket ${l.clamdSocket}`,
      'LocalSocketMode 666',
      'FixStaleSocket yes',
      `TCPSocket ${l.clamdPort}`,
      'TCPAddr 127.0.0.1',
      `PidFile ${join(l.clamdDir, 'clamd.pid')}`,
      `LogFile ${join(l.clamdDir, 'clamd.log')}`,
      'Foreground yes',
      `TemporaryDirectory ${join(l.clamdDir, 'tmp')}`,
      'ScanMail yes',
      'ScanArchive yes',
      'Bytecode no',
      'SelfCheck 0',
      `MaxThreads ${CLAMD_THREADS}`,
      'MaxConnectionQueueLength 200',
      `StreamMaxLength ${CLAMD_STREAM_MAX}`,
      'MaxScanSize 200M',
      'MaxFileSize 100M',
      'ReadTimeout 60',
      'CommandReadTimeout 30',
      'IdleTimeout 60',
      '',
    ].join('\n'),
  );
  const d = startDaemon('clamd', 'clamd', ['-c', conf], join(l.logDir, 'clamd.out'));
  await waitFor(async () => ((await clamdPing(l.clamdPort)) ? true : undefined), 60_000, 'clamd PONG');
  return d;
}

export function clamdPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = (ok: boolean) => (s.destroy(), resolve(ok));
    s.setTimeout(2000, () => done(false));
    s.once('connect', () => s.write('zPING\0'));
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('PONG')) done(true);
    });
    s.once('error', () => done(false));
    s.once('close', () => done(got.includes('PONG')));
  });
}
