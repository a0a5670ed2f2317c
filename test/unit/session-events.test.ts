// What the session skips when no rule reads it: events the MTA need not send (NO* bits), replies
// it need not wait for over a unix socket (NR_* bits), and the body nobody reads. Log lines of a
// connection keep their connection id and queue id without AsyncLocalStorage.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { checkMessage } from '../../src/audit/milter-check.js';
import { MilterClient } from '../../src/audit/milter-client.js';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { createLogger, silentLogger } from '../../src/ops/logging.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { modify, type Rule } from '../../src/policy/types.js';
import { Proto } from '../../src/protocol/constants.js';
import { MilterServer } from '../../src/session/server.js';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';

const POLICY = `
local_domains: [example.test]
networks: { internal: [10.0.0.0/8] }
server: { progress_interval: 50ms, deadlines: { connect: 2s, envelope: 2s, content: 5s } }
rules: {}
`;

/** Reads only the envelope and the body size: declares that it needs no event. */
const sizeTag: Rule = {
  name: 'size_tag',
  mode: 'enforce',
  needs: { actions: ['addHeader'], events: [] },
  handlers: {
    async eom({ msg }) {
      msg.log.info('size_tag: tagging');
      let streamed = 0;
      for await (const chunk of msg.source.body()) streamed += (chunk as Buffer).length;
      return modify([{ type: 'addHeader', name: 'X-Size', value: `${msg.source.bodySize}/${streamed}` }]);
    },
  },
};

let dir: string;
let server: MilterServer;
let tcpServer: MilterServer;
let tcpPort: number;
let logText = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rg-session-events-'));
  const r = parsePolicyText(POLICY, 'test.yaml');
  assert.ok(r.ok);
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => (logText += c.toString()));
  const log = createLogger({ format: 'json', level: 'info' }, sink);
  const policy = new CompiledPolicy(r.config, 'test.yaml', silentLogger(), { extraRules: [sizeTag] });
  server = new MilterServer(policy, {
    listen: { kind: 'unix', path: join(dir, 'milter.sock') },
    maxConnections: 10,
    log,
  });
  await server.start();
  tcpPort = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
  tcpServer = new MilterServer(policy, {
    listen: { kind: 'inet', host: '127.0.0.1', port: tcpPort },
    maxConnections: 10,
    log: silentLogger(),
  });
  await tcpServer.start();
});

after(async () => {
  await server.close(100);
  await tcpServer.close(100);
  rmSync(dir, { recursive: true, force: true });
});

describe('session: events nobody reads', () => {
  it('over a unix socket: no HELO, DATA, headers, EOH or body, no replies before end of message', async () => {
    const c = await MilterClient.open({ kind: 'unix', path: join(dir, 'milter.sock') });
    const neg = await c.negotiate();
    for (const bit of [
      Proto.NOHELO,
      Proto.NODATA,
      Proto.NOHDRS,
      Proto.NOEOH,
      Proto.NOBODY,
      Proto.NR_CONN,
      Proto.NR_MAIL,
      Proto.NR_RCPT,
    ]) {
      assert.ok(neg.protocol & bit, `bit 0x${bit.toString(16)} in 0x${neg.protocol.toString(16)}`);
    }
    const message = Buffer.from('Subject: hi\r\nFrom: a@example.test\r\n\r\nhello\r\n');
    for (const qid of ['QIDA1', 'QIDA2']) {
      const envelope = {
        clientIp: '192.0.2.1',
        clientName: 'client.test',
        helo: 'client.test',
        from: 'a@example.test',
        rcpts: ['b@example.test'],
      };
      const r = await checkMessage(
        c,
        neg,
        { ...envelope, message, queueId: qid },
        { timeouts: { command: 5000, content: 5000 } },
      );
      assert.equal(r.action, 'accept');
      assert.deepEqual(
        r.headerChanges,
        [{ name: 'X-Size', value: ' 0/0' }],
        'the body was never sent (the value keeps its LEADSPC space)',
      );
      const replies = r.steps.filter((s) => s.phase !== 'eom').map((s) => s.reply);
      assert.ok(
        replies.every((x) => x.startsWith('not sent') || x.startsWith('no reply')),
        `no replies before end of message: ${JSON.stringify(r.steps)}`,
      );
    }
    c.quit();
    c.socket.end();
  });

  it('every log line of the connection carries its id and the queue id', async () => {
    const deadline = Date.now() + 2000;
    const lines = () =>
      logText
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    while (lines().filter((l) => l.message === 'decision continue').length < 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    const mine = lines().filter((l) => l.message === 'size_tag: tagging' || l.message === 'decision continue');
    assert.equal(mine.length, 4, logText);
    const conn = mine[0]!.conn;
    assert.match(String(conn), /^[0-9a-f]{8}$/);
    assert.deepEqual(
      mine.map((l) => [l.message, l.conn, l.qid]),
      [
        ['size_tag: tagging', conn, 'QIDA1'],
        ['decision continue', conn, 'QIDA1'],
        ['size_tag: tagging', conn, 'QIDA2'],
        ['decision continue', conn, 'QIDA2'],
      ],
    );
  });

  it('an MTA that sends the body anyway: its size is counted, its bytes are not kept', async () => {
    const c = await TestMilterClient.open(tcpPort);
    const n = await c.negotiate();
    assert.ok(n.protocol & Proto.NOBODY);
    assert.equal(n.protocol & (Proto.NR_CONN | Proto.NR_MAIL | Proto.NR_BODY), 0, 'no new no-reply bits over TCP');
    c.connectCmd('client.test', '192.0.2.1');
    assert.equal((await c.next()).code, 'c');
    c.mail('<a@example.test>');
    assert.equal((await c.next()).code, 'c');
    c.rcpt('<b@example.test>');
    assert.equal((await c.next()).code, 'c');
    c.body('hello world\r\n');
    assert.equal((await c.next()).code, 'c');
    c.eom();
    const replies = await c.until();
    assert.deepEqual(
      replies.map((r) => r.code),
      ['h', 'c'],
    );
    assert.equal(replies[0]!.payload.toString('latin1'), 'X-Size\0 13/0\0');
    c.quit();
  });
});
