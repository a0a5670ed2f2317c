// Issue 16, finding 6: a policy file can never kill or hang the reader. validate reports each
// hostile file as file:line:col (or "file: message" without a position), exit 1; a running
// `relayguard serve` that gets SIGHUP with each of them stays alive on its old policy.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatError } from '../../src/config/load.js';
import { loadPolicyFile } from '../../src/rules/policy-schema.js';
import { MAX_POLICY_BYTES, MAX_YAML_ALIASES } from '../../src/config/read-policy-file.js';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';

const MAIN = resolve(fileURLToPath(import.meta.url), '../../../src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'rg-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Nine aliases of nine of nine ...: 9^10 nodes once expanded. */
function aliasBomb(): string {
  const lines = ['local_domains: [example.test]', 'x0: &x0 [a, a, a, a, a, a, a, a, a]'];
  for (let i = 1; i < 10; i++)
    lines.push(
      `x${i}: &x${i} [${Array(9)
        .fill(`*x${i - 1}`)
        .join(', ')}]`,
    );
  return lines.join('\n') + '\n';
}

/** Each hostile file: how to make it at `path`, and what the error says. */
const HOSTILE: Array<{ name: string; make: (path: string) => void; error: RegExp }> = [
  {
    name: 'an alias bomb',
    make: (p) => writeFileSync(p, aliasBomb()),
    error: new RegExp(`^${escape(dir)}/[^:]+:3:\\d+: aliases expand to too much \\(more than ${MAX_YAML_ALIASES}`),
  },
  {
    name: '/dev/zero',
    make: (p) => symlinkSync('/dev/zero', p),
    error: /: cannot read: not a regular file \(a character device\)$/,
  },
  {
    name: '/dev/urandom',
    make: (p) => symlinkSync('/dev/urandom', p),
    error: /: cannot read: not a regular file \(a character device\)$/,
  },
  {
    name: 'a FIFO with no writer',
    make: (p) => spawnSync('mkfifo', [p]),
    error: /: cannot read: not a regular file \(a FIFO\)$/,
  },
  { name: 'a directory', make: (p) => mkdirSync(p), error: /: cannot read: not a regular file \(a directory\)$/ },
  {
    name: 'a file over the size limit',
    make: (p) => writeFileSync(p, `local_domains: [example.test]\n#${'x'.repeat(MAX_POLICY_BYTES)}\n`),
    error: new RegExp(`: cannot read: \\d+ bytes, more than the ${MAX_POLICY_BYTES}`),
  },
  {
    name: 'bytes that are not UTF-8',
    make: (p) => writeFileSync(p, Buffer.from([0x61, 0x3a, 0x20, 0xff, 0xfe, 0x0a])),
    error: /: cannot read: not UTF-8 text$/,
  },
];

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

let n = 0;
function hostileFile(h: (typeof HOSTILE)[number]): string {
  const p = join(dir, `hostile-${++n}.yaml`);
  h.make(p);
  return p;
}

describe('validate', () => {
  for (const h of HOSTILE) {
    it(`${h.name}: one clear error, exit 1, at once`, () => {
      const file = hostileFile(h);
      const started = Date.now();
      const r = loadPolicyFile(file);
      assert.equal(r.ok, false);
      assert.ok(!r.ok && r.errors.length === 1);
      assert.match(formatError(r.errors[0]!), h.error);
      assert.ok(Date.now() - started < 2000, 'refused at once');
      const cli = spawnSync(process.execPath, [MAIN, 'validate', '--config', file], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(cli.status, 1, cli.stderr);
      assert.match(cli.stderr.trim(), h.error);
      assert.doesNotMatch(cli.stderr, /\n\s+at /, 'no stack trace');
    });
  }
});

describe('SIGHUP with a hostile file', () => {
  let child: ChildProcess;
  let output = '';
  let port = 0;
  const policy = join(dir, 'live.yaml');
  const GOOD = (header: string) =>
    `local_domains: [example.test]\nnetworks: { internal: [127.0.0.0/8] }\nserver: { state_dir: ${dir}/state }\nrules:\n  trace_header: { mode: enforce, header: ${header} }\n`;

  before(async () => {
    writeFileSync(policy, GOOD('X-Old-Policy'));
    port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
    child = spawn(
      process.execPath,
      [MAIN, 'serve', '--config', policy, '--listen', `inet:127.0.0.1:${port}`, '--metrics', 'off'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(() => output.includes('listening'), 15_000, 'serve to listen');
  });

  after(() => {
    child?.kill('SIGKILL');
  });

  /** The header name the running policy adds to a message (proves which policy runs). */
  async function traceHeaderName(): Promise<string> {
    const c = await TestMilterClient.open(port);
    try {
      await c.negotiate();
      c.connectCmd('host.example', '127.0.0.1');
      await c.next();
      c.mail('<a@example.test>');
      await c.next();
      c.rcpt('<b@example.test>');
      await c.next();
      c.data();
      await c.next();
      c.header('Subject', 'x');
      c.eoh();
      await c.next();
      c.body('hi\r\n');
      await c.next();
      c.eom();
      const replies = await c.until('acdrty');
      const add = replies.find((r) => r.code === 'h' || r.code === 'i');
      assert.ok(add, `a trace header is added: ${replies.map((r) => r.code).join(',')}`);
      const raw = add.code === 'i' ? add.payload.subarray(4) : add.payload;
      return raw.toString('latin1').split('\0')[0]!;
    } finally {
      c.close();
    }
  }

  for (const h of HOSTILE) {
    it(`${h.name}: the daemon lives on with the old policy and logs the error`, async () => {
      rmSync(policy, { recursive: true, force: true });
      h.make(policy);
      const mark = output.length;
      child.kill('SIGHUP');
      const reported = () =>
        messagesOf(output.slice(mark)).some(
          (m) => m.startsWith('reload: ') && h.error.test(m.slice('reload: '.length)),
        );
      await waitFor(reported, 10_000, `the reload to be refused with ${h.error}`);
      const logged = output.slice(mark);
      assert.ok(
        messagesOf(logged).some((m) => /keeping the running policy/.test(m)),
        logged,
      );
      assert.doesNotMatch(logged, /\n\s+at /, 'no stack trace');
      assert.equal(child.exitCode, null, 'still running');
      assert.equal(await traceHeaderName(), 'X-Old-Policy');
    });
  }

  it('a good file after all that is taken', async () => {
    rmSync(policy, { recursive: true, force: true });
    writeFileSync(policy, GOOD('X-New-Policy'));
    const mark = output.length;
    child.kill('SIGHUP');
    await waitFor(() => /active for new connections/.test(output.slice(mark)), 10_000, 'the reload');
    assert.equal(await traceHeaderName(), 'X-New-Policy');
  });
});

/** The messages of the JSON log lines in `text`. */
function messagesOf(text: string): string[] {
  return text.split('\n').flatMap((l) => {
    try {
      return [String((JSON.parse(l) as { message?: unknown }).message)];
    } catch {
      return [];
    }
  });
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
