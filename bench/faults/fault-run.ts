// Fault runs: messages go through the real stack (Postfix -> relayguard -> smtp-sink, with
// clamd and rbldnsd) while one part fails and comes back. Every message is accounted for:
//
//   lost = sent - delivered - refused (5xx) - tempfailed (4xx) - held
//
// must be 0, and no message carrying EICAR may reach the sink (in particular while clamd is
// down), and every delivered message must carry relayguard's scan header.
//
// The messages of a run are sent in three phases: before the fault, during it (the fault starts
// while these sessions are in flight), and after recovery.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  eicar,
  ensureStack,
  freshStateDir,
  holdQueue,
  message,
  pollUntil,
  queueEntries,
  run,
  sinkFiles,
  smtp,
  stack,
  startClamd,
  startRelayguard,
  type Attachment,
  type RelayguardProcess,
  type SmtpResult,
} from '../../test/e2e/harness.js';

export type FaultKind = 'clamd-kill' | 'dns-stop' | 'relayguard-kill' | 'relayguard-term' | 'reload-bad-good';
export const FAULT_KINDS: readonly FaultKind[] = [
  'clamd-kill',
  'dns-stop',
  'relayguard-kill',
  'relayguard-term',
  'reload-bad-good',
];

export const FAULT_DESCRIPTION: Record<FaultKind, string> = {
  'clamd-kill': 'clamd SIGKILLed, restarted after the outage',
  'dns-stop': 'rbldnsd stops answering (SIGSTOP), then SIGCONT',
  'relayguard-kill': 'relayguard SIGKILLed mid-transaction, restarted',
  'relayguard-term': 'relayguard SIGTERM (drains), restarted',
  'reload-bad-good': 'SIGHUP with a broken policy file, then with the good one',
};

export interface FaultOptions {
  messages: number;
  concurrency: number;
  /** How long the fault lasts at least (ms). */
  outageMs: number;
  /** Into the "during" phase, when the fault starts (ms): sessions are then in flight. */
  faultDelayMs: number;
  /** Every n-th message carries EICAR. */
  eicarEvery: number;
  log?: (line: string) => void;
}

export const DEFAULT_FAULT_OPTIONS: FaultOptions = {
  messages: 300,
  concurrency: 10,
  outageMs: 5000,
  faultDelayMs: 150,
  eicarEvery: 5,
};

export interface FaultReport {
  kind: FaultKind;
  sent: number;
  delivered: number;
  refused: number;
  tempfailed: number;
  held: number;
  lost: number;
  /** Client-side failures without an SMTP answer (counted in lost). */
  errors: number;
  /** Messages that reached the sink more than once. */
  duplicates: number;
  /** Messages that reached the sink although the client was told 4xx/5xx. */
  deliveredDespiteRefusal: number;
  /** EICAR messages found in the sink (must be 0). */
  eicarDelivered: number;
  /** Sessions that had started but not finished when the fault struck. */
  inFlightAtFault: number;
  /** EICAR messages sent while clamd was down. */
  eicarDuringOutage: number;
  /** Delivered messages without relayguard's scan header (must be 0). */
  unscannedDelivered: number;
  problems: string[];
  ms: number;
}

type Direction = 'inbound' | 'outbound';
interface Planned {
  seq: string;
  direction: Direction;
  infected: boolean;
  clientIp: string;
  /** A message large enough to still be in the milter when the fault strikes. */
  large: boolean;
}

interface Outcome {
  planned: Planned;
  kind: 'accepted' | 'refused' | 'tempfailed' | 'error';
  queueId?: string;
  detail: string;
  startedAt: number;
  endedAt: number;
}

const SCAN_HEADER = /^X-Virus-Scanned: /im;
/** Under the reference policy's 2 MiB limit once base64-encoded. */
const LARGE_ATTACHMENT_BYTES = 1024 * 1024;
let largeCache: Buffer | null = null;
function largeAttachment(): Buffer {
  return (largeCache ??= randomBytes(LARGE_ATTACHMENT_BYTES));
}
const SEQ_HEADER = 'X-Fault-Seq';
const DRAIN_TIMEOUT_MS = 120_000;
/** Outside clients come from the benchmarking range 198.18.0.0/15 (not on any test list). */
function outsideIp(i: number): string {
  return `198.18.${(i >> 8) & 255}.${i & 255 || 1}`;
}

function plan(runId: string, n: number, eicarEvery: number): Planned[] {
  return Array.from({ length: n }, (_, i) => ({
    seq: `${runId}-${i}`,
    direction: i % 2 === 0 ? 'inbound' : 'outbound',
    infected: eicarEvery > 0 && i % eicarEvery === eicarEvery - 1,
    clientIp: outsideIp(i + 1),
    large: false,
  }));
}

function classify(r: SmtpResult): { kind: Outcome['kind']; detail: string } {
  if (r.ok) return { kind: 'accepted', detail: `250 ${r.queueId ?? ''}` };
  const bad = r.replies.find((x) => x.command !== 'QUIT' && x.code >= 400);
  if (bad)
    return {
      kind: bad.code >= 500 ? 'refused' : 'tempfailed',
      detail: `${bad.command || 'greeting'}: ${bad.full.split('\n')[0]}`,
    };
  return { kind: 'error', detail: r.error ?? 'no SMTP answer' };
}

async function sendOne(p: Planned): Promise<Outcome> {
  const startedAt = Date.now();
  const attachments: Attachment[] = p.infected
    ? [{ content: eicar(), filename: 'sample.com.txt', contentType: 'application/octet-stream' }]
    : [];
  if (p.large)
    attachments.push({ content: largeAttachment(), filename: 'large.bin', contentType: 'application/octet-stream' });
  const from = p.direction === 'inbound' ? 'sender@outside.test' : 'alice@example.test';
  const to = p.direction === 'inbound' ? 'user@example.test' : 'bob@elsewhere.test';
  const data = message({
    from,
    to,
    subject: `fault run ${p.seq}`,
    body: `Message ${p.seq}.\nNothing to see here.\n`,
    headers: { [SEQ_HEADER]: p.seq },
    attachments,
  });
  try {
    const r = await smtp({
      from,
      to: [to],
      data,
      ...(p.direction === 'inbound' ? { xclient: { addr: p.clientIp } } : {}),
      replyTimeoutMs: 120_000,
      timeoutMs: 300_000,
    });
    const c = classify(r);
    return { planned: p, ...c, ...(r.queueId ? { queueId: r.queueId } : {}), startedAt, endedAt: Date.now() };
  } catch (err) {
    return { planned: p, kind: 'error', detail: (err as Error).message, startedAt, endedAt: Date.now() };
  }
}

/** Sends with `concurrency` sessions at a time; with `spreadMs`, message i starts no earlier than i/n of it. */
async function sendAll(items: Planned[], concurrency: number, out: Outcome[], spreadMs = 0): Promise<void> {
  let next = 0;
  const t0 = Date.now();
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const wait = t0 + (spreadMs * i) / items.length - Date.now();
      if (wait > 0) await sleep(wait);
      out.push(await sendOne(items[i]!));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
}

// ---------------------------------------------------------------- faults

interface Fault {
  start(): Promise<void>;
  stop(): Promise<void>;
}

function pidFrom(file: string): number {
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no pid in ${file}`);
  return pid;
}

interface RelayguardHolder {
  rg: RelayguardProcess;
  stateDir: string;
}

function makeFault(kind: FaultKind, holder: RelayguardHolder, outage: { from: number; to: number }): Fault {
  switch (kind) {
    case 'clamd-kill':
      return {
        async start() {
          const pid = pidFrom(join(stack.clamdDir, 'clamd.pid'));
          outage.from = Date.now();
          process.kill(pid, 'SIGKILL');
        },
        async stop() {
          await startClamd();
          outage.to = Date.now();
        },
      };
    case 'dns-stop': {
      let pid = 0;
      return {
        async start() {
          pid = pidFrom(join(stack.rblDir, 'rbldnsd.pid'));
          outage.from = Date.now();
          process.kill(pid, 'SIGSTOP');
        },
        async stop() {
          process.kill(pid, 'SIGCONT');
          outage.to = Date.now();
        },
      };
    }
    case 'relayguard-kill':
    case 'relayguard-term':
      return {
        async start() {
          outage.from = Date.now();
          await holder.rg.stop(kind === 'relayguard-kill' ? 'SIGKILL' : 'SIGTERM', 60_000);
        },
        async stop() {
          holder.rg = await startRelayguard({ stateDir: holder.stateDir });
          outage.to = Date.now();
        },
      };
    case 'reload-bad-good': {
      let good = '';
      return {
        async start() {
          good = readFileSync(holder.rg.configPath, 'utf8');
          outage.from = Date.now();
          writeFileSync(holder.rg.configPath, `${good}\nrules:\n  no_such_rule: {mode: enforce\n`);
          holder.rg.signal('SIGHUP');
          await holder.rg.waitForLog(/reload: .*invalid; keeping the running policy/, 10_000);
        },
        async stop() {
          writeFileSync(holder.rg.configPath, good);
          const before = holder.rg
            .logs()
            .split('\n')
            .filter((l) => /reload: policy .* active/.test(l)).length;
          holder.rg.signal('SIGHUP');
          await pollUntil(
            () =>
              holder.rg
                .logs()
                .split('\n')
                .filter((l) => /reload: policy .* active/.test(l)).length > before
                ? true
                : undefined,
            10_000,
            'the good policy to load',
          );
          outage.to = Date.now();
        },
      };
    }
  }
}

// ---------------------------------------------------------------- accounting

interface SinkMessage {
  seq: string;
  text: string;
}

function readSink(names: string[]): SinkMessage[] {
  const out: SinkMessage[] = [];
  for (const name of names) {
    let text: string;
    try {
      text = readFileSync(join(stack.sinkDir, name), 'latin1');
    } catch {
      continue;
    }
    const seq = new RegExp(`^${SEQ_HEADER}: (\\S+)`, 'im').exec(text)?.[1];
    if (seq) out.push({ seq, text });
  }
  return out;
}

async function waitForQueueToDrain(ids: Set<string>): Promise<string[]> {
  try {
    await pollUntil(
      async () =>
        (await queueEntries()).some((e) => e.queue_name !== 'hold' && ids.has(e.queue_id)) ? undefined : true,
      DRAIN_TIMEOUT_MS,
      'the queue to drain',
    );
    return [];
  } catch {
    const left = (await queueEntries()).filter((e) => e.queue_name !== 'hold' && ids.has(e.queue_id));
    return left.map(
      (e) => `${e.queue_id} still in ${e.queue_name}: ${e.recipients.map((r) => r.delay_reason ?? '').join('; ')}`,
    );
  }
}

export async function runFault(kind: FaultKind, options: Partial<FaultOptions> = {}): Promise<FaultReport> {
  const o = { ...DEFAULT_FAULT_OPTIONS, ...options };
  const log = o.log ?? (() => undefined);
  const t0 = Date.now();
  await ensureStack();
  const runId = `${kind}-${randomBytes(3).toString('hex')}`;
  const sinkBefore = new Set(sinkFiles());
  const stateDir = freshStateDir();
  const holder: RelayguardHolder = { rg: await startRelayguard({ stateDir }), stateDir };
  const outage = { from: 0, to: 0 };
  const fault = makeFault(kind, holder, outage);
  const items = plan(runId, o.messages, o.eicarEvery);
  const before = items.slice(0, Math.floor(o.messages * 0.3));
  const during = items.slice(before.length, before.length + Math.floor(o.messages * 0.4));
  const after = items.slice(before.length + during.length);
  const outcomes: Outcome[] = [];
  const problems: string[] = [];
  try {
    log(`${kind}: ${before.length} messages before the fault`);
    await sendAll(before, o.concurrency, outcomes);
    log(`${kind}: fault (${FAULT_DESCRIPTION[kind]}), ${during.length} messages during it`);
    // Spread over the outage, so that messages arrive before, while and after the part is down.
    // The first sessions of this phase carry a large message, so the fault finds them inside
    // the milter; the rest are spread over the outage.
    const burst = during.slice(0, Math.min(o.concurrency, during.length));
    for (const p of burst) p.large = true;
    const sending = Promise.all([
      sendAll(burst, o.concurrency, outcomes),
      sendAll(during.slice(burst.length), o.concurrency, outcomes, o.faultDelayMs + o.outageMs),
    ]);
    await sleep(o.faultDelayMs);
    await fault.start();
    await Promise.all([sending, sleep(o.outageMs)]);
    await fault.stop();
    log(`${kind}: recovered, ${after.length} messages after`);
    await sendAll(after, o.concurrency, outcomes);
  } finally {
    if (kind === 'dns-stop' && outage.from && !outage.to) await fault.stop().catch(() => undefined);
    if (kind === 'clamd-kill' && outage.from && !outage.to) await startClamd().catch(() => undefined);
  }

  const acceptedIds = new Set(outcomes.filter((x) => x.queueId).map((x) => x.queueId!));
  problems.push(...(await waitForQueueToDrain(acceptedIds)));
  const holds = await holdQueue();
  const heldIds = new Set(holds.filter((h) => acceptedIds.has(h.queue_id)).map((h) => h.queue_id));
  const delivered = readSink(sinkFiles().filter((f) => !sinkBefore.has(f))).filter((m) =>
    m.seq.startsWith(`${runId}-`),
  );
  const deliveredCount = new Map<string, number>();
  for (const m of delivered) deliveredCount.set(m.seq, (deliveredCount.get(m.seq) ?? 0) + 1);
  const bySeq = new Map(outcomes.map((x) => [x.planned.seq, x]));

  const count = (k: Outcome['kind']) => outcomes.filter((x) => x.kind === k).length;
  const refused = count('refused');
  const tempfailed = count('tempfailed');
  const errors = count('error');
  const held = outcomes.filter((x) => x.queueId && heldIds.has(x.queueId)).length;
  const deliveredUnique = deliveredCount.size;
  const lost = items.length - deliveredUnique - refused - tempfailed - held;
  const deliveredDespiteRefusal = [...deliveredCount.keys()].filter((s) => bySeq.get(s)?.kind !== 'accepted').length;
  const eicarDelivered = delivered.filter((m) => items.find((p) => p.seq === m.seq)?.infected).length;
  const unscanned = delivered.filter((m) => !SCAN_HEADER.test(m.text.split(/\n\n/)[0] ?? ''));
  const inFlightAtFault = outcomes.filter((x) => x.startedAt < outage.from && x.endedAt > outage.from).length;
  const eicarDuringOutage =
    kind === 'clamd-kill'
      ? outcomes.filter((x) => x.planned.infected && x.endedAt >= outage.from && x.startedAt <= outage.to).length
      : 0;

  for (const x of outcomes) {
    if (x.kind === 'error') problems.push(`${x.planned.seq}: no SMTP answer (${x.detail})`);
    if (x.kind === 'accepted' && !deliveredCount.has(x.planned.seq) && !heldIds.has(x.queueId!))
      problems.push(`${x.planned.seq} (${x.queueId}): accepted, neither delivered nor held`);
  }
  for (const [seq, n] of deliveredCount) if (n > 1) problems.push(`${seq}: delivered ${n} times`);
  for (const m of unscanned) problems.push(`${m.seq}: delivered without ${SCAN_HEADER.source}`);
  if (eicarDelivered) problems.push(`${eicarDelivered} EICAR message(s) reached the sink`);

  // Held messages of this run are test debris: remove them (this slot's instance only).
  for (const id of heldIds) await run('postsuper', ['-c', stack.postfixConfigDir, '-d', id], { timeoutMs: 30_000 });
  await holder.rg.stop('SIGTERM', 30_000);

  return {
    kind,
    sent: items.length,
    delivered: deliveredUnique,
    refused,
    tempfailed,
    held,
    lost,
    errors,
    duplicates: [...deliveredCount.values()].filter((n) => n > 1).length,
    deliveredDespiteRefusal,
    inFlightAtFault,
    eicarDelivered,
    eicarDuringOutage,
    unscannedDelivered: unscanned.length,
    problems,
    ms: Date.now() - t0,
  };
}

export function formatReports(reports: FaultReport[]): string {
  const lines = [
    '| fault | sent | delivered | refused 5xx | tempfailed 4xx | held | lost | in flight at the fault | EICAR sent while clamd down | EICAR delivered | delivered unscanned | duplicates | time |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of reports) {
    lines.push(
      `| ${FAULT_DESCRIPTION[r.kind]} | ${r.sent} | ${r.delivered} | ${r.refused} | ${r.tempfailed} | ${r.held} | ${r.lost === 0 ? '0' : `**${r.lost}**`} | ${r.inFlightAtFault} | ${r.kind === 'clamd-kill' ? r.eicarDuringOutage : '—'} | ${r.eicarDelivered} | ${r.unscannedDelivered} | ${r.duplicates} | ${(r.ms / 1000).toFixed(1)} s |`,
    );
  }
  const problems = reports.flatMap((r) => r.problems.map((p) => `- ${r.kind}: ${p}`));
  return lines.join('\n') + '\n' + (problems.length ? `\nProblems:\n${problems.slice(0, 50).join('\n')}\n` : '');
}

/** A run passes when nothing is lost, no EICAR and nothing unscanned reached the sink. */
export function passed(r: FaultReport): boolean {
  return (
    r.lost === 0 &&
    r.errors === 0 &&
    r.eicarDelivered === 0 &&
    r.unscannedDelivered === 0 &&
    r.deliveredDespiteRefusal === 0 &&
    r.duplicates === 0
  );
}
