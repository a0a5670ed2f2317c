// Rule 5 outbound and the quarantine command line, through the real Postfix and clamd: an
// internal or authenticated sender's infected message is held in Postfix's hold queue (never
// delivered), `relayguard quarantine` lists and shows it with the reason, release delivers it,
// delete removes it, and a wrong ID changes nothing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  eicar,
  ensureStack,
  holdQueue,
  maillogMark,
  message,
  queueEntries,
  runRelayguard,
  smtp,
  stack,
  startRelayguard,
  parseSinkFile,
  pollUntil,
  sinkFiles,
  waitForHold,
  waitForMaillog,
  type RelayguardProcess,
  type SmtpOptions,
} from './harness.js';

let rg: RelayguardProcess;

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard();
});

after(async () => {
  await rg?.stop();
  await clearQueues();
});

interface ListedMessage {
  queue_id: string;
  rule: string | null;
  reason: string | null;
  direction: string | null;
  sender: string;
  recipients: string[];
}

async function quarantine(...args: string[]) {
  return runRelayguard(['quarantine', ...args, '--config', rg.configPath]);
}

async function listed(): Promise<ListedMessage[]> {
  const r = await quarantine('list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { messages: ListedMessage[] }).messages;
}

/** Sends an infected outbound message; returns its queue ID once Postfix holds it. */
async function sendInfectedOutbound(label: string, xclient?: SmtpOptions['xclient']): Promise<string> {
  const r = await smtp({
    from: 'alice@example.test',
    to: ['bob@outside.test'],
    data: message({
      from: 'alice@example.test',
      to: 'bob@outside.test',
      subject: label,
      body: 'report attached',
      attachments: [{ content: eicar(), filename: 'report.txt', contentType: 'text/plain' }],
    }),
    ...(xclient ? { xclient } : {}),
  });
  // Accepted (250): the hold is silent for the sender, Postfix keeps the message.
  assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
  await waitForHold(r.queueId!);
  return r.queueId!;
}

function sentInLog(queueId: string, since: number): boolean {
  const text = readFileSync(stack.maillog).subarray(since).toString('utf8');
  return new RegExp(`\\b${queueId}: to=<[^>]*>.*status=sent\\b`).test(text);
}

describe('rule 5 outbound: quarantine', () => {
  test('authenticated sender, EICAR: held with the reason, not delivered; show prints it', async () => {
    const mark = maillogMark();
    const id = await sendInfectedOutbound('authenticated', { addr: '203.0.113.9', login: 'alice' });
    const entry = (await listed()).find((m) => m.queue_id === id);
    assert.ok(entry, `${id} is listed`);
    assert.equal(entry.rule, 'antivirus');
    assert.match(entry.reason ?? '', /^virus \S*EICAR/);
    assert.equal(entry.direction, 'outbound');
    assert.deepEqual(entry.recipients, ['bob@outside.test']);

    const text = await quarantine('list');
    assert.match(text.stdout, new RegExp(`${id} .*antivirus: virus \\S*EICAR`));

    const shown = await quarantine('show', id);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /Held by: +antivirus/);
    assert.match(shown.stdout, /^X-Virus-Scanned: infected \(\S*EICAR\S*\)$/m, 'the held copy carries the verdict');
    assert.match(shown.stdout, /Subject: authenticated/);

    await new Promise((r) => setTimeout(r, 500));
    assert.equal(sentInLog(id, mark), false, 'a held message is not delivered');
    assert.ok((await holdQueue()).some((e) => e.queue_id === id));
  });

  test('internal network (127.0.0.1, no login), EICAR: held too', async () => {
    const id = await sendInfectedOutbound('internal');
    assert.ok((await listed()).some((m) => m.queue_id === id && m.rule === 'antivirus'));
  });

  test('release: out of the hold queue and delivered', async () => {
    const id = await sendInfectedOutbound('to be released', { addr: '203.0.113.9', login: 'alice' });
    const mark = maillogMark();
    const r = await quarantine('release', id);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${id}: released`));
    // (waitForDelivery would stop at the earlier milter-hold line of this ID: read on from the release.)
    await waitForMaillog(new RegExp(`\\b${id}: to=<bob@outside\\.test>.*status=sent\\b`), 30_000, mark);
    const file = await pollUntil(
      () => sinkFiles().find((f) => readFileSync(join(stack.sinkDir, f), 'latin1').includes(` id ${id}`)),
      5_000,
      `the smtp-sink file of ${id}`,
    );
    const delivered = parseSinkFile(readFileSync(join(stack.sinkDir, file))).message;
    assert.match(delivered, /Subject: to be released/);
    assert.ok(!(await listed()).some((m) => m.queue_id === id));
  });

  test('delete: gone from every queue, never delivered', async () => {
    const mark = maillogMark();
    const id = await sendInfectedOutbound('to be deleted', { addr: '203.0.113.9', login: 'alice' });
    const r = await quarantine('delete', id, '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, queue_id: id, action: 'deleted' });
    assert.ok(!(await queueEntries()).some((e) => e.queue_id === id));
    assert.equal(sentInLog(id, mark), false);
  });

  test('unknown or malformed ID: exit 1 with a message, the hold queue untouched', async () => {
    const id = await sendInfectedOutbound('stays held');
    const before = (await holdQueue()).map((e) => e.queue_id).sort();
    for (const [args, msg] of [
      [['show', 'ABCDEF12345'], /no message ABCDEF12345/],
      [['release', 'ABCDEF12345'], /no message ABCDEF12345/],
      [['delete', 'ALL'], /not a Postfix queue ID/],
    ] as const) {
      const r = await quarantine(...args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, msg);
    }
    assert.deepEqual((await holdQueue()).map((e) => e.queue_id).sort(), before);
    assert.ok(before.includes(id));
  });
});
