// The reference gateway's rules behind a real Sendmail 8.17 instead of Postfix
// (test/e2e/sendmail-stack.sh): relayguard runs the reference policy as Sendmail's milter, and
// every outcome is checked where a client and the next hop see it. Sendmail has no XCLIENT:
// outside clients really connect from outside addresses, inside the stack's network namespace
// (sendmail-client.ts). clamd and the DNS blocklists are the Postfix stack's (test/e2e/stack.sh).
// Besides the rules, these tests pin down how Sendmail differs from Postfix where relayguard
// must cope: IPv6 addresses with an "IPv6:" prefix, the queue ID at MAIL, TLS macros only after
// the second EHLO, a connect-stage refusal, "%" in reply texts, header deletion indexes, body
// replacement in 64 KiB packets, the quarantine in Sendmail's own queue, and F=T when relayguard
// is down. docs/protocol.md lists every difference with the test that proves it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDocument } from 'yaml';
import { QuarantineStore } from '../../src/deps/quarantine-store.js';
import {
  deleteQuarantined,
  listQuarantined,
  quarantinedContent,
  quarantinedMessage,
  type SendmailQueueOptions,
} from '../../src/deps/mta-sendmail.js';
import {
  eicar,
  ensureStack,
  freshStateDir,
  message,
  parseSinkFile,
  pollUntil,
  portAccepts,
  preparePolicy,
  referencePolicy,
  relayguardMain,
  repoRoot,
  run,
  runRelayguard,
  stack,
  type Delivery,
  type SmtpOptions,
  type SmtpResult,
} from './harness.js';
import { NetnsSmtpClient } from './sendmail-client.js';
import { REFERENCE_PROBES } from '../support/audit-probes.js';

const STACK_SCRIPT = join(repoRoot, 'test', 'e2e', 'sendmail-stack.sh');
/** The policy under test: the reference gateway's, unless RG_E2E_SENDMAIL_POLICY names another. */
const POLICY = process.env.RG_E2E_SENDMAIL_POLICY || referencePolicy;
const DELIVERY_TIMEOUT_MS = 15_000;
/** How long to wait before concluding that something was NOT delivered. */
const SETTLE_MS = 500;
/** Just over the reference policy's 2 MiB (2,097,152 bytes). */
const OVER_LIMIT = 2_097_152 + 100_000;

/** `sendmail-stack.sh env`: RG_SM_NAME=value lines. */
type SendmailStack = Record<
  | 'NETNS'
  | 'SMTP_PORT'
  | 'MILTER_PORT'
  | 'CF'
  | 'QUEUE_DIR'
  | 'SINK_DIR'
  | 'SENDMAIL'
  | 'OUTSIDE_IP'
  | 'LISTED_IP'
  | 'PARTNER_IP'
  | 'DENIED_IP'
  | 'OUTSIDE_IP6'
  | 'INTERNAL_IP'
  | 'AUDIT_IPS',
  string
>;

let sm: SendmailStack;
let client: NetnsSmtpClient;
let rg: SendmailRelayguard;
let queueOpts: SendmailQueueOptions;

// ------------------------------------------------------------------ setup

async function stackCommand(args: string[], timeoutMs: number): Promise<string> {
  const r = await run('bash', [STACK_SCRIPT, ...args], {
    timeoutMs,
    env: { ...process.env, RG_E2E_SLOT: String(stack.slot) },
  });
  if (r.code !== 0) throw new Error(`sendmail-stack.sh ${args.join(' ')} failed (${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function parseEnv(text: string): SendmailStack {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^RG_SM_(\w+)=(.*)$/.exec(line);
    // printf %q escapes with backslashes (a comma too); none of the values needs more than that.
    if (m) out[m[1]!] = m[2]!.replace(/\\(.)/g, '$1');
  }
  return out as SendmailStack;
}

/** Empties Sendmail's queue and the sink, so every assertion below only sees this run. */
function clearDir(dir: string): void {
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
}

interface SendmailRelayguard {
  logs(): string;
  /** The policy file it runs with (also what `relayguard quarantine --config` reads). */
  configPath: string;
  stateDir: string;
  stop(): Promise<void>;
}

/**
 * `relayguard serve` with the reference policy on Sendmail's milter port. The policy is the
 * slot's copy of examples/postfix/relayguard.yaml (harness preparePolicy) with mta.kind set to
 * sendmail and JSON logs, so the tests can read decisions.
 */
async function startRelayguardForSendmail(stateDir: string): Promise<SendmailRelayguard> {
  const port = Number(sm.MILTER_PORT);
  if (await portAccepts(port)) throw new Error(`127.0.0.1:${port} is already in use (a relayguard left running?)`);
  const doc = parseDocument(readFileSync(POLICY, 'utf8'));
  doc.setIn(['mta', 'kind'], 'sendmail');
  doc.setIn(['mta', 'sendmail'], sm.SENDMAIL);
  doc.setIn(['mta', 'sendmail_cf'], sm.CF);
  // Where Sendmail reaches relayguard: what `postfix-config --mta sendmail` writes into S=.
  doc.setIn(['server', 'listen'], `inet:127.0.0.1:${port}`);
  doc.setIn(['logging', 'format'], 'json');
  const configPath = preparePolicy({ configText: doc.toString(), stateDir });
  const child: ChildProcess = spawn(
    process.execPath,
    [relayguardMain, 'serve', '--config', configPath, '--listen', `inet:127.0.0.1:${port}`, '--metrics', 'off'],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  child.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  process.once('exit', () => child.kill('SIGKILL'));
  await pollUntil(
    async () => {
      if (exited) throw new Error(`relayguard exited before listening:\n${output}`);
      return (await portAccepts(port, 200)) ? true : undefined;
    },
    15_000,
    `relayguard listening on 127.0.0.1:${port}\n${output}`,
  );
  return {
    logs: () => output,
    configPath,
    stateDir,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(killer);
      await pollUntil(async () => ((await portAccepts(port, 200)) ? undefined : true), 5_000, `port ${port} to close`);
    },
  };
}

before(async () => {
  await ensureStack(); // clamd and rbldnsd of this slot
  await stackCommand(['up'], 300_000);
  sm = parseEnv(await stackCommand(['env'], 10_000));
  clearDir(sm.QUEUE_DIR);
  clearDir(sm.SINK_DIR);
  queueOpts = { sendmail: sm.SENDMAIL, cf: sm.CF };
  rg = await startRelayguardForSendmail(freshStateDir());
  client = await NetnsSmtpClient.start(sm.NETNS);
});

after(async () => {
  client?.close();
  await rg?.stop();
});

// ------------------------------------------------------------------ helpers

// The reference policy bans an outside IP after 5 refused commands in 10 minutes (offenders).
// Each run starts with a fresh state directory; keep the refusals per address below that.

interface Send extends Omit<SmtpOptions, 'data'> {
  /** The client's address (inside the namespace); default the internal 127.0.0.1. */
  ip?: string;
  data: string | Buffer;
}

function send(opts: Send): Promise<SmtpResult> {
  const ip = opts.ip ?? sm.INTERNAL_IP;
  const host = ip.includes(':') ? '::1' : '127.0.0.1';
  return client.session(host, Number(sm.SMTP_PORT), ip, { helo: 'client.e2e.test', ...opts });
}

/** Sendmail's reply to the final dot: "250 2.0.0 <queue id> Message accepted for delivery". */
function queueIdOf(r: SmtpResult): string {
  const id = /^2\.0\.0 ([0-9A-Za-z]+) Message accepted/.exec(r.dataReply?.text ?? '')?.[1];
  assert.ok(id, `message not accepted: ${r.dataReply?.full ?? r.mailReply?.full ?? r.error}`);
  return id;
}

/** A token that appears in exactly one test message, to find it (or prove it absent) later. */
function token(): string {
  return `rg-sm-${randomBytes(6).toString('hex')}`;
}

function sinkFileWith(needle: string): string | undefined {
  for (const name of readdirSync(sm.SINK_DIR)) {
    const path = join(sm.SINK_DIR, name);
    let text: string;
    try {
      text = readFileSync(path, 'latin1');
    } catch {
      continue;
    }
    if (text.includes(needle)) return path;
  }
  return undefined;
}

/** The message Sendmail delivered to smtp-sink for queue ID `id` (its Received header names it). */
async function delivered(id: string): Promise<Delivery> {
  const file = await pollUntil(
    () => sinkFileWith(` id ${id}`),
    DELIVERY_TIMEOUT_MS,
    `delivery of ${id} to ${sm.SINK_DIR}`,
  );
  await sleep(50); // smtp-sink writes the file before it answers the final dot; be sure it is complete
  return parseSinkFile(readFileSync(file), file);
}

/** Nothing carrying `needle` reached the sink or stayed in Sendmail's queue. */
async function assertNothingKept(needle: string, what: string): Promise<void> {
  await sleep(SETTLE_MS);
  assert.equal(sinkFileWith(needle), undefined, `${what}: must not be delivered`);
  for (const name of readdirSync(sm.QUEUE_DIR)) {
    const text = readFileSync(join(sm.QUEUE_DIR, name), 'latin1');
    assert.ok(!text.includes(needle), `${what}: must not stay in Sendmail's queue (${name})`);
  }
}

function bodyOf(m: Delivery): string {
  const i = m.message.indexOf('\n\n');
  return i < 0 ? '' : m.message.slice(i + 2);
}

function headerValues(m: Delivery, name: string): string[] {
  const head = m.message.slice(0, m.message.indexOf('\n\n'));
  const re = new RegExp(`^${name}:[ \\t]*(.*(?:\\n[ \\t].*)*)`, 'gim');
  return [...head.matchAll(re)].map((x) => x[1]!);
}

/** relayguard's JSON decision lines. */
function decisions(): Array<Record<string, unknown>> {
  return rg
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((o) => typeof o.message === 'string' && o.message.startsWith('decision '));
}

function assertReply(
  r: SmtpResult,
  reply: 'mailReply' | 'dataReply',
  code: RegExp,
  enhanced: RegExp | null,
  what: string,
): void {
  const got = r[reply];
  assert.ok(got, `${what}: no ${reply} (${r.error ?? r.replies.map((x) => x.full).join(' | ')})`);
  assert.match(String(got.code), code, `${what}: ${got.full}`);
  if (enhanced) assert.match(got.enhanced ?? '', enhanced, `${what}: ${got.full}`);
}

// ------------------------------------------------------------------ rule 1: no open relay

describe('Sendmail: relay (rule 1)', () => {
  test('an outside client gets 5xx for a foreign recipient; its example.test recipient is delivered with the queue ID Sendmail gave at MAIL', async () => {
    const t = token();
    const r = await send({
      ip: sm.OUTSIDE_IP,
      from: 'sender@outside.test',
      to: ['user@example.test', 'victim@elsewhere.test'],
      data: message({ from: 'sender@outside.test', to: 'user@example.test', subject: t, body: 'hello' }),
    });
    assert.equal(r.rcptReplies[0]?.code, 250, r.rcptReplies[0]?.full);
    assert.equal(r.rcptReplies[1]?.code, 554, r.rcptReplies[1]?.full);
    assert.equal(r.rcptReplies[1]?.enhanced, '5.7.1');
    assert.match(r.rcptReplies[1].text, /Relay access denied/);
    const id = queueIdOf(r);
    const m = await delivered(id);
    assert.deepEqual(m.rcpts, ['user@example.test']);
    // Sendmail sends `i` with MAIL already (Postfix only from RCPT/DATA on): the trace header has it.
    assert.match(headerValues(m, 'X-Relayguard')[0] ?? '', new RegExp(`direction=inbound; .*queue-id=${id}\\b`));
  });

  test('a reply text with "%" reaches the client intact (Sendmail reads it as a format: relayguard sends "%%")', async () => {
    const r = await send({
      ip: sm.OUTSIDE_IP,
      from: 'sender@outside.test',
      to: ['user%elsewhere.test@example.test'],
      data: 'x',
    });
    const refusal = r.rcptReplies[0];
    assert.equal(refusal?.code, 554, refusal?.full ?? r.error);
    // A lone % would make Sendmail drop the text and answer with its default reply.
    assert.match(refusal.text, /<user%elsewhere\.test@example\.test>: Relay access denied \(ref [0-9a-z-]+\)/);
  });

  test('an internal client may relay anywhere', async () => {
    const r = await send({
      from: 'alice@example.test',
      to: ['someone@elsewhere.test'],
      data: message({ from: 'alice@example.test', to: 'someone@elsewhere.test', body: 'out' }),
    });
    const m = await delivered(queueIdOf(r));
    assert.deepEqual(m.rcpts, ['someone@elsewhere.test']);
    assert.match(headerValues(m, 'X-Relayguard')[0] ?? '', /direction=outbound/);
  });

  test('an IPv6 client ("IPv6:2001:db8:0:0:0:0:0:9" from Sendmail) is recognised as outside and logged as 2001:db8::9', async () => {
    const r = await send({
      ip: sm.OUTSIDE_IP6,
      from: 'sender@outside.test',
      to: ['user@example.test', 'victim@elsewhere.test'],
      data: message({ from: 'sender@outside.test', to: 'user@example.test', body: 'v6' }),
    });
    assert.equal(r.rcptReplies[0]?.code, 250, r.rcptReplies[0]?.full);
    assert.equal(r.rcptReplies[1]?.code, 554, r.rcptReplies[1]?.full);
    await delivered(queueIdOf(r));
    const refusal = decisions().find((d) => d.phase === 'envrcpt' && d.rule === 'relay' && d.client === '2001:db8::9');
    assert.ok(refusal, `no relay decision for client 2001:db8::9 in the log:\n${rg.logs().slice(-2000)}`);
  });
});

// ------------------------------------------------------------------ rule 3: size

describe('Sendmail: size (rule 3)', () => {
  test('MAIL FROM with SIZE= over 2 MiB gets 552 5.3.4 at MAIL', async () => {
    const r = await send({
      ip: sm.OUTSIDE_IP,
      from: 'sender@outside.test',
      to: ['user@example.test'],
      size: 3_000_000,
      data: 'x',
    });
    assertReply(r, 'mailReply', /^552$/, /^5\.3\.4$/, 'SIZE=3000000');
  });

  test('a message passing 2 MiB without SIZE= gets 552 5.3.4 by end of data and is not delivered', async () => {
    const t = token();
    const line = 'y'.repeat(998);
    const body = `${t}\r\n` + `${line}\r\n`.repeat(Math.ceil(OVER_LIMIT / 1000));
    const r = await send({
      ip: sm.OUTSIDE_IP,
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: message({ from: 'sender@outside.test', to: 'user@example.test', body }),
    });
    assertReply(r, 'dataReply', /^552$/, /^5\.3\.4$/, 'oversized data');
    await assertNothingKept(t, 'oversized message');
  });
});

// ------------------------------------------------------------------ rule 4: access (connect stage)

describe('Sendmail: denied network (rule 4, connect stage)', () => {
  test("a client from 192.0.2.0/24 is refused at connect: Sendmail greets with 554 and drops relayguard's text", async () => {
    const t = token();
    const r = await send({
      ip: sm.DENIED_IP,
      from: 'sender@denied.test',
      to: ['user@example.test'],
      data: message({ from: 'sender@denied.test', to: 'user@example.test', subject: t }),
    });
    assert.equal(r.banner?.code, 554, r.banner?.full);
    assert.match(r.banner.text, /not accepting messages/);
    assert.equal(r.ok, false);
    const d = decisions().find((x) => x.phase === 'connect' && x.client === sm.DENIED_IP);
    assert.equal(d?.rule, 'access', 'relayguard logged the refusal with its reference');
    await assertNothingKept(t, 'denied client');
  });
});

// ------------------------------------------------------------------ rule 8: blocklists

describe('Sendmail: DNS blocklist (rule 8)', () => {
  test('a client listed in bl.test (looked up at connect) gets 554 5.7.1 at MAIL naming the list', async () => {
    const r = await send({ ip: sm.LISTED_IP, from: 'sender@outside.test', to: ['user@example.test'], data: 'x' });
    assert.equal(r.banner?.code, 220, r.banner?.full);
    assertReply(r, 'mailReply', /^554$/, /^5\.7\.1$/, 'listed client');
    assert.match(r.mailReply!.text, /bl\.test/);
  });
});

// ------------------------------------------------------------------ rule 9: TLS for partners

describe('Sendmail: TLS for partners (rule 9)', () => {
  test('a partner without STARTTLS gets 530 5.7.0 at MAIL', async () => {
    const r = await send({ ip: sm.PARTNER_IP, from: 'p@partner.test', to: ['user@example.test'], data: 'x' });
    assertReply(r, 'mailReply', /^530$/, /^5\.7\.0$/, 'partner without TLS');
  });

  test('a partner with STARTTLS is accepted: Sendmail sends the TLS macros with the second HELO and with MAIL', async () => {
    const r = await send({
      ip: sm.PARTNER_IP,
      tls: true,
      from: 'p@partner.test',
      to: ['user@example.test'],
      data: message({ from: 'p@partner.test', to: 'user@example.test', body: 'encrypted' }),
    });
    assert.equal(r.encrypted, true);
    const m = await delivered(queueIdOf(r));
    assert.match(headerValues(m, 'X-Relayguard-TLS')[0] ?? '', /TLSv1\.[23]/);
  });
});

// ------------------------------------------------------------------ rule 5: antivirus

describe('Sendmail: antivirus (rule 5)', () => {
  test('inbound EICAR (base64 attachment) gets 5xx at end of data and is not kept', async () => {
    const t = token();
    const r = await send({
      ip: sm.OUTSIDE_IP,
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: message({
        from: 'sender@outside.test',
        to: 'user@example.test',
        subject: t,
        body: 'see attachment',
        attachments: [{ filename: 'readme.txt', content: eicar() }],
      }),
    });
    assertReply(r, 'dataReply', /^5\d\d$/, /^5\./, 'inbound EICAR');
    await assertNothingKept(t, 'inbound EICAR');
  });

  test("outbound EICAR is accepted into Sendmail's quarantine (hf file with the reason), not delivered; release delivers it", async () => {
    const t = token();
    const r = await send({
      from: 'alice@example.test',
      to: ['someone@elsewhere.test'],
      data: message({
        from: 'alice@example.test',
        to: 'someone@elsewhere.test',
        subject: t,
        body: 'oops',
        attachments: [{ filename: 'tool.txt', content: eicar() }],
      }),
    });
    const id = queueIdOf(r);
    const held = await quarantinedMessage(queueOpts, id);
    assert.match(held.reason, /EICAR/i);
    assert.match(held.reason, /\(ref [0-9a-z-]+\)/, "the quarantine reason carries relayguard's reference");
    assert.deepEqual(held.recipients, ['someone@elsewhere.test']);
    assert.ok((await listQuarantined(queueOpts)).some((m) => m.queueId === id));
    const content = (await quarantinedContent(held)).toString('latin1');
    assert.match(content, new RegExp(`^Subject: ${t}$`, 'm'));
    assert.match(content, /^X-Virus-Scanned: infected/m, 'the verdict header is on the held message');
    // Sendmail's own view: mailq of the quarantine queue.
    const mailq = await run(sm.SENDMAIL, ['-bp', '-qQ'], { timeoutMs: 20_000 });
    assert.match(mailq.stdout, new RegExp(`${id}[\\s\\S]*QUARANTINE: .*EICAR`, 'i'), mailq.stdout + mailq.stderr);
    await sleep(SETTLE_MS);
    assert.equal(sinkFileWith(` id ${id}`), undefined, 'a quarantined message is not delivered');

    // The administrator's view: `relayguard quarantine list` and `release` on the Sendmail policy.
    const listed = await run(
      process.execPath,
      [relayguardMain, 'quarantine', 'list', '--json', '--config', rg.configPath],
      { timeoutMs: 30_000 },
    );
    assert.equal(listed.code, 0, listed.stderr);
    const row = (
      JSON.parse(listed.stdout) as { messages: Array<{ queue_id: string; rule: string | null; reason: string }> }
    ).messages.find((x) => x.queue_id === id);
    assert.ok(row, `quarantine list shows ${id}: ${listed.stdout}`);
    assert.equal(row.rule, 'antivirus');
    assert.match(row.reason, /EICAR/i);
    const released = await run(
      process.execPath,
      [relayguardMain, 'quarantine', 'release', id, '--json', '--config', rg.configPath],
      { timeoutMs: 60_000 },
    );
    assert.equal(released.code, 0, released.stdout + released.stderr);
    assert.deepEqual(JSON.parse(released.stdout), { ok: true, queue_id: id, action: 'released' });
    const m = await delivered(id);
    assert.deepEqual(m.rcpts, ['someone@elsewhere.test']);
    assert.equal(existsSync(join(sm.QUEUE_DIR, `hf${id}`)), false);
  });

  test('a quarantined message can be deleted: its files are gone and it is never delivered', async () => {
    const t = token();
    const r = await send({
      from: 'alice@example.test',
      to: ['someone@elsewhere.test'],
      data: message({
        from: 'alice@example.test',
        to: 'someone@elsewhere.test',
        subject: t,
        body: 'oops again',
        attachments: [{ filename: 'tool.txt', content: eicar() }],
      }),
    });
    const id = queueIdOf(r);
    await quarantinedMessage(queueOpts, id);
    await deleteQuarantined(queueOpts, id);
    assert.equal(existsSync(join(sm.QUEUE_DIR, `hf${id}`)), false);
    assert.equal(existsSync(join(sm.QUEUE_DIR, `df${id}`)), false);
    await assertNothingKept(t, 'deleted quarantined message');
  });

  test("the quarantine index records the hold under Sendmail's queue ID (known from MAIL on)", async () => {
    const r = await send({
      from: 'alice@example.test',
      to: ['someone@elsewhere.test'],
      data: message({
        from: 'alice@example.test',
        to: 'someone@elsewhere.test',
        body: 'indexed',
        attachments: [{ filename: 'tool.txt', content: eicar() }],
      }),
    });
    const id = queueIdOf(r);
    try {
      const rec = await pollUntil(
        () => {
          const store = QuarantineStore.openExisting(rg.stateDir);
          try {
            return store?.latest(id);
          } finally {
            store?.close();
          }
        },
        5_000,
        `a quarantine index record for ${id} in ${rg.stateDir}`,
      );
      assert.equal(rec.rule, 'antivirus');
      assert.equal(rec.direction, 'outbound');
    } finally {
      await deleteQuarantined(queueOpts, id);
    }
  });

  test('headers: forged X-Virus-Scanned copies are deleted by index and one verdict header is added', async () => {
    const r = await send({
      ip: sm.OUTSIDE_IP,
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: message({
        from: 'sender@outside.test',
        to: 'user@example.test',
        body: 'clean',
        headers: [
          ['X-Virus-Scanned', 'clean (forged 1)'],
          ['X-Virus-Scanned', 'clean (forged 2)'],
        ],
      }),
    });
    const m = await delivered(queueIdOf(r));
    assert.deepEqual(headerValues(m, 'X-Virus-Scanned'), ['clean']);
  });
});

// ------------------------------------------------------------------ rule 6: attachments

describe('Sendmail: blocked attachments (rule 6)', () => {
  test('an attachment named *.exe gets 5xx at end of data and is not kept', async () => {
    const t = token();
    const r = await send({
      ip: sm.OUTSIDE_IP,
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: message({
        from: 'sender@outside.test',
        to: 'user@example.test',
        subject: t,
        body: 'invoice attached',
        attachments: [{ filename: 'Invoice.EXE', content: Buffer.from('MZ not really a program') }],
      }),
    });
    assertReply(r, 'dataReply', /^5\d\d$/, /^5\./, 'blocked attachment');
    await assertNothingKept(t, 'blocked attachment');
  });
});

// ------------------------------------------------------------------ rule 7: disclaimer

describe('Sendmail: disclaimer (rule 7)', () => {
  test('outbound: the text part ends with the disclaimer, the HTML part carries it before </body>', async () => {
    const r = await send({
      from: 'alice@example.test',
      to: ['someone@elsewhere.test'],
      data: message({
        from: 'alice@example.test',
        to: 'someone@elsewhere.test',
        body: 'Plain text here.\n',
        html: '<html><body><p>HTML here.</p></body></html>\n',
      }),
    });
    const m = await delivered(queueIdOf(r));
    const parts = bodyOf(m).split(/^--=_rg_[0-9a-f]+/m);
    const plain = parts.find((p) => /Content-Type: text\/plain/i.test(p)) ?? '';
    const html = parts.find((p) => /Content-Type: text\/html/i.test(p)) ?? '';
    assert.match(plain, /Plain text here\.[\s\S]*This email is confidential[\s\S]*$/, `text part:\n${plain}`);
    assert.match(html, /This email is confidential[\s\S]*<\/body>/i, `html part:\n${html}`);
  });

  test('inbound: the notice "This message came from outside example.test" is added', async () => {
    const r = await send({
      ip: sm.OUTSIDE_IP,
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: message({ from: 'sender@outside.test', to: 'user@example.test', body: 'Hello from outside.\n' }),
    });
    const m = await delivered(queueIdOf(r));
    assert.match(bodyOf(m), /Hello from outside\.[\s\S]*This message came from outside example\.test/);
  });

  test("a body over 64 KiB is replaced in several REPLBODY packets, each within Sendmail's 64 KiB limit", async () => {
    const line = 'Long outbound text, line after line, to pass the milter packet size.\n';
    const text = line.repeat(Math.ceil((200 * 1024) / line.length));
    const r = await send({
      from: 'alice@example.test',
      to: ['someone@elsewhere.test'],
      data: message({ from: 'alice@example.test', to: 'someone@elsewhere.test', body: text }),
    });
    const m = await delivered(queueIdOf(r));
    const body = bodyOf(m);
    assert.ok(body.startsWith(text.slice(0, 1000)), 'the original text comes first');
    assert.ok(body.length > 200 * 1024, `the whole text is there (${body.length} bytes)`);
    assert.match(body.slice(-2000), /This email is confidential/);
  });

  test('a multipart/signed message is delivered with its body untouched', async () => {
    const b = `signed-${randomBytes(4).toString('hex')}`;
    const body = [
      'This is an OpenPGP/MIME signed message (RFC 4880 and 3156)',
      `--${b}`,
      'Content-Type: text/plain; charset=us-ascii',
      'Content-Transfer-Encoding: 7bit',
      '',
      'Signed text that must not change.',
      '',
      `--${b}`,
      'Content-Type: application/pgp-signature; name="signature.asc"',
      'Content-Disposition: attachment; filename="signature.asc"',
      '',
      '-----BEGIN PGP SIGNATURE-----',
      '',
      'iQEzBAEBCAAdFiEEAAAAAAAAAAAAAAAAAAAAAAAAAAAFAmAAAAAACgkQAAAAAAAAAAAA',
      '=AAAA',
      '-----END PGP SIGNATURE-----',
      '',
      `--${b}--`,
      '',
    ].join('\r\n');
    const head = [
      'From: alice@example.test',
      'To: someone@elsewhere.test',
      'Subject: signed',
      `Message-ID: <${b}@example.test>`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="${b}"`,
    ].join('\r\n');
    const r = await send({
      from: 'alice@example.test',
      to: ['someone@elsewhere.test'],
      data: `${head}\r\n\r\n${body}`,
    });
    const m = await delivered(queueIdOf(r));
    assert.equal(bodyOf(m), body.replace(/\r\n/g, '\n'));
  });
});

// ------------------------------------------------------------------ relayguard down (F=T)

describe('Sendmail: relayguard down', () => {
  test('the client gets 4xx and nothing is delivered or queued; after relayguard is back the same message goes through', async () => {
    const t = token();
    const data = message({ from: 'sender@outside.test', to: 'user@example.test', subject: t, body: 'retry me' });
    const opts: Send = { ip: sm.OUTSIDE_IP, from: 'sender@outside.test', to: ['user@example.test'], data };
    const stateDir = rg.stateDir;
    await rg.stop();
    try {
      const r = await send(opts);
      assert.equal(r.banner?.code, 220, 'Sendmail still greets');
      assert.ok(
        r.mailReply && r.mailReply.code >= 400 && r.mailReply.code < 500,
        `4xx expected at MAIL: ${r.mailReply?.full ?? r.error}`,
      );
      assert.equal(r.ok, false);
      await assertNothingKept(t, 'message sent while relayguard was down');
    } finally {
      rg = await startRelayguardForSendmail(stateDir);
    }
    const again = await send(opts);
    const m = await delivered(queueIdOf(again));
    assert.match(m.message, new RegExp(t));
  });
});

// ------------------------------------------------------------------ rules 2 and 10: generated config + audit

describe('Sendmail: the output of postfix-config --mta sendmail, applied; relayguard audit passes', () => {
  const AUDIT_TIMEOUT_MS = 120_000;
  after(async () => {
    // Back to the stack's own policy part (Sendmail as an open relay that relayguard closes).
    await stackCommand(['up'], 120_000);
  });

  test('the generated .mc lines and access map run Sendmail; the audit from inside the namespace passes every probe', async () => {
    const mc = await runRelayguard(['postfix-config', '--mta', 'sendmail', '--config', rg.configPath]);
    assert.equal(mc.code, 0, mc.stderr);
    const map = await runRelayguard(['postfix-config', '--mta', 'sendmail', '--access-map', '--config', rg.configPath]);
    assert.equal(map.code, 0, map.stderr);
    const mcFile = join(rg.stateDir, 'relayguard.mc');
    const mapFile = join(rg.stateDir, 'access');
    writeFileSync(mcFile, mc.stdout);
    writeFileSync(mapFile, map.stdout);
    await stackCommand(['up', '--policy-mc', mcFile, '--access-map', mapFile], 120_000);

    // sendmail.cf was built from those lines: the fail-closed milter, no VRFY/EXPN, the access map.
    const cf = readFileSync(sm.CF, 'latin1');
    assert.match(cf, new RegExp(`^Xrelayguard, S=inet:${sm.MILTER_PORT}@127\\.0\\.0\\.1, F=T, T=`, 'm'));
    assert.match(cf, /^O PrivacyOptions=.*goaway/m);
    assert.match(cf, new RegExp(`^Kaccess hash -T<TMPF> ${join(sm.CF, '..', 'access').replace(/[.]/g, '\\.')}$`, 'm'));
    assert.doesNotMatch(readFileSync(join(sm.CF, '..', 'sendmail.mc'), 'latin1'), /^FEATURE\(`promiscuous_relay'\)/m);

    // The audit runs where Sendmail's clients are (its namespace): outside probes connect from
    // the --bind addresses, the others from 127.0.0.1 (internal); clamd and rbldnsd are bridged in.
    const sinkBefore = readdirSync(sm.SINK_DIR).length;
    const r = await run(
      'ip',
      [
        'netns',
        'exec',
        sm.NETNS,
        process.execPath,
        relayguardMain,
        'audit',
        '--smtp',
        `127.0.0.1:${sm.SMTP_PORT}`,
        '--config',
        rg.configPath,
        '--bind',
        sm.AUDIT_IPS,
        '--json',
      ],
      { timeoutMs: AUDIT_TIMEOUT_MS },
    );
    let report: { ok: boolean; probes: Array<{ name: string; ok: boolean; detail: string; verified?: boolean }> };
    try {
      report = JSON.parse(r.stdout) as typeof report;
    } catch {
      throw new Error(`audit printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
    const failed = report.probes.filter((p) => !p.ok).map((p) => `${p.name}: ${p.detail}`);
    assert.deepEqual(failed, [], `audit failures:\n${failed.join('\n')}`);
    assert.equal(r.code, 0);
    const by = new Map(report.probes.map((p) => [p.name, p]));
    assert.deepEqual([...by.keys()], REFERENCE_PROBES);
    // Sendmail itself refuses the relay now (access map), before relayguard sees the recipient.
    assert.match(
      by.get('open-relay-refused')!.detail,
      /refused for this host's address 203\.0\.113\.1[0-2] \(--bind.*Relaying denied/,
    );
    assert.match(by.get('vrfy-refused')!.detail, /252 2\.5\.2 Cannot VRFY user/);
    assert.match(by.get('size-limit-enforced')!.detail, /SIZE=2097153 refused: 552 5\.3\.4/);
    // The outbound EICAR was found in Sendmail's quarantine and deleted again.
    assert.equal(by.get('virus-held-outbound')!.verified, true);
    assert.match(by.get('virus-held-outbound')!.detail, /held as \w+ \(Sendmail quarantine\); removed/);
    assert.deepEqual(await listQuarantined(queueOpts), []);
    assert.match(by.get('starttls')!.detail, /^STARTTLS: TLSv1\.[23]/);
    // Nothing the audit sent was delivered.
    await sleep(SETTLE_MS);
    assert.equal(readdirSync(sm.SINK_DIR).length, sinkBefore);
  });
});
