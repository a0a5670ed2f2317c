// A first `relayguard serve` with no --config, as a normal user (nobody), behind the test
// Postfix: no error line (the state goes to ./.relayguard with one info line), one line for each
// rule that needs site data, and the rules at work: plain mail from an internal client is
// delivered, an outside client is refused by the relay rule with a reference, an executable
// attachment is refused.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  ensureStack,
  message,
  pollUntil,
  portAccepts,
  relayguardMain,
  restorePostconf,
  smtp,
  stack,
  waitForDelivery,
} from './harness.js';

let cwd: string;
let rg: ChildProcess;
let log = '';

before(async () => {
  await ensureStack();
  await restorePostconf();
  await clearQueues();
  assert.equal(await portAccepts(stack.milterPort), false, "the slot's milter port is free");
  cwd = mkdtempSync(join(stack.baseDir, 'default-'));
  chmodSync(cwd, 0o777);
  // setpriv execs node directly (no shell, no su in between), so signals reach relayguard.
  rg = spawn(
    'setpriv',
    [
      '--reuid=nobody',
      '--regid=nogroup',
      '--clear-groups',
      process.execPath,
      relayguardMain,
      'serve',
      '--listen',
      stack.milterListen,
      '--metrics',
      'off',
    ],
    {
      cwd,
      env: { PATH: process.env.PATH, HOME: cwd },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  rg.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await pollUntil(
    async () =>
      (await portAccepts(stack.milterPort, 200))
        ? true
        : rg.exitCode !== null
          ? (() => {
              throw new Error(log);
            })()
          : undefined,
    20_000,
    `relayguard serve (default policy) on ${stack.milterListen}`,
  );
  // The port accepts a moment before the start-up lines have come through the pipe.
  await pollUntil(() => (log.includes('relayguard listening') ? true : undefined), 5_000, 'the "listening" log line');
});

after(async () => {
  if (rg && rg.exitCode === null) {
    const exited = new Promise((r) => rg.once('exit', r));
    rg.kill('SIGTERM');
    await exited;
  }
  await clearQueues();
  if (cwd) rmSync(cwd, { recursive: true, force: true });
});

const lines = () =>
  log
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { level: string; message: string });

describe('the default policy, first run as a normal user', () => {
  test('no error: the state goes to ./.relayguard with one info line; one line per rule that needs site data', () => {
    assert.deepEqual(
      lines().filter((l) => l.level === 'error'),
      [],
    );
    const info = lines()
      .filter((l) => l.level === 'info')
      .map((l) => l.message);
    assert.ok(
      info.includes(
        `state in ${join(cwd, '.relayguard')}: /var/lib/relayguard is not writable for this user (set server.state_dir to choose)`,
      ),
      info.join('\n'),
    );
    assert.ok(existsSync(join(cwd, '.relayguard')));
    // No clamd at Debian's socket on the test machine: antivirus is off, and the log says why.
    const av = info.filter((m) => m.startsWith('default policy: antivirus'));
    assert.equal(av.length, 1, info.join('\n'));
    assert.match(
      av[0]!,
      existsSync('/run/clamav/clamd.ctl')
        ? /antivirus (in monitor mode|off)/
        : /antivirus off: no clamd answers at unix:\/run\/clamav\/clamd\.ctl/,
    );
    assert.equal(info.filter((m) => m.startsWith('default policy: blocklists off')).length, 1);
    const listening = info.find((m) => m.startsWith('relayguard listening'))!;
    for (const rule of ['relay:enforce', 'size:enforce', 'access:enforce', 'content:enforce', 'offenders:enforce'])
      assert.ok(listening.includes(rule), listening);
  });

  test('plain mail from an internal client is delivered', async () => {
    const s = await smtp({
      from: 'me@localhost.test',
      to: ['you@example.test'],
      data: message({ from: 'me@localhost.test', to: 'you@example.test', body: 'hello' }),
    });
    assert.equal(s.ok, true, s.dataReply?.full ?? s.rcptReplies[0]?.full ?? s.error);
    assert.match(await waitForDelivery(s.queueId!), /^X-Relayguard: direction=outbound/m);
  });

  test('an outside client is refused by the relay rule, with the enhanced code and a reference', async () => {
    const s = await smtp({
      from: 'x@outside.test',
      to: ['user@example.test'],
      data: message({ from: 'x@outside.test', to: 'user@example.test', body: 'x' }),
      xclient: { addr: '203.0.113.9' },
    });
    assert.equal(s.rcptReplies[0]!.code, 554, s.rcptReplies[0]!.full);
    assert.match(s.rcptReplies[0]!.full, /5\.7\.1 .*\(ref [0-9a-f]+-\d+\)/);
  });

  test('an executable attachment is refused at end of data', async () => {
    const data = message({
      from: 'me@localhost.test',
      to: 'you@example.test',
      body: 'see attached',
      attachments: [{ filename: 'invoice.exe', content: 'MZ' }],
    });
    const s = await smtp({ from: 'me@localhost.test', to: ['you@example.test'], data });
    assert.equal(s.ok, false);
    assert.equal(s.dataReply!.code, 550, s.dataReply!.full);
    assert.match(s.dataReply!.full, /5\.7\.1 .*\(ref /);
  });
});
