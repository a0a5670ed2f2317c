// `relayguard milter-check MESSAGE.eml --milter inet:HOST:PORT` against two milters over TCP:
// relayguard itself (the reference policy, with the stack's clamd), where what it prints must
// match what the real Postfix answers with the same milter, and the C milter on libmilter in
// bench/cmilter (a second, independent implementation of the milter side).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  eicar,
  ensureStack,
  message,
  pollUntil,
  portAccepts,
  repoRoot,
  run,
  runRelayguard,
  smtp,
  stack,
  startRelayguard,
  type RelayguardProcess,
  type RunResult,
} from './harness.js';

/** The C milter's port: the slot's milter port + 70 (offenders uses +50, package +60). */
const CMILTER_PORT = stack.milterPort + 70;
const OUTSIDE_IP = '203.0.113.9';
const dir = join(stack.baseDir, 'milter-check');

before(async () => {
  await ensureStack();
  mkdirSync(dir, { recursive: true });
});

function eml(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function milterCheck(milter: string, args: string[]): Promise<RunResult> {
  return runRelayguard(['milter-check', '--milter', milter, ...args], { timeoutMs: 60_000 });
}

/** An SMTP reply without relayguard's per-connection reference, which differs between runs. */
const withoutRef = (text: string) => text.replace(/ ?\(ref [0-9a-z-]+\)/g, '');

describe('milter-check against relayguard (reference policy, inet)', () => {
  let rg: RelayguardProcess;
  const milter = `inet:127.0.0.1:${stack.milterPort}`;
  before(async () => {
    rg = await startRelayguard({ metrics: false });
  });
  after(async () => {
    await rg?.stop();
  });

  test('a relay attempt from outside: refused at RCPT with the reply Postfix gives for the same milter', async () => {
    const file = eml('relay.eml', message({ from: 'someone@outside.test', to: 'x@elsewhere.test', body: 'relay me' }));
    const r = await milterCheck(milter, [
      '--client-ip',
      OUTSIDE_IP,
      '--from',
      'someone@outside.test',
      '--rcpt',
      'x@elsewhere.test',
      file,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^negotiated: version 6, /m);
    const reply = /^reply: (.*)$/m.exec(r.stdout)?.[1];
    assert.match(r.stdout, /^action: reject \(at envrcpt\)$/m, r.stdout);
    assert.match(reply ?? '', /^5\d\d 5\.7\.1 /);

    const live = await smtp({
      from: 'someone@outside.test',
      to: ['x@elsewhere.test'],
      data: readFileSync(file),
      xclient: { addr: OUTSIDE_IP },
    });
    assert.equal(live.rcptReplies.length, 1);
    assert.equal(
      withoutRef(live.rcptReplies[0]!.full),
      withoutRef(reply!),
      'milter-check shows the reply Postfix sends the client',
    );
  });

  test('inbound mail: accepted; --out has the trace header; --json lists every step', async () => {
    const file = eml('inbound.eml', message({ from: 'someone@outside.test', to: 'user@example.test', body: 'hello' }));
    const out = join(dir, 'inbound.out.eml');
    const r = await milterCheck(milter, [
      '--json',
      '--out',
      out,
      '--client-ip',
      OUTSIDE_IP,
      '--from',
      'someone@outside.test',
      '--rcpt',
      'user@example.test',
      file,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      action: string;
      phase: string;
      steps: Array<{ phase: string }>;
      modifications: string[];
    };
    assert.equal(j.action, 'accept');
    assert.equal(j.phase, 'eom');
    assert.ok(
      j.modifications.some((m) => /^(add|insert) header (at \d+: )?X-Relayguard: /.test(m)),
      j.modifications.join('\n'),
    );
    assert.match(readFileSync(out, 'latin1'), /^X-Relayguard: /m);
    assert.match(readFileSync(out, 'latin1'), /\r\n\r\nhello\r\n/);
  });

  test('EICAR: refused inbound at end of message, held outbound (clamd scans it)', async () => {
    // A .txt name: the content rule refuses .com files before clamd would see them.
    const virus = { attachments: [{ filename: 'eicar.txt', contentType: 'text/plain', content: eicar() }] };
    const inbound = eml(
      'eicar-in.eml',
      message({ from: 'someone@outside.test', to: 'user@example.test', body: 'see attachment', ...virus }),
    );
    const r = await milterCheck(milter, [
      '--client-ip',
      OUTSIDE_IP,
      '--from',
      'someone@outside.test',
      '--rcpt',
      'user@example.test',
      inbound,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^action: reject \(at eom\)\nreply: 5\d\d 5\.7\.1 .*Eicar/im, r.stdout);

    const outbound = eml(
      'eicar-out.eml',
      message({ from: 'user@example.test', to: 'x@elsewhere.test', body: 'see attachment', ...virus }),
    );
    const o = await milterCheck(milter, [
      '--client-ip',
      '127.0.0.1',
      '--from',
      'user@example.test',
      '--rcpt',
      'x@elsewhere.test',
      outbound,
    ]);
    assert.equal(o.code, 0, o.stderr);
    assert.match(o.stdout, /^action: quarantine \(at eom\)\nquarantine: .*Eicar/im, o.stdout);
  });
});

describe('milter-check against the C milter on libmilter (bench/cmilter, inet)', () => {
  let milter: ChildProcess | undefined;
  before(async () => {
    const built = await run('bash', [join(repoRoot, 'bench', 'cmilter', 'build.sh'), dir], { timeoutMs: 120_000 });
    assert.equal(
      built.code,
      0,
      `bench/cmilter/build.sh (needs gcc and libmilter-dev, installed by test/e2e/stack.sh packages): ${built.stderr}`,
    );
    const binary = built.stdout.trim().split('\n').pop()!;
    assert.equal(await portAccepts(CMILTER_PORT), false, `127.0.0.1:${CMILTER_PORT} is in use`);
    // libmilter's syntax: inet:PORT@HOST. -b: replace the body (append a line) as well.
    milter = spawn(binary, ['-p', `inet:${CMILTER_PORT}@127.0.0.1`, '-b'], { stdio: 'ignore' });
    await pollUntil(
      async () => ((await portAccepts(CMILTER_PORT, 200)) ? true : undefined),
      10_000,
      `the C milter on port ${CMILTER_PORT}`,
    );
  });
  after(() => {
    milter?.kill('SIGKILL'); // libmilter takes seconds to wind down on SIGTERM
  });

  test('every step continues; the header it adds and the body it replaces are in --out', async () => {
    const file = eml(
      'cmilter.eml',
      message({ from: 'a@example.test', to: 'b@elsewhere.test', body: 'to the C milter' }),
    );
    const out = join(dir, 'cmilter.out.eml');
    const r = await milterCheck(`inet:127.0.0.1:${CMILTER_PORT}`, [
      '--client-ip',
      '192.0.2.7',
      '--from',
      'a@example.test',
      '--rcpt',
      'b@elsewhere.test',
      '--out',
      out,
      file,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^negotiated: version 6, /m);
    for (const phase of ['connect', 'helo', 'envfrom', 'envrcpt', 'data', 'header', 'eoh', 'body']) {
      assert.match(r.stdout, new RegExp(`^  ${phase} +.* continue$`, 'm'), `${phase}:\n${r.stdout}`);
    }
    assert.match(r.stdout, /^ {2}eom +add header X-Bench-Milter: body$/m);
    assert.match(r.stdout, /^ {2}eom +replace body \(\d+ bytes\)$/m);
    assert.match(r.stdout, /^action: accept \(at eom\)$/m);
    const delivered = readFileSync(out, 'latin1');
    assert.match(delivered, /\r\nX-Bench-Milter: body\r\n\r\n/);
    assert.ok(
      delivered.endsWith("to the C milter\r\n\r\n-- appended by the benchmark's C milter --\r\n"),
      JSON.stringify(delivered.slice(-120)),
    );
  });

  test('a milter port nobody listens on: exit 1 naming the address', async () => {
    const file = eml('nobody.eml', message({ from: 'a@example.test', to: 'b@elsewhere.test', body: 'x' }));
    const r = await milterCheck(`inet:127.0.0.1:${CMILTER_PORT + 1}`, [
      '--client-ip',
      '192.0.2.7',
      '--rcpt',
      'b@elsewhere.test',
      file,
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`^relayguard milter-check: inet:127\\.0\\.0\\.1:${CMILTER_PORT + 1}: .*ECONNREFUSED`),
    );
  });
});
