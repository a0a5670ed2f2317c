// Type=notify: `serve` sends READY=1 on $NOTIFY_SOCKET only once it listens, and STOPPING=1 when
// SIGTERM starts the drain. The service manager's side is a real unix datagram socket (python3
// binds it: Node cannot), the sender systemd's own systemd-notify.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { notifySystemd } from '../../src/ops/sd-notify.js';

const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rg-notify-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** A service manager's notify socket: every datagram received, in order. */
async function notifySocket(path: string): Promise<{ messages: string[] }> {
  const got = { messages: [] as string[] };
  const py = spawn(
    'python3',
    [
      '-u',
      '-c',
      `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("BOUND", flush=True)
while True:
    data = s.recv(65536)  # passed fds (systemd-notify's barrier) are closed with the message
    print(data.decode().replace("\\n", "|"), flush=True)
`,
      path,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(py);
  let buf = '';
  py.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    got.messages.push(...lines);
  });
  for (let i = 0; i < 100 && !got.messages.includes('BOUND'); i++) await sleep(50);
  assert.ok(got.messages.includes('BOUND'), 'python3 did not bind the notify socket');
  got.messages.splice(got.messages.indexOf('BOUND'), 1);
  return got;
}

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

const canRun = have('python3') && have('systemd-notify');

describe('systemd notification (Type=notify)', { skip: canRun ? false : 'needs python3 and systemd-notify' }, () => {
  it('without NOTIFY_SOCKET nothing is sent; a missing systemd-notify is reported, not thrown', async () => {
    assert.equal(await notifySystemd(['READY=1'], { env: {} }), null);
    assert.match(
      (await notifySystemd(['READY=1'], {
        env: { NOTIFY_SOCKET: '/nonexistent' },
        program: join(dir, 'no-such-program'),
      }))!,
      /not found/,
    );
  });

  it('serve: READY=1 only after it listens, STOPPING=1 when SIGTERM starts the drain', async () => {
    const sock = join(dir, 'notify.sock');
    const got = await notifySocket(sock);
    const milter = join(dir, 'milter.sock');
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, `server:\n  listen: unix:${milter}\n  state_dir: ${join(dir, 'state')}\nrules: {}\n`);
    const rg = spawn(process.execPath, [main, 'serve', '--config', policy, '--metrics', 'off'], {
      env: { ...process.env, NOTIFY_SOCKET: sock },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(rg);
    // Listened for from the start: relayguard may be gone before the test looks for STOPPING=1.
    const exited = new Promise((r) => rg.once('exit', r));
    let log = '';
    rg.stderr.on('data', (c: Buffer) => (log += c.toString()));
    await waitFor(() => got.messages.some((m) => m.includes('READY=1')), 15_000, `READY=1\n${log}`);
    // By the time READY=1 arrives the socket accepts connections.
    assert.ok(existsSync(milter));
    await new Promise<void>((resolve, reject) => {
      const c = connect(milter, () => (c.destroy(), resolve()));
      c.once('error', reject);
    });
    const ready = got.messages.find((m) => m.includes('READY=1'))!;
    assert.match(ready, new RegExp(`STATUS=listening on unix:${milter.replace(/[.]/g, '\\.')}`));
    rg.kill('SIGTERM');
    await waitFor(() => got.messages.some((m) => m.includes('STOPPING=1')), 10_000, `STOPPING=1\n${log}`);
    await exited;
    assert.doesNotMatch(log, /not sent/);
  });
});
