// relayguard's throughput benchmark. See bench/README.md; run it with bench/run.sh.
//
// Postfix's smtp-source sends through a throwaway Postfix instance to smtp-sink, one message per
// SMTP session, at a fixed concurrency. Every configuration (no milter, the C reference milters,
// relayguard with several policies, MIMEDefang, clamav-milter; over a unix socket and over TCP)
// has its own smtpd listener, all milters run for the whole benchmark, and the runs of one round
// are shuffled so a noisy machine does not favour one configuration.
import { chmodSync, mkdirSync, readdirSync, rmSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  benchLayout,
  clamdUp,
  postfixDown,
  postfixUp,
  queuedMessages,
  sinkUp,
  type BenchLayout,
} from './lib/bench-postfix.js';
import { cpuShares, cpuTimes, machineInfo, type MachineInfo } from './lib/machine.js';
import { BENCH_RECIPIENT, BENCH_SENDER, MESSAGE_KINDS, writeMessages, type MessageKind } from './lib/messages.js';
import {
  comparisonAvailable,
  configurations,
  KIND_LABEL,
  startMilter,
  type BenchConfig,
  type MilterKind,
  type RunningMilter,
  type StartContext,
  TRANSPORTS,
  type Transport,
} from './lib/milters.js';
import { listOf, readOptions, whole } from './lib/options.js';
import { enabledRules, writePolicy, type PolicyVariant } from './lib/policies.js';
import { killDaemonsOnExit, runCommand, waitFor, type Daemon } from './lib/proc.js';
import { relayguardMain } from './lib/relayguard-proc.js';
import { fmt, max, median, min, shuffled } from './lib/stats.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const ALL_KINDS: MilterKind[] = [
  'none',
  'c-null',
  'c-body',
  'rg-trace',
  'rg-policy',
  'rg-disclaimer',
  'rg-av',
  'rg-full',
  'mimedefang',
  'clamav-milter',
];
/** Configurations for A/B comparisons of one lever, run only when named in --kinds. */
const EXTRA_KINDS: MilterKind[] = ['rg-av-1conn', 'rg-full-1conn', 'rg-full-heap-large'];
/** A run whose queue has not drained by then is reported as failed. */
const DRAIN_TIMEOUT_MS = 600_000;
/** smtp-source gets this long per message at worst (a stall fails the run instead of hanging it). */
const SOURCE_TIMEOUT_PER_MESSAGE_MS = 500;
const MAILLOG_CATCH_UP_MS = 10_000;

interface Options {
  messages: number;
  repeats: number;
  concurrency: number;
  warmup: number;
  kinds: MilterKind[];
  transports: Transport[];
  sizes: MessageKind[];
  dir: string;
  basePort: number;
  out: string;
  verify: boolean;
  seed: number;
}

function parseOptions(argv: string[]): Options {
  return readOptions(
    'bench',
    {
      args: argv,
      options: {
        messages: { type: 'string', default: '2000' },
        repeats: { type: 'string', default: '3' },
        concurrency: { type: 'string', default: '20' },
        warmup: { type: 'string', default: '200' },
        kinds: { type: 'string', default: ALL_KINDS.join(',') },
        transports: { type: 'string', default: 'unix,tcp' },
        sizes: { type: 'string', default: MESSAGE_KINDS.join(',') },
        dir: { type: 'string', default: '/tmp/rg-bench' },
        'base-port': { type: 'string', default: '3230' },
        out: { type: 'string', default: '' },
        'no-verify': { type: 'boolean', default: false },
        seed: { type: 'string', default: '20261128' },
      },
    },
    ({ values: v }) => {
      const kinds = listOf(v.kinds, 'kinds', [...ALL_KINDS, ...EXTRA_KINDS]);
      return {
        messages: whole(v.messages, 'messages'),
        repeats: whole(v.repeats, 'repeats'),
        concurrency: whole(v.concurrency, 'concurrency'),
        warmup: whole(v.warmup, 'warmup', 0),
        // The ceiling is always measured.
        kinds: kinds.includes('none') ? kinds : ['none', ...kinds],
        transports: listOf(v.transports, 'transports', TRANSPORTS),
        sizes: listOf(v.sizes, 'sizes', MESSAGE_KINDS),
        dir: v.dir,
        basePort: whole(v['base-port'], 'base-port'),
        out: v.out || join(v.dir, 'results'),
        verify: !v['no-verify'],
        seed: whole(v.seed, 'seed', 0),
      };
    },
  );
}

interface RunSample {
  config: string;
  size: MessageKind;
  round: number;
  /** Messages per second, smtp-source start to its exit (every message accepted by Postfix). */
  acceptRate: number;
  /** Messages per second until the queue was empty again (delivered to smtp-sink). */
  deliveredRate: number;
  /** The milter's CPU per message (its own /proc accounting). */
  cpuMsPerMessage: number;
  /** The machine's idle and stolen CPU share while smtp-source was sending (percent). */
  idlePct: number;
  stealPct: number;
  ok: boolean;
  error?: string;
}

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---------------------------------------------------------------- one run

function maillogSize(l: BenchLayout): number {
  try {
    return statSync(l.maillog).size;
  } catch {
    return 0;
  }
}

function maillogSince(l: BenchLayout, offset: number): string {
  try {
    return readFileSync(l.maillog).subarray(offset).toString('latin1');
  } catch {
    return '';
  }
}

async function sendBatch(
  port: number,
  file: string,
  messages: number,
  concurrency: number,
): Promise<{ ok: boolean; output: string; ms: number }> {
  const t0 = performance.now();
  const r = await runCommand(
    'smtp-source',
    [
      '-s',
      String(concurrency),
      '-m',
      String(messages),
      '-f',
      BENCH_SENDER,
      '-t',
      BENCH_RECIPIENT,
      '-F',
      file,
      `127.0.0.1:${port}`,
    ],
    {
      allowFail: true,
      timeoutMs: 60_000 + messages * SOURCE_TIMEOUT_PER_MESSAGE_MS,
    },
  );
  return { ok: r.code === 0, output: r.output.trim(), ms: performance.now() - t0 };
}

async function drain(l: BenchLayout): Promise<void> {
  await waitFor(() => (queuedMessages(l) === 0 ? true : undefined), DRAIN_TIMEOUT_MS, 'the queue to drain');
}

async function measure(
  l: BenchLayout,
  c: BenchConfig,
  milter: RunningMilter | null,
  file: string,
  size: MessageKind,
  round: number,
  o: Options,
): Promise<RunSample> {
  await drain(l);
  const logOffset = maillogSize(l);
  const cpuBefore = milter?.cpuMs() ?? 0;
  const machineBefore = cpuTimes();
  const t0 = performance.now();
  const sent = await sendBatch(c.smtpdPort, file, o.messages, o.concurrency);
  const accepted = performance.now();
  const shares = cpuShares(machineBefore, cpuTimes());
  let error = sent.ok ? undefined : `smtp-source: ${sent.output.split('\n').slice(-3).join(' | ')}`;
  try {
    await drain(l);
  } catch (err) {
    error ??= (err as Error).message;
  }
  const delivered = performance.now();
  const cpuAfter = milter?.cpuMs() ?? 0;
  // postlogd writes the log a moment after the delivery: give it time to catch up.
  let logText: string;
  let sentLines = 0;
  const logDeadline = Date.now() + MAILLOG_CATCH_UP_MS;
  do {
    if (sentLines) await sleep(100);
    logText = maillogSince(l, logOffset);
    sentLines = (logText.match(/ status=sent /g) ?? []).length;
  } while (sentLines < o.messages && Date.now() < logDeadline);
  const refused = (logText.match(/milter-reject|milter-discard|milter-hold/g) ?? []).length;
  if (!error && (sentLines !== o.messages || refused > 0))
    error = `maillog: ${sentLines} delivered of ${o.messages}, ${refused} refused/held by a milter`;
  return {
    config: c.id,
    size,
    round,
    acceptRate: (o.messages * 1000) / (accepted - t0),
    deliveredRate: (o.messages * 1000) / (delivered - t0),
    cpuMsPerMessage: (cpuAfter - cpuBefore) / o.messages,
    ...shares,
    ok: error === undefined,
    ...(error ? { error } : {}),
  };
}

// ---------------------------------------------------------------- verification

/** What each configuration must have done to a delivered message. */
const EXPECTED: Record<MilterKind, RegExp[]> = {
  none: [],
  'c-null': [/^X-Bench-Milter: null$/m],
  'c-body': [/^X-Bench-Milter: body$/m, /appended by the benchmark's C milter/],
  'rg-trace': [/^X-Relayguard: /m],
  'rg-policy': [/^X-Relayguard: /m],
  'rg-disclaimer': [/^X-Relayguard: /m, /This email is confidential/],
  'rg-av': [/^X-Relayguard: /m, /^X-Virus-Scanned: /m],
  'rg-full': [/^X-Relayguard: /m, /This email is confidential/, /^X-Virus-Scanned: /m],
  'rg-av-1conn': [/^X-Relayguard: /m, /^X-Virus-Scanned: /m],
  'rg-full-1conn': [/^X-Relayguard: /m, /This email is confidential/, /^X-Virus-Scanned: /m],
  'rg-full-heap-large': [/^X-Relayguard: /m, /This email is confidential/, /^X-Virus-Scanned: /m],
  mimedefang: [/This email is confidential/],
  'clamav-milter': [/^X-Virus-Scanned: /m],
};

async function verify(
  l: BenchLayout,
  configs: BenchConfig[],
  files: Record<MessageKind, string>,
  sizes: MessageKind[],
): Promise<string[]> {
  const problems: string[] = [];
  const sink = await sinkUp(l, true);
  try {
    for (const c of configs) {
      for (const size of sizes) {
        const before = new Set(readdir(l.sinkDumpDir));
        const r = await sendBatch(c.smtpdPort, files[size], 1, 1);
        await drain(l);
        const fresh = readdir(l.sinkDumpDir).filter((f) => !before.has(f));
        if (!r.ok || fresh.length !== 1) {
          problems.push(`${c.id} ${size}: not delivered (${r.output.split('\n').slice(-2).join(' | ')})`);
          continue;
        }
        const text = readFileSync(join(l.sinkDumpDir, fresh[0]!), 'latin1');
        for (const re of EXPECTED[c.kind])
          if (!re.test(text)) problems.push(`${c.id} ${size}: delivered message lacks ${re}`);
      }
    }
  } finally {
    await sink.stop();
  }
  return problems;
}

function readdir(d: string): string[] {
  try {
    return readdirSync(d).sort();
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- report

interface Row {
  config: BenchConfig;
  size: MessageKind;
  samples: RunSample[];
  rate: { median: number; min: number; max: number };
  delivered: number;
  cpuMs: number;
  idlePct: number;
  stealPct: number;
}

function summarise(configs: BenchConfig[], samples: RunSample[], sizes: MessageKind[]): Row[] {
  const rows: Row[] = [];
  for (const size of sizes) {
    for (const c of configs) {
      const s = samples.filter((x) => x.config === c.id && x.size === size && x.ok);
      const rates = s.map((x) => x.acceptRate);
      rows.push({
        config: c,
        size,
        samples: samples.filter((x) => x.config === c.id && x.size === size),
        rate: { median: median(rates), min: min(rates), max: max(rates) },
        delivered: median(s.map((x) => x.deliveredRate)),
        cpuMs: median(s.map((x) => x.cpuMsPerMessage)),
        idlePct: median(s.map((x) => x.idlePct)),
        stealPct: median(s.map((x) => x.stealPct)),
      });
    }
  }
  return rows;
}

function rowOf(rows: Row[], size: MessageKind, id: string): Row | undefined {
  return rows.find((r) => r.size === size && r.config.id === id);
}

interface TargetCheck {
  target: string;
  size: MessageKind;
  transport: string;
  ratio: number;
  goal: number;
  met: boolean;
}

function checkTargets(rows: Row[], sizes: MessageKind[], transports: Transport[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  const add = (target: string, size: MessageKind, transport: string, a: string, b: string, goal: number) => {
    const ra = rowOf(rows, size, a)?.rate.median;
    const rb = rowOf(rows, size, b)?.rate.median;
    if (ra === undefined || rb === undefined || !Number.isFinite(ra) || !Number.isFinite(rb)) return;
    const ratio = ra / rb;
    out.push({ target, size, transport, ratio, goal, met: ratio >= goal });
  };
  for (const size of sizes) {
    for (const t of transports) {
      add('relayguard trace-only / C null milter', size, t, `rg-trace/${t}`, `c-null/${t}`, 0.95);
      add('relayguard reference without clamd / C body milter', size, t, `rg-disclaimer/${t}`, `c-body/${t}`, 0.8);
      add('relayguard reference without clamd / MIMEDefang', size, t, `rg-disclaimer/${t}`, `mimedefang/${t}`, 2);
      add('relayguard with clamd / clamav-milter', size, t, `rg-full/${t}`, `clamav-milter/${t}`, 0.9);
      add('(diagnostic) relayguard clamd-only / clamav-milter', size, t, `rg-av/${t}`, `clamav-milter/${t}`, 0.9);
      add('(lever) clamd sessions: rg-full / rg-full-1conn', size, t, `rg-full/${t}`, `rg-full-1conn/${t}`, 1);
      add('(lever) clamd sessions: rg-av / rg-av-1conn', size, t, `rg-av/${t}`, `rg-av-1conn/${t}`, 1);
      add(
        '(lever) heap small / large: rg-full / rg-full-heap-large',
        size,
        t,
        `rg-full/${t}`,
        `rg-full-heap-large/${t}`,
        1,
      );
      // Can any milter reach 2x MIMEDefang here? The C body milter only copies bytes.
      add('(diagnostic) C body milter / MIMEDefang', size, t, `c-body/${t}`, `mimedefang/${t}`, 2);
    }
    add(
      '(diagnostic) C null milter over TCP / over unix socket',
      size,
      'tcp vs unix',
      'c-null/tcp',
      'c-null/unix',
      0.9,
    );
    for (const k of ['rg-trace', 'rg-policy', 'rg-disclaimer', 'rg-av', 'rg-full'])
      add(`${k} over TCP / over unix socket`, size, 'tcp vs unix', `${k}/tcp`, `${k}/unix`, 0.9);
  }
  return out;
}

function markdown(
  rows: Row[],
  checks: TargetCheck[],
  hwm: Map<string, number>,
  info: { before: MachineInfo; after: MachineInfo },
  o: Options,
  policies: Record<string, string[]>,
  problems: string[],
): string {
  const lines: string[] = [];
  const m = info.before;
  lines.push(
    `Measured ${m.date} on ${m.cpu} (${m.cores} cores, ${m.memoryGiB} GiB), ${m.kernel}, Node ${m.node}, Postfix ${m.postfix}.`,
  );
  lines.push(`Load average before: ${m.load.join(' ')}; after: ${info.after.load.join(' ')}.`);
  lines.push(
    `${o.messages} messages per run, concurrency ${o.concurrency}, one message per SMTP session, ${o.repeats} interleaved rounds (shuffled order, seed ${o.seed}), ${o.warmup} warm-up messages per configuration.`,
  );
  lines.push('');
  for (const size of o.sizes) {
    lines.push(
      `### ${size === 'text-5k' ? 'About 5 KB, text/plain' : 'About 100 KB, multipart/mixed with a base64 attachment'}`,
    );
    lines.push('');
    lines.push(
      '| configuration | transport | msg/s median (min–max) | × ceiling | × C null | × C body | delivered msg/s | milter CPU ms/msg | milter peak RSS MiB | machine idle % (steal %) |',
    );
    lines.push('|---|---|---|---|---|---|---|---|---|---|');
    const ceiling = rowOf(rows, size, 'none')?.rate.median ?? NaN;
    for (const r of rows.filter((x) => x.size === size)) {
      const t = r.config.transport ?? '';
      const cNull = t ? rowOf(rows, size, `c-null/${t}`)?.rate.median : undefined;
      const cBody = t ? rowOf(rows, size, `c-body/${t}`)?.rate.median : undefined;
      const failed = r.samples.filter((s) => !s.ok).length;
      const rate = `${fmt(r.rate.median)} (${fmt(r.rate.min)}–${fmt(r.rate.max)})${failed ? ` **${failed} failed run(s)**` : ''}`;
      const h = hwm.get(r.config.id);
      lines.push(
        `| ${KIND_LABEL[r.config.kind]} | ${t || '—'} | ${rate} | ${fmt(r.rate.median / ceiling, 2)} | ${cNull ? fmt(r.rate.median / cNull, 2) : '—'} | ${cBody ? fmt(r.rate.median / cBody, 2) : '—'} | ${fmt(r.delivered)} | ${r.config.kind === 'none' ? '—' : fmt(r.cpuMs, 2)} | ${h ? fmt(h / 1024, 0) : '—'} | ${fmt(r.idlePct, 1)} (${fmt(r.stealPct, 1)}) |`,
      );
    }
    lines.push('');
  }
  if (checks.length) {
    lines.push('### Targets');
    lines.push('');
    lines.push('| target | message | transport | ratio | goal | met |');
    lines.push('|---|---|---|---|---|---|');
    for (const c of checks)
      lines.push(
        `| ${c.target} | ${c.size} | ${c.transport} | ${fmt(c.ratio, 2)} | ≥ ${c.goal} | ${c.met ? 'yes' : '**no**'} |`,
      );
    lines.push('');
  }
  lines.push('Policies (rules enabled):');
  for (const [k, v] of Object.entries(policies)) lines.push(`- ${k}: ${v.join(', ')}`);
  const failures = rows.flatMap((r) =>
    r.samples.filter((s) => !s.ok).map((s) => `- ${s.config} ${s.size} round ${s.round}: ${s.error}`),
  );
  if (failures.length || problems.length) {
    lines.push('', 'Problems:', ...problems.map((p) => `- ${p}`), ...failures);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  killDaemonsOnExit();
  const layout = benchLayout(o.dir, o.basePort);
  rmSync(layout.logDir, { recursive: true, force: true });
  mkdirSync(layout.logDir, { recursive: true });
  mkdirSync(layout.socketDir, { recursive: true });
  // MIMEDefang's milter drops to user defang before it creates its socket.
  chmodSync(layout.socketDir, 0o1777);
  mkdirSync(o.out, { recursive: true });
  const kinds = o.kinds.filter((k) => {
    const ok = comparisonAvailable(k);
    if (!ok) log(`${k}: not installed (apt-get install ${k}); skipped`);
    return ok;
  });

  log(`stack for DNS and state (RG_E2E_SLOT=${process.env.RG_E2E_SLOT ?? '0'})`);
  await runCommand('bash', [join(repoRoot, 'test', 'e2e', 'stack.sh'), 'up'], { timeoutMs: 600_000 });
  const binDir = join(o.dir, 'bin');
  mkdirSync(binDir, { recursive: true });
  const cMilterBinary = (await runCommand('bash', [join(repoRoot, 'bench', 'cmilter', 'build.sh'), binDir])).output
    .trim()
    .split('\n')
    .pop()!;
  const files = writeMessages(o.dir);

  const policyDir = join(o.dir, 'policies');
  const stateDir = join(o.dir, 'state');
  mkdirSync(policyDir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  const paths = {
    referencePolicy: join(repoRoot, 'examples', 'postfix', 'relayguard.yaml'),
    outDir: policyDir,
    stateDir,
    postfixConfigDir: layout.pfConf,
    clamdAddress: `tcp:127.0.0.1:${layout.clamdPort}`,
  };
  const policies: Partial<Record<PolicyVariant, string>> = {};
  for (const v of [
    'trace',
    'policy',
    'disclaimer',
    'antivirus',
    'full',
    'full-1conn',
    'full-heap-large',
    'antivirus-1conn',
  ] as const)
    policies[v] = writePolicy(v, paths);
  const policyRules = Object.fromEntries(Object.entries(policies).map(([k, p]) => [k, enabledRules(p)]));

  const daemons: Daemon[] = [];
  const milters = new Map<string, RunningMilter>();
  const configs = configurations(kinds, o.transports, layout, o.basePort);
  try {
    log('clamd');
    daemons.push(await clamdUp(layout));
    const ctx: StartContext = { layout, cMilterBinary, relayguardMain, policies };
    for (const c of configs) {
      const m = await startMilter(c, ctx);
      if (m) milters.set(c.id, m);
      log(`${c.id}: ${m ? `pid ${m.pids().join(',')}` : 'no milter'} -> smtpd 127.0.0.1:${c.smtpdPort}`);
    }
    if (ctx.mimedefang) daemons.push(ctx.mimedefang.multiplexor);
    await postfixUp(
      layout,
      configs.map((c) => ({ port: c.smtpdPort, milters: c.postfixMilter, name: c.id })),
    );

    const problems: string[] = [];
    if (o.verify) {
      log('verify: one message of each size through every configuration');
      problems.push(...(await verify(layout, configs, files, o.sizes)));
      for (const p of problems) log(`VERIFY FAILED: ${p}`);
    }
    daemons.push(await sinkUp(layout, false));

    if (o.warmup > 0) {
      log(`warm-up: ${o.warmup} messages per configuration and size`);
      for (const c of configs)
        for (const size of o.sizes) await sendBatch(c.smtpdPort, files[size], o.warmup, o.concurrency);
      await drain(layout);
    }

    const before = await machineInfo();
    const samples: RunSample[] = [];
    for (let round = 1; round <= o.repeats; round++) {
      for (const size of shuffled(o.sizes, o.seed + round)) {
        for (const c of shuffled(configs, o.seed * 31 + round * 7 + size.length)) {
          const s = await measure(layout, c, milters.get(c.id) ?? null, files[size], size, round, o);
          samples.push(s);
          log(
            `round ${round} ${size} ${c.id}: ${fmt(s.acceptRate)} msg/s accepted, ${fmt(s.deliveredRate)} delivered, ${fmt(s.cpuMsPerMessage, 2)} CPU ms/msg, machine idle ${fmt(s.idlePct, 1)}% steal ${fmt(s.stealPct, 1)}%${s.ok ? '' : ` FAILED ${s.error}`}`,
          );
        }
      }
    }
    const after = await machineInfo();
    const hwm = new Map([...milters].map(([id, m]) => [id, m.hwmKiB()]));
    const rows = summarise(configs, samples, o.sizes);
    const checks = checkTargets(rows, o.sizes, o.transports);
    const md = markdown(rows, checks, hwm, { before, after }, o, policyRules, problems);
    const stamp = before.date.replace(/[:.]/g, '-');
    writeFileSync(
      join(o.out, `bench-${stamp}.json`),
      JSON.stringify(
        {
          options: o,
          machine: { before, after },
          samples,
          checks,
          hwmKiB: Object.fromEntries(hwm),
          policies: policyRules,
          problems,
        },
        null,
        2,
      ),
    );
    writeFileSync(join(o.out, `bench-${stamp}.md`), md);
    process.stdout.write(md);
    log(`results: ${join(o.out, `bench-${stamp}.md`)} and .json`);
  } finally {
    await postfixDown(layout).catch((err: Error) => log(`postfix stop: ${err.message}`));
    for (const m of milters.values()) for (const d of m.daemons) await d.stop();
    for (const d of daemons) await d.stop();
    await sleep(10);
  }
}

main().catch((err: Error) => {
  log(`FAILED: ${err.stack ?? err.message}`);
  process.exit(1);
});
