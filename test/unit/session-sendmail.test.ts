// The milter session fed the way Sendmail 8.17 talks (frames as recorded from a real Sendmail
// in front of relayguard, see docs/sendmail.md): "IPv6:" client addresses, an empty HELO macro
// packet before STARTTLS and HELO again after it, the queue ID already at MAIL, several messages
// on one connection without ABORT between them, and the whole command line for UNKNOWN.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PassThrough } from 'node:stream';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { createLogger, silentLogger } from '../../src/ops/logging.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { pass, type Phase, type PhaseInput, type Rule } from '../../src/policy/types.js';
import { MilterServer } from '../../src/session/server.js';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';

const POLICY = `
local_domains: [example.test]
networks: { internal: [127.0.0.0/8] }
server: { deadlines: { connect: 2s, envelope: 2s, content: 5s } }
rules:
  trace_header: { mode: enforce, header: X-Relayguard }
`;

/** What the rule saw in one phase. */
interface Seen {
  phase: Phase;
  ip: string | null;
  internal: boolean;
  tls?: string;
  queueId?: string;
  headers?: string[];
  command?: string;
}

const seen: Seen[] = [];
function record(phase: Phase, i: PhaseInput): Seen {
  const s: Seen = { phase, ip: i.conn.client.ip, internal: i.conn.internalNetwork };
  if (i.conn.tls) s.tls = i.conn.tls.version;
  if (i.msg?.queueId) s.queueId = i.msg.queueId;
  if (i.msg) s.headers = i.msg.headers.map((h) => `${h.name}: ${h.value}`);
  if (i.command !== undefined) s.command = i.command;
  seen.push(s);
  return s;
}

const observer: Rule = {
  name: 'observer',
  mode: 'enforce',
  handlers: {
    helo: async (i) => (record('helo', i), pass()),
    envfrom: async (i) => {
      record('envfrom', i);
      i.conn.log.info('observer: envfrom'); // a MAIL-stage log line, as rules write them
      return pass();
    },
    eom: async (i) => (record('eom', i), pass()),
    unknown: async (i) => (record('unknown', i), pass()),
  },
};

let server: MilterServer;
let port: number;
/** The session's log as JSON lines. */
let logText = '';

before(async () => {
  const r = parsePolicyText(POLICY, 'test.yaml');
  assert.ok(r.ok);
  const policy = new CompiledPolicy(r.config, 'test.yaml', silentLogger(), { extraRules: [observer] });
  const logStream = new PassThrough();
  logStream.on('data', (c: Buffer) => (logText += c.toString('utf8')));
  port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
  server = new MilterServer(policy, {
    listen: { kind: 'inet', host: '127.0.0.1', port },
    maxConnections: 10,
    log: createLogger({ format: 'json', level: 'info' }, logStream),
  });
  await server.start();
});

after(async () => {
  await server.close(100);
});

/** Sendmail 8.17 offers every action and protocol bit. */
async function sendmailConnection(addr: string): Promise<TestMilterClient> {
  const c = await TestMilterClient.open(port);
  await c.negotiate(0x1ff, 0x1fffff);
  c.macro(
    'C',
    'j',
    'mta.sm-e2e.test',
    '_',
    `[${addr}]`,
    '{daemon_name}',
    'MTA',
    '{client_addr}',
    addr,
    '{client_name}',
    `[${addr}]`,
  );
  c.connectCmd(`[${addr}]`, addr);
  assert.equal((await c.next()).code, 'c');
  return c;
}

/** One message the way Sendmail sends it: `i` with MAIL, no ABORT afterwards. */
async function sendmailMessage(c: TestMilterClient, queueId: string, subject: string): Promise<string> {
  c.macro('M', 'i', queueId, '{mail_addr}', 'a@outside.test');
  c.mail('<a@outside.test>');
  assert.equal((await c.next()).code, 'c');
  c.macro('R', 'i', queueId, '{rcpt_addr}', 'u@example.test', '{rcpt_host}', '[127.0.0.1]', '{rcpt_mailer}', 'relay');
  c.rcpt('<u@example.test>');
  assert.equal((await c.next()).code, 'c');
  c.macro('T', 'i', queueId);
  c.data();
  assert.equal((await c.next()).code, 'c');
  c.header('Subject', ` ${subject}`);
  c.header('From', ' a@outside.test');
  c.macro('N', 'i', queueId);
  c.eoh();
  assert.equal((await c.next()).code, 'c');
  c.body('hello\r\n');
  assert.equal((await c.next()).code, 'c');
  c.macro('E', 'i', queueId);
  c.eom();
  const replies = await c.until();
  assert.equal(replies.at(-1)?.code, 'c');
  const trace = replies.find((r) => r.code === 'h');
  return trace?.payload.toString('latin1').split('\0')[1] ?? '';
}

describe('milter session with Sendmail 8.17 frames', () => {
  it('reads an "IPv6:" client address, TLS from the second HELO, the queue ID at MAIL, and keeps messages apart without ABORT', async () => {
    seen.length = 0;
    const c = await sendmailConnection('IPv6:2001:db8:0:0:0:0:0:9');
    c.macro('H'); // Sendmail sends an empty HELO macro packet before STARTTLS
    c.helo('client.e2e.test');
    assert.equal((await c.next()).code, 'c');
    c.macro(
      'H',
      '{tls_version}',
      'TLSv1.3',
      '{cipher}',
      'TLS_AES_256_GCM_SHA384',
      '{cipher_bits}',
      '256',
      '{verify}',
      'NO',
    );
    c.helo('client.e2e.test');
    assert.equal((await c.next()).code, 'c');

    const first = await sendmailMessage(c, '6AS4SUOp014956', 'first');
    const second = await sendmailMessage(c, '6AS4SUOp014957', 'second');
    c.quit();

    const helos = seen.filter((s) => s.phase === 'helo');
    assert.deepEqual(
      helos.map((s) => s.tls),
      [undefined, 'TLSv1.3'],
      'no TLS before STARTTLS, TLS with the second HELO',
    );
    for (const s of seen) {
      assert.equal(s.ip, '2001:db8::9', `${s.phase}: the address without the IPv6: prefix, compressed`);
      assert.equal(s.internal, false);
    }
    const froms = seen.filter((s) => s.phase === 'envfrom');
    assert.deepEqual(
      froms.map((s) => s.queueId),
      ['6AS4SUOp014956', '6AS4SUOp014957'],
      'the queue ID is known at MAIL',
    );
    const eoms = seen.filter((s) => s.phase === 'eom');
    assert.deepEqual(
      eoms.map((s) => s.headers),
      [
        ['Subject: first', 'From: a@outside.test'],
        ['Subject: second', 'From: a@outside.test'],
      ],
      "the second message does not see the first one's headers",
    );
    assert.match(first, /queue-id=6AS4SUOp014956/);
    assert.match(second, /queue-id=6AS4SUOp014957/);
  });

  it('log lines of the MAIL stage carry the queue ID Sendmail sent with MAIL', async () => {
    logText = '';
    const c = await sendmailConnection('203.0.113.9');
    c.helo('x.test');
    assert.equal((await c.next()).code, 'c');
    await sendmailMessage(c, '6AS4SUOp020001', 'logged');
    c.quit();
    const line = logText
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((o) => o.message === 'observer: envfrom');
    assert.ok(line, `no MAIL-stage log line in:\n${logText}`);
    assert.equal(line.qid, '6AS4SUOp020001');
  });

  it("passes Sendmail's whole UNKNOWN command line to the rules", async () => {
    seen.length = 0;
    const c = await sendmailConnection('203.0.113.9');
    c.send(0x55 /* 'U' */, Buffer.from('FOO bar baz\0', 'latin1'));
    c.helo('x.test');
    assert.equal((await c.next()).code, 'c');
    c.quit();
    assert.equal(seen.find((s) => s.phase === 'unknown')?.command, 'FOO bar baz');
  });
});
