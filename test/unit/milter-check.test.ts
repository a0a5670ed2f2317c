// `relayguard milter-check` plays the MTA against a real milter: relayguard itself (its outcome
// must be the one `relayguard check` computes offline for the same envelope and message) and the
// C milter on libmilter in bench/cmilter (built here with gcc; test/e2e/stack.sh packages
// installs gcc and libmilter-dev).
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { captureCommand } from '../support/capture-output.js';
import { runMilterCheck, type MilterCheckInput } from '../../src/audit/milter-check.js';
import { runCheck } from '../../src/cli/check.js';
import { main } from '../../src/cli/main.js';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { silentLogger } from '../../src/ops/logging.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { MilterServer } from '../../src/session/server.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'rg-milter-check-'));

const POLICY = `
local_domains: [example.test]
networks: { internal: [127.0.0.0/8] }
server: { state_dir: ${dir}/state }
rules:
  trace_header: { mode: enforce, header: X-Relayguard }
  relay: { mode: enforce }
  content:
    mode: enforce
    rules:
      - { name: marker, direction: both, phrase: "CONFIDENTIAL - INTERNAL ONLY", where: [body], action: reject }
`;

const message = (body: string) =>
  Buffer.from(`From: a@partner.test\r\nTo: b@example.test\r\nSubject: test\r\n\r\n${body}\r\n`);

const cli = (...argv: string[]) => captureCommand(() => main(argv));

describe('milter-check against relayguard', () => {
  const socket = join(dir, 'relayguard.sock');
  let server: MilterServer;
  let policy: CompiledPolicy;

  before(async () => {
    const r = parsePolicyText(POLICY, 'p.yaml');
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
    policy = new CompiledPolicy(r.config, 'p.yaml', silentLogger());
    server = new MilterServer(policy, {
      listen: { kind: 'unix', path: socket },
      maxConnections: 10,
      log: silentLogger(),
    });
    await server.start();
  });
  after(async () => {
    await server.close(100);
    await policy.close();
  });

  const cases: Array<{ name: string; input: Omit<MilterCheckInput, 'milter'>; action: string; phase: string }> = [
    {
      name: 'clean inbound mail',
      input: { clientIp: '203.0.113.9', from: 'a@partner.test', rcpts: ['b@example.test'], message: message('hello') },
      action: 'accept',
      phase: 'eom',
    },
    {
      name: 'an open-relay attempt next to a local recipient',
      input: {
        clientIp: '203.0.113.9',
        from: 'a@partner.test',
        rcpts: ['x@elsewhere.test', 'b@example.test'],
        message: message('hello'),
      },
      action: 'accept',
      phase: 'eom',
    },
    {
      name: 'relay only',
      input: {
        clientIp: '203.0.113.9',
        from: 'a@partner.test',
        rcpts: ['x@elsewhere.test'],
        message: message('hello'),
      },
      action: 'reject',
      phase: 'envrcpt',
    },
    {
      name: 'the content marker',
      input: {
        clientIp: '203.0.113.9',
        from: 'a@partner.test',
        rcpts: ['b@example.test'],
        message: message('this is CONFIDENTIAL - INTERNAL ONLY'),
      },
      action: 'reject',
      phase: 'eom',
    },
  ];

  for (const c of cases) {
    it(`${c.name}: the outcome relayguard check computes offline`, async () => {
      const live = await runMilterCheck({ milter: { kind: 'unix', path: socket }, ...c.input });
      const offline = await runCheck(policy, { ...c.input, message: c.input.message });
      assert.deepEqual([live.action, live.phase], [c.action, c.phase]);
      assert.equal(live.action, offline.action);
      // The same reply but for the log reference (connection id, per session).
      const unref = (smtp: string | null) => smtp?.replace(/ \(ref [\w-]+\)$/, '') ?? null;
      assert.equal(unref(live.smtp), unref(offline.smtp));
      assert.deepEqual(
        live.recipients.map((r) => [r.address, r.action, unref(r.smtp)]),
        offline.recipients.map((r) => [r.address, r.action, unref(r.smtp)]),
      );
      if (c.action === 'accept') {
        assert.ok(
          live.modifications.some((m) => m.startsWith('add header X-Relayguard:')),
          live.modifications.join('\n'),
        );
        assert.match(live.output!.toString('latin1'), /\r\nX-Relayguard: /);
      }
    });
  }

  it('relayguard milter-check prints the steps and the reply; --json; --config takes the milter from the policy', async () => {
    const eml = join(dir, 'relay.eml');
    writeFileSync(eml, message('hello'));
    const text = await cli(
      'milter-check',
      '--milter',
      `unix:${socket}`,
      '--client-ip',
      '203.0.113.9',
      '--from',
      'a@partner.test',
      '--rcpt',
      'x@elsewhere.test',
      eml,
    );
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^ {2}envrcpt +<x@elsewhere\.test> +reject: 5\d\d /m);
    assert.match(text.out, /^action: reject \(at envrcpt\)\nreply: 5\d\d 5\.7\.1 /m);

    const policyFile = join(dir, 'listen.yaml');
    writeFileSync(policyFile, `server: { listen: "unix:${socket}" }\n`);
    const json = await cli(
      'milter-check',
      '-c',
      policyFile,
      '--json',
      '--client-ip',
      '127.0.0.1',
      '--rcpt',
      'x@elsewhere.test',
      '--out',
      join(dir, 'out.eml'),
      eml,
    );
    assert.equal(json.code, 0, json.err);
    const out = JSON.parse(json.out) as {
      action: string;
      negotiated: { version: number };
      steps: Array<{ phase: string }>;
    };
    assert.equal(out.action, 'accept');
    assert.equal(out.negotiated.version, 6);
    assert.deepEqual(
      [...new Set(out.steps.map((s) => s.phase))],
      ['connect', 'helo', 'envfrom', 'envrcpt', 'data', 'header', 'eoh', 'body', 'eom'],
    );
    assert.match(readFileSync(join(dir, 'out.eml'), 'latin1'), /^X-Relayguard: /m);
  });
});

describe('milter-check against the C milter on libmilter (bench/cmilter)', () => {
  const socket = join(dir, 'cmilter.sock');
  let milter: ChildProcess;

  before(async () => {
    let binary: string;
    try {
      binary = execFileSync('bash', [join(ROOT, 'bench', 'cmilter', 'build.sh'), dir], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .pop()!;
    } catch (err) {
      throw new Error(
        `cannot build bench/cmilter (needs gcc and libmilter-dev: bash test/e2e/stack.sh packages): ${(err as Error).message}`,
        { cause: err },
      );
    }
    milter = spawn(binary, ['-p', `unix:${socket}`, '-b'], { stdio: 'ignore' });
    // libmilter makes the socket file at bind() and listens just after: wait until it accepts.
    const accepts = () =>
      new Promise<boolean>((resolve) => {
        const s = connect(socket)
          .once('connect', () => (s.destroy(), resolve(true)))
          .once('error', () => resolve(false));
      });
    const until = Date.now() + 10_000;
    while (!(existsSync(socket) && (await accepts())) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(await accepts(), 'the C milter did not accept connections on its socket within 10 s');
  });
  after(() => {
    milter?.kill('SIGKILL'); // libmilter takes seconds to wind down on SIGTERM
    rmSync(dir, { recursive: true, force: true });
  });

  it('every step continues; the added header and the replaced body are in the delivered message', async () => {
    const body = 'x'.repeat(150_000);
    const r = await runMilterCheck({
      milter: { kind: 'unix', path: socket },
      clientIp: '192.0.2.7',
      from: 'a@b.test',
      rcpts: ['c@d.test'],
      message: message(body),
    });
    assert.equal(r.action, 'accept');
    assert.equal(r.steps.filter((s) => s.phase === 'body').length, 3, '150 kB go in 64 KiB chunks');
    assert.ok(
      r.steps.every((s) => s.reply === 'continue'),
      JSON.stringify(r.steps),
    );
    assert.deepEqual(r.modifications, [
      'add header X-Bench-Milter: body',
      `replace body (${body.length + 2 + 46} bytes)`,
    ]);
    const out = r.output!.toString('latin1');
    assert.match(out, /\r\nX-Bench-Milter: body\r\n\r\n/);
    assert.ok(out.endsWith(`${body}\r\n\r\n-- appended by the benchmark's C milter --\r\n`));
  });

  it('a milter that is not there: exit 1 with the address and the reason', async () => {
    const eml = join(dir, 'm.eml');
    writeFileSync(eml, message('hi'));
    const r = await cli(
      'milter-check',
      '--milter',
      `unix:${dir}/nothing.sock`,
      '--client-ip',
      '192.0.2.7',
      '--rcpt',
      'c@d.test',
      eml,
    );
    assert.equal(r.code, 1);
    assert.match(r.err, /^relayguard milter-check: unix:.*nothing\.sock: .*ENOENT/);
    const bad = await cli('milter-check', '--milter', 'tcp:1', '--client-ip', '192.0.2.7', '--rcpt', 'c@d.test', eml);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /bad milter address "tcp:1"/);
  });
});
