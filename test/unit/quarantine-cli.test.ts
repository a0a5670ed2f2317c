// `relayguard quarantine` against stand-ins for postqueue/postsuper/postcat that keep a queue in
// a JSON file: the command must only ever touch the one held message it was given, explain
// itself on bad IDs, and keep the index in step. (The e2e test runs it against a real Postfix.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, beforeEach, describe, test } from 'node:test';
import { QuarantineStore } from '../../src/deps/quarantine-store.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

const FAKE_TOOL = `
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
const [tool, ...args] = process.argv.slice(2);
const dir = process.env.FAKE_POSTFIX_STATE;
const qfile = dir + '/queue.json';
const queue = JSON.parse(readFileSync(qfile, 'utf8'));
appendFileSync(dir + '/calls.log', tool + ' ' + args.join(' ') + '\\n');
const save = () => writeFileSync(qfile, JSON.stringify(queue));
const find = (id) => queue.find((m) => m.queue_id === id);
if (tool === 'postqueue' && args.includes('-j')) {
  for (const m of queue) process.stdout.write(JSON.stringify(m) + '\\n');
} else if (tool === 'postqueue' && args.includes('-i')) {
  process.exit(0);
} else if (tool === 'postsuper' && args.includes('-H')) {
  const m = find(args[args.indexOf('-H') + 1]);
  if (m && m.queue_name === 'hold') { m.queue_name = 'deferred'; save(); process.stderr.write('postsuper: ' + m.queue_id + ': released from hold\\npostsuper: Released from hold: 1 message\\n'); }
} else if (tool === 'postsuper' && args.includes('-r')) {
  const id = args[args.indexOf('-r') + 1];
  const i = queue.findIndex((m) => m.queue_id === id && m.queue_name === args[args.indexOf('-r') + 2]);
  if (i >= 0) { queue[i].queue_id = 'NEW' + id; queue[i].queue_name = 'active'; save(); process.stderr.write('postsuper: Requeued: 1 message\\n'); }
} else if (tool === 'postconf') {
  process.stdout.write('5d\\n3d\\n');
} else if (tool === 'postsuper' && args.includes('-d')) {
  const id = args[args.indexOf('-d') + 1];
  const only = args[args.indexOf('-d') + 2];
  const i = queue.findIndex((m) => (id === 'ALL' || m.queue_id === id) && (!only || m.queue_name === only));
  if (i >= 0) { queue.splice(i, 1); save(); process.stderr.write('postsuper: ' + id + ': removed\\npostsuper: Deleted: 1 message\\n'); }
} else if (tool === 'postcat') {
  const m = find(args[args.indexOf('-q') + 1]);
  if (!m) { process.stderr.write('postcat: fatal: no such message\\n'); process.exit(1); }
  process.stdout.write('Subject: held test\\n\\nEICAR body of ' + m.queue_id + '\\n');
} else { process.stderr.write('unexpected call\\n'); process.exit(3); }
`;

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

let root = '';
let policy = '';
const stateDir = () => join(root, 'state');

function setup(): void {
  root = mkdtempSync(join(tmpdir(), 'rg-qcli-'));
  dirs.push(root);
  writeFileSync(join(root, 'fake.mjs'), FAKE_TOOL);
  for (const tool of ['postqueue', 'postsuper', 'postcat', 'postconf']) {
    const p = join(root, tool);
    writeFileSync(p, `#!/bin/sh\nexec "${process.execPath}" "${join(root, 'fake.mjs')}" ${tool} "$@"\n`);
    chmodSync(p, 0o755);
  }
  const now = Math.floor(Date.now() / 1000);
  const msg = (id: string, queue: string, age = 0) => ({
    queue_name: queue,
    queue_id: id,
    arrival_time: now - age,
    message_size: 321,
    sender: 'alice@example.test',
    recipients: [{ address: 'bob@outside.test' }],
  });
  writeFileSync(
    join(root, 'queue.json'),
    JSON.stringify([
      msg('AAA111BBB', 'hold'),
      msg('CCC222DDD', 'hold'),
      msg('EEE333FFF', 'deferred'),
      msg('OLD444GGG', 'hold', 2 * 86400),
    ]),
  );
  writeFileSync(join(root, 'calls.log'), '');
  policy = join(root, 'policy.yaml');
  writeFileSync(
    policy,
    [
      'server:',
      `  state_dir: ${stateDir()}`,
      'mta:',
      '  config_directory: /etc/postfix-from-policy',
      `  postqueue: ${join(root, 'postqueue')}`,
      `  postsuper: ${join(root, 'postsuper')}`,
      `  postcat: ${join(root, 'postcat')}`,
      `  postconf: ${join(root, 'postconf')}`,
      '',
    ].join('\n'),
  );
  const store = QuarantineStore.open(stateDir());
  store.record({
    queueId: 'AAA111BBB',
    rule: 'antivirus',
    reason: 'virus Eicar-Test',
    direction: 'outbound',
    sender: 'alice@example.test',
    recipients: ['bob@outside.test'],
    ref: 'abcd-1',
  });
  store.close();
}

function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, 'quarantine', ...args, '--config', policy],
      { env: { ...process.env, FAKE_POSTFIX_STATE: root, MAIL_CONFIG: '', ...env } },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

const queueNow = () =>
  JSON.parse(readFileSync(join(root, 'queue.json'), 'utf8')) as Array<{ queue_id: string; queue_name: string }>;
const calls = () => readFileSync(join(root, 'calls.log'), 'utf8').trim().split('\n').filter(Boolean);
const storeState = (id: string) => {
  const s = QuarantineStore.openExisting(stateDir())!;
  try {
    return s.latest(id)?.state;
  } finally {
    s.close();
  }
};

describe('relayguard quarantine (fake Postfix tools)', () => {
  beforeEach(setup);

  test('list: held messages only, joined with the reason', async () => {
    const r = await cli(['list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { messages: Array<Record<string, unknown>> };
    assert.deepEqual(
      out.messages.map((m) => [m.queue_id, m.rule, m.reason]),
      [
        ['AAA111BBB', 'antivirus', 'virus Eicar-Test'],
        ['CCC222DDD', null, null],
        ['OLD444GGG', null, null],
      ],
    );
    const text = await cli(['list']);
    assert.match(text.stdout, /AAA111BBB .*antivirus: virus Eicar-Test/);
    assert.match(text.stdout, /3 messages on hold/);
  });

  test('list and show: a record made before the held message arrived is an earlier message that had its queue ID', async () => {
    // Postfix's short queue IDs come back: CCC222DDD (held now, arrived now) had been relayguard's
    // quarantine of another message yesterday.
    const store = QuarantineStore.open(stateDir());
    store.record({
      queueId: 'CCC222DDD',
      rule: 'content',
      reason: 'an earlier message',
      direction: 'inbound',
      sender: 'mallory@outside.test',
      recipients: ['bob@example.test'],
      ref: 'old-1',
      time: new Date(Date.now() - 86_400_000),
    });
    store.close();
    const r = await cli(['list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = (JSON.parse(r.stdout) as { messages: Array<Record<string, unknown>> }).messages;
    assert.deepEqual(
      rows.map((m) => [m.queue_id, m.rule, m.ref]),
      [
        ['AAA111BBB', 'antivirus', 'abcd-1'],
        ['CCC222DDD', null, null],
        ['OLD444GGG', null, null],
      ],
    );
    const show = await cli(['show', 'CCC222DDD']);
    assert.equal(show.code, 0, show.stderr);
    assert.doesNotMatch(show.stdout, /an earlier message|old-1/);
    // A record made since the message arrived is its own.
    const later = QuarantineStore.open(stateDir());
    later.record({
      queueId: 'CCC222DDD',
      rule: 'antivirus',
      reason: 'virus Eicar-Test',
      direction: 'inbound',
      sender: 'alice@example.test',
      recipients: ['bob@outside.test'],
      ref: 'new-2',
    });
    later.close();
    assert.match((await cli(['show', 'CCC222DDD'])).stdout, /Reason: +virus Eicar-Test/);
  });

  test("release and delete mark the held message's own record, never an earlier message's with its queue ID", async () => {
    // Yesterday's quarantine under CCC222DDD was never released through relayguard (postsuper by
    // hand): its record still says held. Today's CCC222DDD was held by something else.
    const store = QuarantineStore.open(stateDir());
    const old = (queueId: string) =>
      store.record({
        queueId,
        rule: 'content',
        reason: 'an earlier message',
        direction: 'inbound',
        sender: 'mallory@outside.test',
        recipients: ['bob@example.test'],
        ref: `old-${queueId}`,
        time: new Date(Date.now() - 86_400_000),
      });
    old('CCC222DDD');
    old('AAA111BBB'); // and before relayguard's record of today's AAA111BBB (made in setup)
    store.close();
    assert.equal((await cli(['release', 'CCC222DDD'])).code, 0);
    assert.equal((await cli(['delete', 'AAA111BBB'])).code, 0);
    const after = QuarantineStore.openExisting(stateDir())!;
    try {
      assert.deepEqual(
        after.list().map((r) => [r.queueId, r.ref, r.state]),
        [
          ['AAA111BBB', 'abcd-1', 'deleted'],
          ['CCC222DDD', 'old-CCC222DDD', 'held'],
          ['AAA111BBB', 'old-AAA111BBB', 'held'],
        ],
      );
    } finally {
      after.close();
    }
  });

  test('the Postfix directory comes from the policy, MAIL_CONFIG overrides it', async () => {
    await cli(['list']);
    assert.match(calls()[0]!, /^postqueue -c \/etc\/postfix-from-policy -j$/);
    await cli(['list'], { MAIL_CONFIG: '/tmp/other-postfix' });
    assert.match(calls().at(-1)!, /^postqueue -c \/tmp\/other-postfix -j$/);
  });

  test('show: envelope, reason and content', async () => {
    const r = await cli(['show', 'AAA111BBB']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Reason: +virus Eicar-Test/);
    assert.match(r.stdout, /Sender: +<alice@example.test>/);
    assert.match(r.stdout, /EICAR body of AAA111BBB/);
  });

  test('release: out of hold, delivery requested, index updated', async () => {
    const r = await cli(['release', 'AAA111BBB']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(queueNow().find((m) => m.queue_id === 'AAA111BBB')?.queue_name, 'deferred');
    assert.ok(calls().some((c) => /^postsuper -c \S+ -H AAA111BBB$/.test(c)));
    assert.ok(calls().some((c) => /^postqueue -c \S+ -i AAA111BBB$/.test(c)));
    assert.equal(storeState('AAA111BBB'), 'released');
  });

  test('release of a message held longer than half the queue lifetime: requeued (fresh arrival time)', async () => {
    const r = await cli(['release', 'OLD444GGG']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /requeued/);
    assert.ok(calls().some((c) => /^postsuper -c \S+ -r OLD444GGG hold$/.test(c)));
    assert.ok(!calls().some((c) => / -H OLD444GGG/.test(c)));
  });

  test('delete: only from the hold queue, index updated', async () => {
    const r = await cli(['delete', 'AAA111BBB', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, queue_id: 'AAA111BBB', action: 'deleted' });
    assert.deepEqual(
      queueNow().map((m) => m.queue_id),
      ['CCC222DDD', 'EEE333FFF', 'OLD444GGG'],
    );
    assert.ok(calls().some((c) => /^postsuper -c \S+ -d AAA111BBB hold$/.test(c)));
    assert.equal(storeState('AAA111BBB'), 'deleted');
  });

  test('unknown ID, a message outside the hold queue, ALL: exit 1, nothing touched', async () => {
    for (const [id, msg] of [
      ['ZZZ999ZZZ', /no message ZZZ999ZZZ/],
      ['EEE333FFF', /not in the hold queue \(it is in the deferred queue\)/],
      ['ALL', /not a Postfix queue ID/],
      ['../etc', /not a Postfix queue ID/],
    ] as const) {
      for (const sub of ['show', 'release', 'delete']) {
        const r = await cli([sub, id]);
        assert.equal(r.code, 1, `${sub} ${id}: ${r.stderr}`);
        assert.match(r.stderr, msg);
      }
    }
    assert.equal(queueNow().length, 4);
    assert.ok(!calls().some((c) => c.startsWith('postsuper')), calls().join('\n'));
  });

  test('usage errors exit 2', async () => {
    assert.equal((await cli(['frobnicate'])).code, 2);
    assert.equal((await cli(['release'])).code, 2);
    assert.equal((await cli(['list', 'extra'])).code, 2);
  });
});
