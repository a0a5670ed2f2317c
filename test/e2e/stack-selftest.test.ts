// Proves the test stack itself before any rule is judged by it: every part answers as the
// reference gateway describes, and the harness reads Postfix, smtp-sink and the maillog right.
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  eicar,
  encodeData,
  ensureStack,
  fixturesDir,
  message,
  parseSinkFile,
  pollUntil,
  portAccepts,
  postconf,
  postconfValue,
  run,
  smtp,
  stack,
  sinkFileOf,
  stackScript,
  startRelayguard,
  waitForDelivery,
  waitForMaillog,
  xtext,
  type RelayguardProcess,
} from './harness.js';

const CLAMD_TIMEOUT_MS = 5_000;
/** clamd INSTREAM: 4-byte big-endian length before every chunk, a zero length at the end. */
const INSTREAM_CHUNK = 64 * 1024;

/** Sends one z-command to the stack's clamd (and `data` as INSTREAM chunks); clamd's answer. */
function clamd(command: string, data?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: stack.clamdPort });
    const chunks: Buffer[] = [];
    s.setTimeout(CLAMD_TIMEOUT_MS, () =>
      s.destroy(new Error(`clamd ${command}: no answer within ${CLAMD_TIMEOUT_MS} ms`)),
    );
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1').replace(/\0/g, '').trim()));
    s.on('connect', () => {
      s.write(`z${command}\0`);
      if (data) {
        for (let off = 0; off < data.length; off += INSTREAM_CHUNK) {
          const piece = data.subarray(off, off + INSTREAM_CHUNK);
          const len = Buffer.alloc(4);
          len.writeUInt32BE(piece.length);
          s.write(len);
          s.write(piece);
        }
        s.write(Buffer.alloc(4));
      }
    });
  });
}

function resolver(): Resolver {
  const r = new Resolver({ timeout: 2_000, tries: 1 });
  r.setServers([stack.dnsServer]);
  return r;
}

before(() => ensureStack());

test('the harness derives the same ports and paths as stack.sh env', async () => {
  const r = await run('bash', [stackScript, 'env'], { env: { ...process.env, RG_E2E_SLOT: String(stack.slot) } });
  assert.equal(r.code, 0, r.stderr);
  const env = Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string]),
  );
  assert.equal(Number(env.RG_E2E_SMTPD_PORT), stack.smtpPort);
  assert.equal(Number(env.RG_E2E_SINK_PORT), stack.sinkPort);
  assert.equal(Number(env.RG_E2E_MILTER_PORT), stack.milterPort);
  assert.equal(Number(env.RG_E2E_CLAMD_PORT), stack.clamdPort);
  assert.equal(Number(env.RG_E2E_RBL_PORT), stack.rblPort);
  assert.equal(Number(env.RG_E2E_METRICS_PORT), stack.metricsPort);
  assert.equal(Number(env.RG_E2E_REDIS_PORT), stack.redisPort);
  assert.equal(env.RG_E2E_PF_CONF, stack.postfixConfigDir);
  assert.equal(env.RG_E2E_MAILLOG, stack.maillog);
  assert.equal(env.RG_E2E_SINK_DIR, stack.sinkDir);
  if (stack.slot === 0) {
    assert.deepEqual(
      [stack.smtpPort, stack.sinkPort, stack.milterPort, stack.clamdPort, stack.rblPort],
      [2525, 2526, 10025, 3310, 5353],
    );
  }
});

test('Postfix greets on its smtpd port and runs the reference gateway settings', async () => {
  const banner = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: stack.smtpPort });
    s.setTimeout(5_000, () => s.destroy(new Error('no greeting')));
    s.once('data', (d: Buffer) => (resolve(d.toString('latin1')), s.destroy()));
    s.once('error', reject);
  });
  assert.match(banner, /^220 mx\.e2e\.test ESMTP/);
  const expected: Record<string, string> = {
    smtpd_milters: `inet:127.0.0.1:${stack.milterPort}`,
    milter_protocol: '6',
    milter_default_action: 'tempfail',
    smtpd_authorized_xclient_hosts: '127.0.0.0/8',
    relay_domains: 'example.test',
    mynetworks: '127.0.0.0/8',
    message_size_limit: '10240000',
    relayhost: `[127.0.0.1]:${stack.sinkPort}`,
    smtpd_tls_security_level: 'may',
    smtpd_sasl_auth_enable: 'yes',
    disable_vrfy_command: 'yes',
  };
  for (const [name, value] of Object.entries(expected)) assert.equal(await postconfValue(name), value, name);
});

test('clamd answers PING and finds the EICAR test file, raw and inside a message', async () => {
  assert.equal(await clamd('PING'), 'PONG');
  assert.match(await clamd('INSTREAM', Buffer.from(eicar())), /^stream: RG\.Test\.EICAR-(NDB|HDB)\.UNOFFICIAL FOUND$/);
  const mail = message({
    from: 'a@outside.test',
    to: 'b@example.test',
    body: 'see attachment',
    attachments: [{ filename: 'test.txt', content: eicar() }],
  });
  assert.match(await clamd('INSTREAM', Buffer.from(mail)), /FOUND$/);
  assert.equal(await clamd('INSTREAM', Buffer.from('a perfectly clean message\r\n')), 'stream: OK');
});

test('rbldnsd serves the reference zones bl.test and dbl.test', async () => {
  const dns = resolver();
  assert.deepEqual(await dns.resolve4('2.0.0.127.bl.test'), ['127.0.0.2']);
  assert.deepEqual(await dns.resolve4('66.113.0.203.bl.test'), ['127.0.0.2']);
  const txt = (await dns.resolveTxt('66.113.0.203.bl.test')).map((parts) => parts.join(''));
  assert.ok(
    txt.some((t) => /203\.0\.113\.66/.test(t)),
    `TXT reason names the IP: ${JSON.stringify(txt)}`,
  );
  // A Spamhaus-style error answer, which is not a listing.
  assert.deepEqual(await dns.resolve4('4.0.0.127.bl.test'), ['127.255.255.254']);
  assert.deepEqual(await dns.resolve4('spam.example.dbl.test'), ['127.0.1.2']);
  await assert.rejects(dns.resolve4('9.113.0.203.bl.test'), { code: 'ENOTFOUND' });
  await assert.rejects(dns.resolve4('outside.test.dbl.test'), { code: 'ENOTFOUND' });
});

test('redis answers PING on the slot port', async () => {
  const reply = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: stack.redisPort }, () => s.write('PING\r\n'));
    s.setTimeout(3_000, () => s.destroy(new Error('no PONG')));
    s.once('data', (d: Buffer) => (resolve(d.toString('latin1')), s.destroy()));
    s.once('error', reject);
  });
  assert.equal(reply, '+PONG\r\n');
});

test('smtp-sink writes one file per message, and the harness strips its header block', async () => {
  const marker = `sink-selftest-${Date.now()}`;
  const body = `Subject: ${marker}\r\n\r\nline one\r\n.leading dot\r\n`;
  const r = await smtp({
    port: stack.sinkPort,
    from: 'a@e2e.test',
    to: ['b@example.test', 'c@example.test'],
    data: body,
  });
  assert.equal(r.dataReply?.code, 250, JSON.stringify(r.replies));
  const found = await pollUntil(
    () => {
      for (const name of readdirSync(stack.sinkDir)) {
        const raw = readFileSync(join(stack.sinkDir, name));
        if (raw.includes(marker)) return raw;
      }
      return undefined;
    },
    5_000,
    `a sink file with ${marker}`,
  );
  const d = parseSinkFile(found);
  assert.deepEqual(d.rcpts, ['b@example.test', 'c@example.test']);
  assert.equal(d.mailFrom, 'a@e2e.test');
  assert.equal(d.message, body.replace(/\r\n/g, '\n'), 'smtp-sink strips CR and un-stuffs dots; nothing else changes');
});

test('the SMTP client encodes data and XCLIENT values as SMTP wants them', () => {
  assert.equal(encodeData('a\n.b\r\nc').toString(), 'a\r\n..b\r\nc\r\n.\r\n');
  assert.equal(encodeData(Buffer.from([0xe9, 0x0a])).toString('latin1'), '\xe9\r\n.\r\n');
  assert.equal(xtext('[UNAVAILABLE]'), '[UNAVAILABLE]');
  assert.equal(xtext('a b+c=d'), 'a+20b+2Bc+3Dd');
});

test('without relayguard, Postfix refuses mail with 451 4.7.1 (milter_default_action = tempfail)', async () => {
  assert.equal(await portAccepts(stack.milterPort), false, `something listens on the milter port ${stack.milterPort}`);
  const r = await smtp({
    from: 'a@outside.test',
    to: ['b@example.test'],
    data: 'Subject: x\r\n\r\nx\r\n',
    xclient: { addr: '203.0.113.9' },
  });
  assert.equal(r.banner?.code, 220);
  assert.equal(r.mailReply?.code, 451, r.mailReply?.full);
  assert.equal(r.mailReply?.enhanced, '4.7.1');
  assert.equal(r.rcptReplies.length, 0, 'the client stops after a refused MAIL');
  assert.equal(r.ok, false);
});

let rg: RelayguardProcess | undefined;
after(async () => {
  await rg?.stop();
});

test('a message goes through Postfix and relayguard to the sink; postconf() changes Postfix for one test', async () => {
  rg = await startRelayguard({ config: join(fixturesDir, 'miltertest.yaml') });
  await rg.waitForLog(/listening on/);
  const text = message({
    from: 'sender@outside.test',
    to: 'bob@example.test',
    subject: 'selftest',
    body: 'first\n.dot line\nlast\n',
  });
  const r = await smtp({
    from: 'sender@outside.test',
    to: ['bob@example.test', 'x@elsewhere.test'],
    data: text,
    xclient: { addr: '203.0.113.9' },
  });
  assert.equal(r.rcptReplies[0]?.code, 250, r.rcptReplies[0]?.full);
  assert.equal(r.rcptReplies[1]?.code, 554, r.rcptReplies[1]?.full);
  assert.ok(r.ok && r.queueId, JSON.stringify(r.replies.map((x) => x.full)));
  const delivered = await waitForDelivery(r.queueId);
  assert.match(delivered, /^Received: from client\.e2e\.test \(unknown \[203\.0\.113\.9\]\)/);
  assert.match(
    delivered,
    new RegExp(`^X-Relayguard: direction=inbound; conn=\\S+; queue-id=${r.queueId}; host=mx\\.e2e\\.test$`, 'm'),
  );
  assert.ok(delivered.endsWith('\n\nfirst\n.dot line\nlast\n'), delivered);
  await waitForMaillog(new RegExp(`${r.queueId}: to=<bob@example\\.test>.*status=sent`), 1_000);

  const restore = await postconf({ smtpd_banner: '$myhostname ESMTP relayguard-selftest' });
  try {
    const changed = await smtp({ from: 'a@example.test', to: ['b@example.test'], data: 'Subject: y\r\n\r\ny\r\n' });
    assert.equal(changed.banner?.full, '220 mx.e2e.test ESMTP relayguard-selftest');
    assert.equal(changed.ok, true, 'an internal client (127.0.0.1) may send');
  } finally {
    await restore();
  }
  assert.equal(readFileSync(stack.mainCf, 'utf8'), readFileSync(stack.mainCfBaseline, 'utf8'));
  const back = await smtp({ from: 'a@example.test', to: ['b@example.test'], data: 'Subject: z\r\n\r\nz\r\n' });
  assert.equal(back.banner?.full, '220 mx.e2e.test ESMTP Postfix');
});

test("a queue id an older message had is not mistaken for it (Postfix's short ids come back)", async () => {
  const marker = `reused-id-${Date.now()}`;
  const r = await smtp({ from: 'a@example.test', to: ['b@example.test'], data: `Subject: ${marker}\r\n\r\nfresh\r\n` });
  assert.ok(r.ok && r.queueId, JSON.stringify(r.replies.map((x) => x.full)));
  await waitForDelivery(r.queueId);
  const real = sinkFileOf(r.queueId, Date.now() - 60_000);
  assert.ok(real);
  // An older message that had the same id, as a slot's sink directory keeps them from earlier
  // runs: smtp-sink names its files by the time, so it is listed first.
  const older = join(stack.sinkDir, `20000101000000.${marker}`);
  const dayAgo = new Date(Date.now() - 86_400_000);
  try {
    writeFileSync(older, readFileSync(real).toString('latin1').replace('fresh', 'OLDER'), 'latin1');
    utimesSync(older, dayAgo, dayAgo);
    const delivered = await waitForDelivery(r.queueId);
    assert.match(delivered, new RegExp(`^Subject: ${marker}$`, 'm'));
    assert.ok(delivered.endsWith('\n\nfresh\n'), delivered);
    assert.equal(sinkFileOf(r.queueId, Date.now() + 60_000), undefined, 'nothing from the future');
  } finally {
    rmSync(older, { force: true });
  }
});
