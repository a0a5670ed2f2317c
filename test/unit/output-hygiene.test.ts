// Issue 16, findings 8 and 9: what a client sends cannot forge a header field, a log line or a
// terminal escape; the state database is not world-readable; offline `check` keeps the bytes of
// a `binary` attachment.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { captureOutput } from '../support/capture-output.js';
import { offendersCommand } from '../../src/cli/offenders.js';
import { heldSummaryLines, printHeldRows, type Ctx } from '../../src/cli/quarantine-common.js';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { createOffenderLedger } from '../../src/deps/offender-ledger.js';
import { QuarantineStore } from '../../src/deps/quarantine-store.js';
import { stateDbPath } from '../../src/deps/state-file.js';
import { createLogger, silentLogger } from '../../src/ops/logging.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { headerSafe, showable } from '../../src/primitives/safe-text.js';
import { applyModifications, splitMessage } from '../../src/session/offline-message.js';
import { MilterServer } from '../../src/session/server.js';
import { MilterClient as TestMilterClient } from '../../src/audit/milter-client.js';

const dir = mkdtempSync(join(tmpdir(), 'rg-hygiene-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('header values', () => {
  it('headerSafe keeps folding and turns any other line break into a space', () => {
    assert.equal(headerSafe('queue-id=QID1\nBcc: victim@evil.test'), 'queue-id=QID1 Bcc: victim@evil.test');
    assert.equal(headerSafe('a\r\nBcc: x'), 'a Bcc: x');
    assert.equal(headerSafe('a\rBcc: x'), 'a Bcc: x');
    assert.equal(headerSafe('long value\r\n\tcontinued'), 'long value\r\n\tcontinued');
    assert.equal(headerSafe('a\x00b\x1b[31mc\x7f'), 'ab[31mc');
  });

  it('a newline in the queue-id macro does not add a Bcc header (the trace header, through the milter)', async () => {
    const r = parsePolicyText(
      'local_domains: [example.test]\nnetworks: { internal: [127.0.0.0/8] }\nrules:\n  trace_header: { mode: enforce, header: X-Relayguard }\n',
      'h.yaml',
    );
    assert.ok(r.ok);
    const port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
    const server = new MilterServer(new CompiledPolicy(r.config, 'h.yaml', silentLogger()), {
      listen: { kind: 'inet', host: '127.0.0.1', port },
      maxConnections: 5,
      log: silentLogger(),
    });
    await server.start();
    const c = await TestMilterClient.open(port);
    try {
      await c.negotiate();
      c.connectCmd('host.example', '127.0.0.1');
      await c.next();
      c.mail('<a@example.test>');
      await c.next();
      c.rcpt('<b@example.test>');
      await c.next();
      c.macro('T', 'i', 'QID1\nBcc: victim@evil.test');
      c.data();
      await c.next();
      c.header('Subject', 'x');
      c.eoh();
      await c.next();
      c.body('hi\r\n');
      await c.next();
      c.eom();
      const replies = await c.until('acdrty');
      const added = replies
        .filter((f) => f.code === 'h' || f.code === 'i')
        .map((f) => (f.code === 'i' ? f.payload.subarray(4) : f.payload).toString('latin1').split('\0'));
      assert.equal(added.length, 1);
      assert.equal(added[0]![0], 'X-Relayguard');
      assert.doesNotMatch(added[0]![1]!, /[\r\n]/);
      assert.match(added[0]![1]!, /queue-id=QID1 Bcc: victim@evil\.test/);
    } finally {
      c.close();
      await server.close(50);
    }
  });
});

describe('log lines', () => {
  function logged(format: 'text' | 'json', write: (log: ReturnType<typeof createLogger>) => void): string {
    const stream = new PassThrough();
    let out = '';
    stream.on('data', (d: Buffer) => (out += d.toString()));
    const log = createLogger({ format }, stream);
    write(log);
    return out;
  }

  it('text format: a newline in a MAIL FROM cannot forge a line, ESC is shown, not sent', async () => {
    const out = logged('text', (log) =>
      log
        .child({ conn: 'c1', qid: 'Q\n2026 error: forged' })
        .info('mail from <evil@x.test>\n2026-01-01 error: forged line \x1b[2J', { from: 'a\rb\u2028c' }),
    );
    await new Promise((r) => setImmediate(r));
    const lines = out.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, out);
    assert.match(lines[0]!, /mail from <evil@x\.test>\\n2026-01-01 error: forged line \\x1b\[2J/);
    assert.match(lines[0]!, /from="?a\\rb\\u2028c"?/);
    // The queue id leads the line (Postfix's shape), escaped like the rest.
    assert.match(lines[0]!, /Q\\n2026 error: forged: /);
    assert.doesNotMatch(out, /\x1b/);
  });

  it('JSON format: one line, control characters escaped', async () => {
    const out = logged('json', (log) => log.info('rcpt <\x1b]0;owned\x07@x.test>\nforged'));
    await new Promise((r) => setImmediate(r));
    assert.equal(out.trim().split('\n').length, 1);
    assert.doesNotMatch(out, /[\x1b\x07]/);
  });

  it('showable escapes every control character and keeps the rest', () => {
    assert.equal(showable('a\tb\x00\x9b\u2029ü€'), 'a\\tb\\x00\\x9b\\u2029ü€');
  });
});

describe('terminal: relayguard offenders', () => {
  it('escape sequences in a recorded reason do not reach the terminal', async () => {
    const stateDir = join(dir, 'offenders');
    const policyFile = join(dir, 'offenders.yaml');
    writeFileSync(policyFile, `server:\n  state_dir: ${stateDir}\nrules:\n  offenders:\n    threshold: 2\n`);
    const ledger = createOffenderLedger({ state_dir: stateDir }, { threshold: 2, window: 300_000, ban: 3_600_000 });
    await ledger.record('203.0.113.7', 'rejection', 'relay: <\x1b[2J\x1b]0;pwned\x07x@evil.test>\nforged row');
    await ledger.close();
    const { value: code, out } = await captureOutput(() => offendersCommand.run(['--config', policyFile]));
    assert.equal(code, 0);
    assert.doesNotMatch(out, /[\x1b\x07]/);
    assert.match(out, /relay: <\\x1b\[2J\\x1b\]0;pwned\\x07x@evil\.test>\\nforged row/);
  });
});

describe('terminal: relayguard quarantine list and show', () => {
  it('an escape sequence in a held sender or reason is shown escaped', async () => {
    const row = {
      queue_id: 'ABC123',
      arrival_time: new Date(0).toISOString(),
      size: 10,
      sender: 'x\x1b[2J@evil.test',
      recipients: ['a\nforged@x.test'],
      rule: 'content',
      reason: 'r\x9b31m',
      direction: 'inbound',
      ref: null,
    };
    const { out } = await captureOutput(() =>
      printHeldRows({ json: false } as unknown as Ctx, [row], { empty: '', noun: 'on hold', unknownWhy: () => '' }),
    );
    const shown = out + heldSummaryLines(row, 'hold queue', new Date(0)).join('\n');
    assert.doesNotMatch(shown, /[\x1b\x9b]/);
    assert.match(out, /from <x\\x1b\[2J@evil\.test> to <a\\nforged@x\.test>/);
    assert.equal(out.split('\n').filter(Boolean).length, 3, 'two lines per message and the count');
  });
});

describe('state files', () => {
  it('the SQLite state database and its WAL files are not world-readable', async () => {
    const old = process.umask(0o022);
    try {
      const stateDir = join(dir, 'state');
      const ledger = createOffenderLedger({ state_dir: stateDir }, { threshold: 2, window: 300_000, ban: 3_600_000 });
      await ledger.record('203.0.113.8', 'expn', 'EXPN');
      const q = QuarantineStore.open(stateDir);
      const path = stateDbPath(stateDir);
      for (const f of [path, `${path}-wal`, `${path}-shm`]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
      assert.equal(statSync(stateDir).mode & 0o007, 0, 'the directory is closed to others');
      q.close();
      await ledger.close();
    } finally {
      process.umask(old);
    }
  });
});

describe('offline check', () => {
  it('a bare LF inside a binary attachment stays a bare LF; text lines get CRLF', async () => {
    const data = Buffer.from('BIN\x00\x01\nline\r\nmore\r\x02end', 'latin1');
    const eml = Buffer.concat([
      Buffer.from(
        'From: a@example.test\nTo: b@example.test\nSubject: bin\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="XX"\n\n--XX\nContent-Type: text/plain\n\nhello\nworld\n--XX\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n',
        'latin1',
      ),
      data,
      Buffer.from('\n--XX--\n', 'latin1'),
    ]);
    const { headers, body } = splitMessage(eml);
    assert.equal(headers.length, 5);
    const text = body.toString('latin1');
    assert.ok(text.includes('hello\r\nworld\r\n--XX\r\n'), JSON.stringify(text));
    assert.ok(text.includes(`\r\n\r\n${data.toString('latin1')}\r\n--XX--\r\n`), JSON.stringify(text));
    const out = await applyModifications(headers, body, []);
    assert.ok(out.includes(data), 'the delivered message carries the attachment bytes unchanged');
  });

  it('a whole binary body stays as it is', () => {
    const eml = Buffer.from('Subject: x\nContent-Transfer-Encoding: binary\n\na\nb\r\nc', 'latin1');
    assert.equal(splitMessage(eml).body.toString('latin1'), 'a\nb\r\nc');
  });
});
