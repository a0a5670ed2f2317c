// The milter session end to end over a real socket, driven by the project's own milter client.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { silentLogger } from '../../src/ops/logging.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { modify, pass, reject, type Rule } from '../../src/policy/types.js';
import { Action, Cmd, MAX_BODY_CHUNK, Proto } from '../../src/protocol/constants.js';
import { MilterServer } from '../../src/session/server.js';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';

const POLICY = `
local_domains: [example.test]
networks: { internal: [127.0.0.0/8] }
server: { progress_interval: 50ms, deadlines: { connect: 2s, envelope: 2s, content: 5s } }
rules:
  trace_header: { mode: enforce, header: X-Relayguard }
`;

const BIG = Buffer.alloc(200_000, 'x');
const SMALL = Buffer.from('a new body\r\n');
/** Subjects of the messages testRule was told had ended (onMessageEnd), in order. */
const ended: string[] = [];

/** Test rules: refuse one recipient, replace the body on request, be slow on request. */
const testRule: Rule = {
  name: 'test_rule',
  mode: 'enforce',
  needs: { actions: ['replaceBody'] },
  onMessageEnd(_conn, msg) {
    ended.push(msg.headers.find((h) => h.name.toLowerCase() === 'subject')?.value ?? '(no subject)');
  },
  handlers: {
    async envrcpt({ rcpt }) {
      return rcpt.address.local === 'refuse' ? reject('no such user here', { code: 550, enhanced: '5.1.1' }) : pass();
    },
    async eom({ msg }) {
      const subject = msg.headers.find((h) => h.name.toLowerCase() === 'subject')?.value ?? '';
      if (subject.includes('slow')) await new Promise((r) => setTimeout(r, 300));
      if (subject.includes('small body'))
        return modify([{ type: 'replaceBody', body: { size: SMALL.length, stream: () => Readable.from([SMALL]) } }]);
      if (subject.includes('replace'))
        return modify([{ type: 'replaceBody', body: { size: BIG.length, stream: () => Readable.from([BIG]) } }]);
      return pass();
    },
  },
};

let server: MilterServer;
let port: number;

before(async () => {
  const r = parsePolicyText(POLICY, 'test.yaml');
  assert.ok(r.ok);
  const policy = new CompiledPolicy(r.config, 'test.yaml', silentLogger(), { extraRules: [testRule] });
  port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
  server = new MilterServer(policy, {
    listen: { kind: 'inet', host: '127.0.0.1', port },
    maxConnections: 10,
    log: silentLogger(),
  });
  await server.start();
});

after(async () => {
  await server.close(100);
});

async function startMessage(c: TestMilterClient, subject: string) {
  c.macro('M', '{mail_addr}', 'a@example.test');
  c.mail('<a@example.test>', 'SIZE=100');
  assert.equal((await c.next()).code, 'c');
  c.rcpt('<b@example.test>');
  assert.equal((await c.next()).code, 'c');
  c.macro('T', 'i', 'QID123');
  c.data();
  assert.equal((await c.next()).code, 'c');
  c.header('Subject', ` ${subject}`);
  c.header('From', ' a@example.test');
  c.eoh();
  assert.equal((await c.next()).code, 'c', 'headers get no reply (NR_HDR), EOH does');
  c.body('hello\r\n');
  assert.equal((await c.next()).code, 'c');
}

async function opened(): Promise<TestMilterClient> {
  const c = await TestMilterClient.open(port);
  await c.negotiate();
  c.macro('C', 'j', 'mx.test');
  c.connectCmd('localhost', '127.0.0.1');
  assert.equal((await c.next()).code, 'c');
  c.helo('client.test');
  assert.equal((await c.next()).code, 'c');
  return c;
}

describe('milter session', () => {
  it('negotiates an intersection, LEADSPC, NR_HDR and per-stage macros', async () => {
    const c = await TestMilterClient.open(port);
    const n = await c.negotiate(Action.ADDHDRS | Action.CHGBODY | Action.SETSYMLIST | Action.QUARANTINE, 0x1fffff);
    assert.equal(n.version, 6);
    assert.equal(
      n.actions & ~(Action.ADDHDRS | Action.CHGBODY | Action.SETSYMLIST | Action.QUARANTINE),
      0,
      'never more than offered',
    );
    assert.ok(n.actions & Action.ADDHDRS);
    assert.ok(n.protocol & Proto.HDR_LEADSPC);
    assert.ok(n.protocol & Proto.NR_HDR);
    assert.equal(n.protocol & Proto.NR_RCPT, 0, 'recipients can be refused');
    const lists = n.rest.toString('latin1');
    assert.match(lists, /\{client_addr\}/);
    assert.match(lists, /\{auth_authen\}/);
    c.close();
  });

  it('never asks for a protocol bit the MTA did not offer', async () => {
    const c = await TestMilterClient.open(port);
    const n = await c.negotiate(0x1ff, Proto.NOUNKNOWN);
    assert.equal(n.protocol & ~Proto.NOUNKNOWN, 0);
    c.close();
  });

  it('adds the trace header at end of message and handles several messages per connection', async () => {
    const c = await opened();
    for (let i = 0; i < 3; i++) {
      await startMessage(c, `message ${i}`);
      c.macro('E', 'i', `QID${i}`);
      c.eom();
      const replies = await c.until();
      assert.deepEqual(
        replies.map((r) => r.code),
        ['h', 'c'],
      );
      const [name, value] = replies[0]!.payload.toString('utf8').split('\0');
      assert.equal(name, 'X-Relayguard');
      assert.match(value!, /^ direction=outbound; conn=[0-9a-f]+; queue-id=QID/);
      c.abort();
      c.abort(); // Postfix sends ABORT twice at the end: idempotent
    }
    c.quit();
  });

  it('tells rules once that a message ended: by end of message, ABORT, or a dropped connection', async () => {
    ended.length = 0;
    const c = await opened();
    await startMessage(c, 'ends-by-eom');
    c.eom();
    await c.until();
    c.abort();
    c.abort();
    await startMessage(c, 'ends-by-abort');
    c.abort();
    await startMessage(c, 'ends-by-disconnect');
    c.close();
    const deadline = Date.now() + 2000;
    // Other tests' connections may still be ending: look at this test's messages only.
    const mine = () => ended.filter((s) => s.startsWith('ends-by-'));
    while (mine().length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50)); // a second call would show up now
    assert.deepEqual(mine(), ['ends-by-eom', 'ends-by-abort', 'ends-by-disconnect']);
  });

  it('refuses one recipient with its own reply and a reference, others pass', async () => {
    const c = await opened();
    c.mail('<a@example.test>');
    assert.equal((await c.next()).code, 'c');
    c.rcpt('<refuse@example.test>');
    const r = await c.next();
    assert.equal(r.code, 'y');
    assert.match(r.payload.toString('latin1'), /^550 5\.1\.1 no such user here \(ref [0-9a-f]+-[0-9a-z]+\)\0$/);
    c.rcpt('<ok@example.test>');
    assert.equal((await c.next()).code, 'c');
    c.close();
  });

  it('replaces a body over 64 KiB in chunks of at most 65535 bytes sent back to back', async () => {
    const c = await opened();
    await startMessage(c, 'please replace');
    c.eom();
    const replies = await c.until();
    const codes = replies.map((r) => r.code).join('');
    assert.match(codes, /^hb{4}c$/, `got ${codes}`);
    const bodies = replies.filter((r) => r.code === 'b');
    assert.ok(bodies.every((b) => b.payload.length <= MAX_BODY_CHUNK));
    assert.deepEqual(Buffer.concat(bodies.map((b) => b.payload)), BIG);
    c.close();
  });

  it('sends a small new body between the header edits and the final reply (queued into one write)', async () => {
    const c = await opened();
    await startMessage(c, 'a small body');
    c.eom();
    const replies = await c.until();
    assert.equal(replies.map((r) => r.code).join(''), 'hbc');
    assert.deepEqual(replies[1]!.payload, SMALL);
    c.close();
  });

  it('sends PROGRESS while a slow end-of-message rule works', async () => {
    const c = await opened();
    await startMessage(c, 'slow please');
    c.eom();
    const seen: string[] = [];
    // Read raw frames including progress.
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      const f = (c as unknown as { frames: Array<{ command: number }> }).frames.shift();
      if (!f) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      seen.push(String.fromCharCode(f.command));
      if (f.command === 0x63) break;
    }
    assert.ok(seen.filter((x) => x === 'p').length >= 2, `progress frames: ${seen.join('')}`);
    assert.equal(seen[seen.length - 1], 'c');
    c.close();
  });

  it('QUIT_NC keeps the socket for a new connection without a new negotiation', async () => {
    const c = await opened();
    c.send(Cmd.QUIT_NC);
    c.connectCmd('other', '127.0.0.2');
    assert.equal((await c.next()).code, 'c');
    c.helo('again');
    assert.equal((await c.next()).code, 'c');
    c.close();
  });

  it('closes only the offending connection on a malformed frame', async () => {
    const good = await opened();
    for (const bad of [
      Buffer.from([0, 0, 0, 0]),
      Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x42]),
      Buffer.from([0, 0, 0, 1, 0x5a]),
    ]) {
      const c = await TestMilterClient.open(port);
      await c.negotiate();
      c.socket.write(bad);
      await assert.rejects(c.next(2000), /connection closed/);
    }
    // The other connection still works.
    good.mail('<a@example.test>');
    assert.equal((await good.next()).code, 'c');
    good.close();
  });
});

describe('resource bounds', () => {
  it('refuses a header flood at end of headers and keeps the connection usable', async () => {
    const r = parsePolicyText('server: { max_headers: 5 }\nrules: { trace_header: { mode: enforce } }', 'limits.yaml');
    assert.ok(r.ok);
    const policy = new CompiledPolicy(r.config, 'limits.yaml', silentLogger());
    const p = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
    const s = new MilterServer(policy, {
      listen: { kind: 'inet', host: '127.0.0.1', port: p },
      maxConnections: 5,
      log: silentLogger(),
    });
    await s.start();
    try {
      const c = await TestMilterClient.open(p);
      await c.negotiate();
      c.connectCmd('x', '203.0.113.9');
      await c.next();
      c.mail('<a@outside.test>');
      await c.next();
      c.rcpt('<b@example.test>');
      await c.next();
      for (let i = 0; i < 20; i++) c.header(`X-H${i}`, ' v');
      c.eoh();
      const rep = await c.next();
      assert.equal(rep.code, 'y');
      assert.match(rep.payload.toString(), /^552 5\.3\.4 Message header too large/);
      c.abort();
      c.mail('<a@outside.test>');
      assert.equal((await c.next()).code, 'c', 'the next message starts clean');
      c.close();
    } finally {
      await s.close(100);
    }
  });
});
