// Log lines as admins read them: sd-daemon priority prefixes under the journal (so journalctl -p
// works), decisions in the shape of Postfix's own reject lines, and `auto` choosing text on a
// terminal and under the journal. The journal test runs a real child process whose stderr is
// (or is not) the stream JOURNAL_STREAM names.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../src/ops/logging.js';

function capture(settings: Parameters<typeof createLogger>[0], target: Parameters<typeof createLogger>[2]) {
  const sink = new PassThrough();
  let text = '';
  sink.on('data', (c: Buffer) => (text += c.toString()));
  const log = createLogger(settings, sink, target);
  return { log, lines: () => text.split('\n').filter(Boolean) };
}

const DECISION = {
  qid: '4dX9kT2b1Qz',
  phase: 'envrcpt',
  action: 'reject',
  client: '203.0.113.9',
  client_name: 'mail.outside.test',
  ref: '3b9bb212-1',
  rule: 'relay',
  reason: 'Relay access denied',
  reply: '554 5.7.1',
  direction: 'inbound',
  from: 'a@outside.test',
  rcpt: ['x@elsewhere.test'],
  trace: [
    { rule: 'relay', phase: 'envrcpt', action: 'reject' },
    { rule: 'size', phase: 'envrcpt', action: 'continue' },
    { rule: 'content', phase: 'envrcpt', action: 'reject', monitor: true },
  ],
};

const dir = mkdtempSync(join(tmpdir(), 'rg-logging-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('logging', () => {
  it('under the journal every line starts with its priority: <3> error, <4> warning, <6> info, <7> debug', () => {
    for (const format of ['json', 'text'] as const) {
      const { log, lines } = capture({ format, level: 'debug' }, { journal: true });
      log.error('e');
      log.warn('w');
      log.info('i\nsecond line');
      log.debug('d');
      const got = lines();
      assert.equal(got.length, 4, got.join('\n')); // the line break in a message does not split it
      assert.deepEqual(
        got.map((l) => l.slice(0, 3)),
        ['<3>', '<4>', '<6>', '<7>'],
        format,
      );
    }
  });

  it('no prefix, and JSON lines, off the journal and off a terminal', () => {
    const { log, lines } = capture({ format: 'auto' }, { journal: false, tty: false });
    log.warn('w');
    assert.equal((JSON.parse(lines()[0]!) as { level: string }).level, 'warn');
  });

  it('auto picks text on a terminal and under the journal, without a time stamp under the journal', () => {
    const tty = capture({ format: 'auto' }, { journal: false, tty: true });
    tty.log.warn('disk full');
    assert.match(tty.lines()[0]!, /^\d{4}-\d\d-\d\dT\S+ warning: disk full$/);
    const journal = capture({ format: 'auto' }, { journal: true, tty: false });
    journal.log.warn('disk full');
    assert.equal(journal.lines()[0], '<4>warning: disk full');
  });

  it('text decisions read like Postfix reject lines', () => {
    const { log, lines } = capture({ format: 'text' }, { journal: true });
    log.info('decision reject ref=3b9bb212-1', { conn: '3b9bb212', ...DECISION });
    assert.equal(
      lines()[0],
      '<6>4dX9kT2b1Qz: reject: RCPT from mail.outside.test[203.0.113.9]: 554 5.7.1 Relay access denied; from=<a@outside.test> to=<x@elsewhere.test> direction=inbound rule=relay ref=3b9bb212-1 trace=relay:reject,content:would-reject conn=3b9bb212',
    );
    log.info('decision reject ref=3b9bb212-2', {
      conn: '3b9bb212',
      phase: 'connect',
      action: 'reject',
      client: '192.0.2.7',
      reply: '554 5.7.1',
      reason: 'denied network',
      ref: '3b9bb212-2',
      rule: 'access',
    });
    assert.equal(
      lines()[1],
      '<6>NOQUEUE: reject: CONNECT from unknown[192.0.2.7]: 554 5.7.1 denied network; rule=access ref=3b9bb212-2 conn=3b9bb212',
    );
    log.warn('clamd unreachable', { qid: '4dX9kT2b1Qz', conn: 'c1', address: 'tcp:127.0.0.1:3310' });
    assert.equal(lines()[2], '<4>warning: 4dX9kT2b1Qz: clamd unreachable address=tcp:127.0.0.1:3310');
  });

  it('detects the journal only when stderr is the stream JOURNAL_STREAM names', () => {
    const logging = fileURLToPath(new URL('../../src/ops/logging.js', import.meta.url));
    const script = `import(${JSON.stringify(logging)}).then((m) => { const l = m.createLogger({ format: 'auto' }); l.warn('to the journal?'); });`;
    const file = join(dir, 'stderr.txt');
    const other = join(dir, 'other.txt');
    for (const [stderrFile, named, prefixed] of [
      [file, file, true],
      [file, other, false],
    ] as const) {
      const fd = openSync(stderrFile, 'w');
      const nfd = openSync(named, 'a');
      const st = fstatSync(nfd);
      closeSync(nfd);
      execFileSync(process.execPath, ['-e', script], {
        stdio: ['ignore', 'ignore', fd],
        env: { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` },
      });
      closeSync(fd);
      const out = readFileSync(stderrFile, 'utf8');
      if (prefixed) assert.equal(out, '<4>warning: to the journal?\n');
      else assert.equal((JSON.parse(out) as { message: string }).message, 'to the journal?');
    }
  });
});
