// A chrooted smtpd (as in Debian's default master.cf) reaches relayguard over its unix socket:
// a second Postfix instance built from a copy of the slot's configuration, its own queue
// directory (the jail) and smtpd port, smtpd with chroot=y; relayguard listens on
// unix:QUEUE/relayguard/milter.sock; `postfix-config --apply` writes the chroot-relative address
// (unix:/relayguard/milter.sock) from master.cf; mail is delivered and refused through it. With
// a socket group smtpd is not in, smtpd gets "Permission denied" (the failure the socket group
// prevents).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { groupId } from '../../src/session/socket-owner.js';
import {
  ensureStack,
  freshStateDir,
  message,
  pollUntil,
  preparePolicy,
  relayguardMain,
  repoRoot,
  run,
  runRelayguard,
  smtp,
  stack,
} from './harness.js';

const base = join(stack.baseDir, 'chroot-pf');
const etc = join(base, 'etc');
const spool = join(base, 'spool');
const maillog = join(base, 'maillog');
const socketPath = join(spool, 'relayguard', 'milter.sock');
/** Off the slot's own ports: smtpd + 50 (no other slot's port is base + 100*N + 50). */
const port = stack.smtpPort + 50;
const postfixGid = groupId('postfix');
let policyText = '';
let rg: ChildProcess | undefined;
let rgLog = '';

async function postfix(cmd: 'start' | 'stop'): Promise<void> {
  const r = await run('postfix', ['-c', etc, cmd], { timeoutMs: 60_000 });
  if (cmd === 'start' && r.code !== 0)
    throw new Error(
      `postfix start: ${r.stdout}${r.stderr}\n${existsSync(maillog) ? readFileSync(maillog, 'utf8').slice(-2000) : ''}`,
    );
}

async function startRelayguard(extraYaml = ''): Promise<void> {
  const file = join(base, `policy-${Date.now()}.yaml`);
  writeFileSync(file, policyText.replace(/^server:\n/m, `server:\n${extraYaml}`));
  rgLog = '';
  rg = spawn(process.execPath, [relayguardMain, 'serve', '--config', file, '--metrics', 'off'], {
    cwd: repoRoot,
    env: { ...process.env, MAIL_CONFIG: etc },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  rg.stderr!.on('data', (c: Buffer) => (rgLog += c.toString()));
  await pollUntil(
    () =>
      /relayguard listening on unix:/.test(rgLog)
        ? true
        : rg!.exitCode !== null
          ? (() => {
              throw new Error(rgLog);
            })()
          : undefined,
    15_000,
    `relayguard on ${socketPath}`,
  );
}

async function stopRelayguard(): Promise<void> {
  if (!rg || rg.exitCode !== null) return;
  const exited = new Promise((r) => rg!.once('exit', r));
  rg.kill('SIGTERM');
  await exited;
}

/** The smtp-sink file holding `marker`, once delivered. */
function delivered(marker: string): Promise<string> {
  return pollUntil(
    () => {
      for (const name of readdirSync(stack.sinkDir)) {
        const text = readFileSync(join(stack.sinkDir, name), 'latin1');
        if (text.includes(marker)) return text;
      }
      return undefined;
    },
    20_000,
    `a delivered message with ${marker} in ${stack.sinkDir}`,
  );
}

before(async () => {
  await ensureStack();
  rmSync(base, { recursive: true, force: true });
  mkdirSync(join(base, 'data'), { recursive: true });
  mkdirSync(join(spool, 'etc'), { recursive: true });
  cpSync(stack.postfixConfigDir, etc, { recursive: true });
  // What Debian's init script copies into the jail.
  for (const f of ['services', 'hosts', 'resolv.conf', 'nsswitch.conf', 'host.conf', 'localtime'])
    if (existsSync(`/etc/${f}`)) copyFileSync(`/etc/${f}`, join(spool, 'etc', f));
  await run('chown', ['postfix:postfix', join(base, 'data')]);
  const master = readFileSync(join(etc, 'master.cf'), 'utf8').split('\n');
  master[0] = `127.0.0.1:${port} inet n - y - - smtpd`; // the only chrooted service
  writeFileSync(join(etc, 'master.cf'), master.join('\n'));
  const r = await run('postconf', [
    '-c',
    etc,
    '-e',
    `queue_directory = ${spool}`,
    `data_directory = ${join(base, 'data')}`,
    `maillog_file = ${maillog}`,
    `maillog_file_prefixes = ${base}`,
    `syslog_name = postfix-rg${stack.slot}-chroot`,
    'smtpd_milters =',
  ]);
  assert.equal(r.code, 0, r.stderr);
  policyText = readFileSync(preparePolicy({ stateDir: freshStateDir() }), 'utf8')
    .replace(/^( {2}listen:) .*$/m, `$1 unix:${socketPath}`)
    .replace(/^( {2}config_directory:) .*$/m, `$1 ${etc}`);
});

after(async () => {
  await stopRelayguard();
  await postfix('stop').catch(() => undefined);
  await sleep(200);
  rmSync(base, { recursive: true, force: true });
});

describe('a chrooted smtpd over the unix socket', { skip: postfixGid === null ? 'no postfix group' : false }, () => {
  test('postfix-config --apply names the socket inside the jail, cleanup (not chrooted) by its full path', async () => {
    const file = join(base, 'apply.yaml');
    writeFileSync(file, policyText);
    const r = await runRelayguard(['postfix-config', '--config', file, '--apply'], { env: { MAIL_CONFIG: etc } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^\+smtpd_milters = \{ unix:\/relayguard\/milter\.sock, default_action=tempfail \}$/m);
    assert.match(
      r.stdout,
      new RegExp(
        `^\\+non_smtpd_milters = \\{ unix:${socketPath.replace(/[.]/g, '\\.')}, default_action=tempfail \\}$`,
        'm',
      ),
    );
    const lint = await runRelayguard(['lint-mta', '--config', file], { env: { MAIL_CONFIG: etc } });
    assert.doesNotMatch(lint.stdout, /smtpd_milters/);
  });

  test('relayguard creates the directory and the socket for group postfix, 0660', async () => {
    await startRelayguard();
    const dir = statSync(join(spool, 'relayguard'));
    assert.equal(dir.gid, postfixGid);
    assert.equal(dir.mode & 0o7777, 0o2750);
    const sock = statSync(socketPath);
    assert.ok(sock.isSocket());
    assert.equal(sock.gid, postfixGid);
    assert.equal(sock.mode & 0o777, 0o660);
    assert.match(rgLog, /created .*relayguard for the milter socket/);
  });

  test("mail through the chrooted smtpd is delivered with relayguard's header, and a forged internal sender is refused with a reference", async () => {
    await postfix('start');
    await pollUntil(
      async () =>
        (await smtp({ port, from: 'a@example.test', to: [], data: '' }).catch(() => null))?.banner?.code === 220
          ? true
          : undefined,
      20_000,
      `smtpd on ${port}`,
    );
    const marker = `chroot-${Date.now()}`;
    const ok = await smtp({
      port,
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: message({
        from: 'sender@outside.test',
        to: 'user@example.test',
        subject: marker,
        body: 'through the jail',
      }),
      xclient: { addr: '203.0.113.20' },
    });
    assert.equal(
      ok.ok,
      true,
      `${ok.dataReply?.full ?? ok.mailReply?.full ?? ok.error}\n${readFileSync(maillog, 'utf8').slice(-1500)}`,
    );
    assert.match(await delivered(marker), /^X-Relayguard: /m);
    // Postfix itself would refuse a relay attempt; a forged internal sender only relayguard refuses.
    const forged = await smtp({
      port,
      from: 'ceo@example.test',
      to: ['user@example.test'],
      data: message({ from: 'ceo@example.test', to: 'user@example.test', body: 'forged?' }),
      xclient: { addr: '203.0.113.20' },
    });
    assert.equal(forged.mailReply!.code, 550, forged.mailReply!.full);
    assert.match(forged.mailReply!.full, /5\.7\.1 .*ref [0-9a-f]+-\d+/);
  });

  test('a socket group smtpd is not in: Permission denied in the jail, the client gets 4xx (nothing passes unchecked)', async () => {
    await stopRelayguard();
    await startRelayguard('  socket_group: nogroup\n');
    assert.notEqual(statSync(socketPath).gid, postfixGid);
    const r = await smtp({
      port,
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data: message({ from: 'sender@outside.test', to: 'user@example.test', body: 'denied?' }),
      xclient: { addr: '203.0.113.21' },
    });
    assert.equal(r.ok, false);
    const refusal =
      r.mailReply?.code === 250 ? (r.rcptReplies[0]?.code === 250 ? r.dataReply : r.rcptReplies[0]) : r.mailReply;
    assert.equal(Math.floor((refusal?.code ?? 0) / 100), 4, JSON.stringify(r.replies.map((x) => x.full)));
    await pollUntil(
      () => (/relayguard\/milter\.sock.*Permission denied/.test(readFileSync(maillog, 'utf8')) ? true : undefined),
      10_000,
      'Permission denied in the chroot maillog',
    );
  });
});
