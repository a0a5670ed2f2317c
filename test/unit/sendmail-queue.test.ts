// Sendmail's quarantine on disk (src/deps/mta-sendmail.ts): control file parsing, finding a
// quarantined job safely (sendmail -qI matches substrings), delete, and the commands release
// runs. The queue is a temporary directory; `sendmail` is a small shell script that does what
// Sendmail does with -Q (rename hf -> qf) and records its arguments. The real Sendmail is
// exercised in test/e2e/sendmail.test.ts.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  checkQueueId,
  deleteQuarantined,
  listQuarantined,
  parseControlFile,
  queueDirectories,
  queueDirectoryOption,
  quarantinedMessage,
  releaseQuarantined,
  type SendmailQueueOptions,
} from '../../src/deps/mta-sendmail.js';
import { MtaError } from '../../src/deps/mta.js';

const work = mkdtempSync(join(tmpdir(), 'rg-sendmail-queue-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A control file as Sendmail 8.17 wrote it for a message relayguard quarantined (trimmed). */
function controlFile(opts: { time: number; reason: string; sender: string; rcpts: string[] }): string {
  return [
    'V8',
    `T${opts.time}`,
    'K1795840142',
    'N0',
    'P30687',
    `q${opts.reason}`,
    'Fbs',
    '$_localhost [127.0.0.1]',
    `S<${opts.sender}>`,
    ...opts.rcpts.flatMap((r) => [`rRFC822; ${r}`, `RPFD:<${r}>`]),
    'H?P?Return-Path: <\x81g>',
    '\t(a continuation of the conditional header)',
    'H??Received: from client.e2e.test (localhost [127.0.0.1])',
    '\tby mta.sm-e2e.test (8.17.1.9/8.17.1.9) with ESMTP id 6AS4T1XU021373',
    'H??From: a@example.test',
    'H??Subject: held',
    '.',
    '',
  ].join('\n');
}

let dirCounter = 0;
function freshQueue(): { dir: string; opts: SendmailQueueOptions; log: string } {
  const dir = join(work, `q${++dirCounter}`);
  mkdirSync(dir);
  const cf = join(dir, 'sendmail.cf');
  writeFileSync(cf, `# test\nO QueueDirectory=${dir}\nO PidFile=/x\n`);
  const log = join(dir, 'calls.log');
  // Fake sendmail: logs its arguments; with -Q (no reason) and -qI<id> it lifts the quarantine.
  const fake = join(dir, 'sendmail');
  writeFileSync(
    fake,
    `#!/bin/sh
echo "$*" >> '${log}'
lift=; id=
for a in "$@"; do
  case "$a" in -Q) lift=1 ;; -qI*) id=\${a#-qI} ;; esac
done
if [ -n "$lift" ] && [ -n "$id" ] && [ -z "$KEEP_HELD" ]; then mv '${dir}'/hf"$id" '${dir}'/qf"$id"; fi
exit 0
`,
  );
  chmodSync(fake, 0o755);
  return { dir, opts: { sendmail: fake, cf }, log };
}

function addJob(dir: string, id: string, kind: 'hf' | 'qf', time: number, body = 'body\n'): void {
  writeFileSync(
    join(dir, `${kind}${id}`),
    controlFile({
      time,
      reason: `virus Test.EICAR (ref ab12cd34-5) for ${id}`,
      sender: 'a@example.test',
      rcpts: ['x@elsewhere.test', 'y@elsewhere.test'],
    }),
  );
  writeFileSync(join(dir, `df${id}`), body);
}

describe('sendmail queue: control files', () => {
  test('parseControlFile reads the reason, envelope, arrival time and the unconditional headers', () => {
    const p = parseControlFile(
      controlFile({
        time: 1795840141,
        reason: 'virus RG.Test.EICAR (ref 53d85b82-5)',
        sender: 'a@example.test',
        rcpts: ['u@elsewhere.test'],
      }),
    );
    assert.equal(p.reason, 'virus RG.Test.EICAR (ref 53d85b82-5)');
    assert.equal(p.sender, 'a@example.test');
    assert.deepEqual(p.recipients, ['u@elsewhere.test']);
    assert.equal(p.arrivalTime.getTime(), 1795840141 * 1000);
    // The conditional Return-Path (?P?, an unexpanded macro) is not part of the message.
    assert.deepEqual(
      p.headers,
      [
        '??Received: from client.e2e.test (localhost [127.0.0.1])\n\tby mta.sm-e2e.test (8.17.1.9/8.17.1.9) with ESMTP id 6AS4T1XU021373',
        '??From: a@example.test',
        '??Subject: held',
      ].map((h) => h.slice(2)),
    );
  });

  test('old-style recipient lines without flags are read too', () => {
    assert.deepEqual(parseControlFile('V8\nRother@elsewhere.test\n.\n').recipients, ['other@elsewhere.test']);
  });

  test("QueueDirectory comes from sendmail.cf, with Sendmail's default when absent; q* expands to the directories", async () => {
    assert.equal(queueDirectoryOption('O SevenBitInput=False\nO QueueDirectory=/srv/mqueue\n'), '/srv/mqueue');
    assert.equal(queueDirectoryOption('O SevenBitInput=False\n'), '/var/spool/mqueue');
    const base = join(work, 'multi');
    for (const d of ['q1', 'q2', 'other']) mkdirSync(join(base, d), { recursive: true });
    writeFileSync(join(base, 'q3'), 'a file, not a queue');
    const cf = join(base, 'sendmail.cf');
    writeFileSync(cf, `O QueueDirectory=${base}/q*\n`);
    assert.deepEqual(await queueDirectories({ sendmail: 'sendmail', cf }), [join(base, 'q1'), join(base, 'q2')]);
  });

  test('queue IDs are letters and digits only', () => {
    assert.equal(checkQueueId('6AS4T1XU021373'), '6AS4T1XU021373');
    for (const bad of ['', 'ALL', '6AS4T1XU/../x', '-qQ', '6AS4 T1XU'])
      assert.throws(() => checkQueueId(bad), MtaError, bad);
  });
});

describe('sendmail queue: operations', () => {
  test('list shows only quarantined jobs, oldest first, with the data file size', async () => {
    const { dir, opts } = freshQueue();
    addJob(dir, '6AS4T1XU000002', 'hf', 2000, 'x'.repeat(10));
    addJob(dir, '6AS4T1XU000001', 'hf', 1000, 'y'.repeat(20));
    addJob(dir, '6AS4T1XU000003', 'qf', 500);
    const list = await listQuarantined(opts);
    assert.deepEqual(
      list.map((m) => [m.queueId, m.size]),
      [
        ['6AS4T1XU000001', 20],
        ['6AS4T1XU000002', 10],
      ],
    );
    assert.match(list[0]!.reason, /ref ab12cd34-5/);
    assert.deepEqual(list[0]!.recipients, ['x@elsewhere.test', 'y@elsewhere.test']);
  });

  test("a queued but not quarantined job, an unknown ID and an ID that is part of another job's ID are refused", async () => {
    const { dir, opts } = freshQueue();
    addJob(dir, '6AS4T1XU213731', 'hf', 1000);
    addJob(dir, '6AS4T1XU2137310', 'qf', 1000); // pid 2137310: the first ID is a prefix of it
    addJob(dir, '6AS4T1XU999999', 'qf', 1000);
    await assert.rejects(quarantinedMessage(opts, '6AS4T1XU999999'), /in the Sendmail queue but not quarantined/);
    await assert.rejects(quarantinedMessage(opts, '6AS4T1XU000000'), /no quarantined message/);
    await assert.rejects(quarantinedMessage(opts, '6AS4T1XU213731'), /also matches qf6AS4T1XU2137310/);
    await assert.rejects(releaseQuarantined(opts, '6AS4T1XU213731'), /also matches/);
    await assert.rejects(deleteQuarantined(opts, '6AS4T1XU213731'), /also matches/);
    assert.ok(existsSync(join(dir, 'hf6AS4T1XU213731')), 'nothing was touched');
  });

  test('release lifts the quarantine with -Q -qQ -qI<id>, then asks for delivery with -qI<id>', async () => {
    const { dir, opts, log } = freshQueue();
    addJob(dir, '6AS4T1XU000010', 'hf', 1000);
    const r = await releaseQuarantined(opts, '6AS4T1XU000010');
    assert.deepEqual(r, { queueId: '6AS4T1XU000010' });
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), [
      `-C ${opts.cf} -Q -qQ -qI6AS4T1XU000010`,
      `-C ${opts.cf} -qI6AS4T1XU000010`,
    ]);
    assert.ok(existsSync(join(dir, 'qf6AS4T1XU000010')));
  });

  test('release fails loudly when Sendmail left the job quarantined', async () => {
    const { dir, opts } = freshQueue();
    addJob(dir, '6AS4T1XU000011', 'hf', 1000);
    process.env.KEEP_HELD = '1';
    try {
      await assert.rejects(releaseQuarantined(opts, '6AS4T1XU000011'), /still quarantined/);
    } finally {
      delete process.env.KEEP_HELD;
    }
    assert.ok(existsSync(join(dir, 'hf6AS4T1XU000011')));
  });

  test("delete removes the job's control, data and transcript files and nothing else", async () => {
    const { dir, opts } = freshQueue();
    addJob(dir, '6AS4T1XU000020', 'hf', 1000);
    writeFileSync(join(dir, 'xf6AS4T1XU000020'), 'transcript');
    addJob(dir, '6AS4T1XU000021', 'hf', 1000);
    const m = await deleteQuarantined(opts, '6AS4T1XU000020');
    assert.equal(m.queueId, '6AS4T1XU000020');
    for (const f of ['hf', 'df', 'xf']) assert.equal(existsSync(join(dir, `${f}6AS4T1XU000020`)), false, f);
    assert.ok(existsSync(join(dir, 'hf6AS4T1XU000021')));
    assert.ok(existsSync(join(dir, 'df6AS4T1XU000021')));
  });

  test('a queue directory with qf/ and df/ subdirectories is understood', async () => {
    const { dir, opts } = freshQueue();
    mkdirSync(join(dir, 'qf'));
    mkdirSync(join(dir, 'df'));
    writeFileSync(
      join(dir, 'qf', 'hf6AS4T1XU000030'),
      controlFile({ time: 1000, reason: 'held', sender: 's@example.test', rcpts: ['r@elsewhere.test'] }),
    );
    writeFileSync(join(dir, 'df', 'df6AS4T1XU000030'), 'abc');
    const [m] = await listQuarantined(opts);
    assert.equal(m?.queueId, '6AS4T1XU000030');
    assert.equal(m?.size, 3);
    await deleteQuarantined(opts, '6AS4T1XU000030');
    assert.equal(existsSync(join(dir, 'df', 'df6AS4T1XU000030')), false);
  });
});
