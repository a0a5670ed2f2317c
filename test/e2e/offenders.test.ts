// Rule 8 (offender ledger) through the real Postfix: a client that earns 5 refusals (or EXPN
// attempts) within 10 minutes is refused at connect; the ban survives a restart of relayguard,
// `relayguard offenders` lists it and `relayguard unban IP` lifts it. Authenticated clients earn
// nothing. Also with the ledger in Redis (server.state), as several gateways would share it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';
import {
  clearQueues,
  ensureStack,
  freshStateDir,
  message,
  pollUntil,
  portAccepts,
  preparePolicy,
  referencePolicy,
  relayguardMain,
  repoRoot,
  runRelayguard,
  smtp,
  stack,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
  type SmtpResult,
  type XclientAttributes,
} from './harness.js';

const THRESHOLD = 5;
const BANNED_TEXT =
  /Client host \[(?:[0-9.]+)\] banned until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC after repeated policy violations/;

function send(
  from: string,
  xclient: XclientAttributes,
  opts: { size?: number; extraCommands?: string[] } = {},
): Promise<SmtpResult> {
  const to = 'user@example.test';
  return smtp({ from, to: [to], data: message({ from, to, body: 'offender test' }), xclient, ...opts });
}

/** One session whose MAIL FROM relayguard refuses (a blocked sender domain). */
async function offend(addr: string): Promise<void> {
  const r = await send('x@blocked.test', { addr });
  assert.equal(r.mailReply?.code, 554, r.mailReply?.full ?? r.error);
}

/** Banned: the new session's greeting (the answer to XCLIENT) is a 554, MAIL gets our ban text. */
function assertBanned(r: SmtpResult): void {
  assert.equal(r.xclientReply?.code, 554, r.xclientReply?.full ?? r.error);
  assert.equal(r.mailReply?.code, 554, r.mailReply?.full ?? r.error);
  assert.equal(r.mailReply?.enhanced, '5.7.1');
  assert.match(r.mailReply.text, BANNED_TEXT);
  assert.equal(r.ok, false);
}

async function assertDelivered(r: SmtpResult): Promise<void> {
  assert.equal(r.mailReply?.code, 250, r.mailReply?.full ?? r.error);
  assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
  assert.match(await waitForDelivery(r.queueId!), /offender test/);
}

interface OffendersJson {
  offenders: Array<{
    ip: string;
    offences: number;
    banned: boolean;
    banned_until: string | null;
    last_reason: string | null;
  }>;
}

async function listed(configPath: string, ip: string) {
  const r = await runRelayguard(['offenders', '--config', configPath, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as OffendersJson).offenders.find((o) => o.ip === ip);
}

describe('rule 8: offender ledger (SQLite)', () => {
  let rg: RelayguardProcess;

  before(async () => {
    await ensureStack();
    await clearQueues();
    rg = await startRelayguard();
  });

  after(async () => {
    await rg?.stop();
  });

  test('5 refusals within 10 minutes: refused at connect; survives a restart; unban lifts it', async () => {
    const ip = '203.0.113.77';
    for (let i = 1; i < THRESHOLD; i++) await offend(ip);
    // Four refusals are no ban yet.
    await assertDelivered(await send('sender@outside.test', { addr: ip }));
    await offend(ip);
    assertBanned(await send('sender@outside.test', { addr: ip }));

    const row = await listed(rg.configPath, ip);
    assert.equal(row?.banned, true, JSON.stringify(row));
    assert.equal(row?.offences, THRESHOLD);
    assert.match(row?.last_reason ?? '', /^blocklists: Sender address <x@blocked\.test> rejected/);

    // The ban lives in the state directory: a restarted relayguard still refuses the client.
    await rg.stop();
    rg = await startRelayguard({ stateDir: rg.stateDir });
    assertBanned(await send('sender@outside.test', { addr: ip }));

    const unban = await runRelayguard(['unban', ip, '--config', rg.configPath]);
    assert.equal(unban.code, 0, unban.stderr);
    assert.match(unban.stdout, /ban lifted/);
    await assertDelivered(await send('sender@outside.test', { addr: ip }));
    assert.equal(await listed(rg.configPath, ip), undefined);

    const again = await runRelayguard(['unban', ip, '--config', rg.configPath]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /203\.0\.113\.77 is not banned/);
    const invalid = await runRelayguard(['unban', '203.0.113.300', '--config', rg.configPath]);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /not an IP address/);
  });

  test('5 EXPN attempts: refused at connect', async () => {
    const ip = '203.0.113.78';
    const r = await send('sender@outside.test', { addr: ip }, { extraCommands: Array(THRESHOLD).fill('EXPN staff') });
    // Postfix does not know EXPN (500 5.5.2) and hands it to the milter as an unknown command.
    for (const reply of r.extraReplies) assert.equal(reply.code, 500, reply.full);
    assertBanned(await send('sender@outside.test', { addr: ip }));
    assert.equal((await runRelayguard(['unban', ip, '--config', rg.configPath])).code, 0);
  });

  // The size rule refuses SIZE= over 2 MiB for every client, so these are refusals that
  // would count for anybody else.
  const refusedForSize = async (from: string, xclient: XclientAttributes) => {
    const r = await send(from, xclient, { size: 3_000_000 });
    assert.equal(r.mailReply?.code, 552, r.mailReply?.full ?? r.error);
  };

  test('an authenticated client earns nothing: 6 refused MAILs, still accepted', async () => {
    const ip = '203.0.113.79';
    for (let i = 0; i <= THRESHOLD; i++) await refusedForSize('alice@example.test', { addr: ip, login: 'alice' });
    await assertDelivered(await send('alice@example.test', { addr: ip, login: 'alice' }));
    await assertDelivered(await send('sender@outside.test', { addr: ip }));
    assert.equal(await listed(rg.configPath, ip), undefined);
  });

  test('an internal client earns nothing: 6 refused MAILs, still accepted', async () => {
    const ip = '127.0.0.5';
    for (let i = 0; i <= THRESHOLD; i++) await refusedForSize('bob@example.test', { addr: ip });
    await assertDelivered(await send('bob@example.test', { addr: ip }));
  });
});

/** A second gateway's relayguard: same policy, its own state dir and milter port, no metrics. */
async function startSecondGateway(configText: string): Promise<{ port: number; stop(): void }> {
  // Off every slot's port grid (bases end in 10, 25, 26, 53, 64, 79): free on any slot.
  const port = stack.milterPort + 50;
  if (await portAccepts(port)) throw new Error(`127.0.0.1:${port} is already in use`);
  const configPath = preparePolicy({ configText, stateDir: freshStateDir() });
  const child = spawn(
    process.execPath,
    [relayguardMain, 'serve', '--config', configPath, '--listen', `inet:127.0.0.1:${port}`, '--metrics', 'off'],
    { cwd: repoRoot, stdio: 'ignore' },
  );
  process.once('exit', () => child.kill('SIGKILL'));
  await pollUntil(
    async () => ((await portAccepts(port, 200)) ? true : undefined),
    15_000,
    `the second relayguard listening on ${port}`,
  );
  return { port, stop: () => child.kill('SIGTERM') };
}

/** What the second gateway answers when `ip` connects (the reply letter and its text). */
async function connectVerdict(port: number, ip: string): Promise<{ code: string; text: string }> {
  const c = await TestMilterClient.open(port);
  try {
    await c.negotiate();
    c.connectCmd('client.outside.test', ip);
    const r = await c.next();
    return { code: r.code, text: r.payload.toString('latin1') };
  } finally {
    c.close();
  }
}

describe('rule 8: offender ledger shared in Redis', () => {
  let rg: RelayguardProcess;
  let second: { port: number; stop(): void } | undefined;
  const ip = '203.0.113.88';

  before(async () => {
    await ensureStack();
    // preparePolicy moves 6379 to this slot's Redis.
    const text = readFileSync(referencePolicy, 'utf8').replace(
      /^server:\n/m,
      'server:\n  state: redis://127.0.0.1:6379/0\n',
    );
    assert.match(text, /state: redis:/);
    rg = await startRelayguard({ configText: text });
    second = await startSecondGateway(text);
    // A previous run that failed half-way may have left the ban behind.
    await runRelayguard(['unban', ip, '--config', rg.configPath]);
  });

  after(async () => {
    second?.stop();
    await rg?.stop();
  });

  test('a ban earned through one gateway refuses the client at the other gateway; unban lifts it at both', async () => {
    assert.equal((await connectVerdict(second!.port, ip)).code, 'c', 'not banned yet');
    for (let i = 0; i < THRESHOLD; i++) await offend(ip);
    assertBanned(await send('sender@outside.test', { addr: ip }));
    const there = await connectVerdict(second!.port, ip);
    assert.notEqual(there.code, 'c', 'the second gateway refuses the banned client');
    assert.match(there.text, /banned until/);
    assert.equal((await connectVerdict(second!.port, '203.0.113.89')).code, 'c', 'other clients are not affected');
    const unban = await runRelayguard(['unban', ip, '--config', rg.configPath]);
    assert.equal(unban.code, 0, unban.stderr);
    assert.equal((await connectVerdict(second!.port, ip)).code, 'c', 'unbanned at the second gateway too');
    await assertDelivered(await send('sender@outside.test', { addr: ip }));
  });

  test('a ban recorded in Redis refuses the client, is listed and lifted by the command line', async () => {
    for (let i = 0; i < THRESHOLD; i++) await offend(ip);
    assertBanned(await send('sender@outside.test', { addr: ip }));
    assert.equal((await listed(rg.configPath, ip))?.banned, true);
    const unban = await runRelayguard(['unban', ip, '--config', rg.configPath]);
    assert.equal(unban.code, 0, unban.stderr);
    await assertDelivered(await send('sender@outside.test', { addr: ip }));
  });
});
