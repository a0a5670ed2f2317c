// The antivirus rule with a fake scanner: what it streams, when, and which verdict each scan
// result gives per direction and configuration.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { antivirusSchema, createAntivirusRule, UNSCANNED_TEMPFAIL, VIRUS_REJECT } from '../../src/rules/antivirus.js';
import type { ScanErrorReason, ScanResult, ScanSession, Scanner } from '../../src/deps/clamd.js';
import type { Direction, Phase, PhaseHandler, Rule, Verdict } from '../../src/policy/types.js';
import { kitConnection, kitMessage } from '../support/rule-kit.js';

class FakeSession implements ScanSession {
  data: Buffer[] = [];
  ended = false;
  aborted: ScanErrorReason | null = null;
  settled = false;
  done: Promise<ScanResult>;
  private resolve!: (r: ScanResult) => void;
  constructor(private readonly result: () => ScanResult) {
    this.done = new Promise((r) => (this.resolve = r));
  }
  get bytes() {
    return this.data.reduce((n, b) => n + b.length, 0);
  }
  async write(chunk: Buffer) {
    if (!this.settled) this.data.push(Buffer.from(chunk));
  }
  async end() {
    this.ended = true;
    this.settled = true;
    const r = this.aborted ? ({ status: 'error', reason: this.aborted } as ScanResult) : this.result();
    this.resolve(r);
    return r;
  }
  abort(reason: ScanErrorReason = 'aborted') {
    this.aborted = reason;
    this.settled = true;
  }
}

class FakeScanner implements Scanner {
  readonly name = 'fake';
  up = true;
  sessions: FakeSession[] = [];
  /** Results handed out in order; the last one repeats. */
  results: ScanResult[] = [{ status: 'clean' }];
  async available() {
    return this.up;
  }
  instream(): ScanSession {
    const i = this.sessions.length;
    const s = new FakeSession(() => this.results[Math.min(i, this.results.length - 1)]!);
    this.sessions.push(s);
    return s;
  }
}

function makeRule(yaml: Record<string, unknown>, scanner: FakeScanner): Rule {
  const config = antivirusSchema.parse({ clamd: { address: 'tcp:127.0.0.1:3310' }, ...yaml });
  return createAntivirusRule(config, scanner);
}

const HEADERS = 'Received: from x\r\nSubject: hello\r\n\r\n';
const BODY = ['first line\r\n', 'second line\r\n'];

function conversation(direction: Direction, extraHeaders: Array<{ name: string; value: string }> = []) {
  const conn = kitConnection();
  const msg = kitMessage(Buffer.from(HEADERS + BODY.join('')), { direction });
  msg.headers.push(...extraHeaders);
  return { conn, msg };
}

async function run(rule: Rule, phase: Phase, c: ReturnType<typeof conversation>, chunk?: Buffer): Promise<Verdict> {
  // A test seam over all phases: the input is the widest shape; the handler's own phase decides.
  const h = rule.handlers[phase] as PhaseHandler<Phase> | undefined;
  if (!h) return { action: 'continue' };
  return h({ conn: c.conn, msg: c.msg, signal: AbortSignal.timeout(5000), ...(chunk ? { chunk } : {}) });
}

/** MAIL .. end of message, like the conversation drives it. Returns the eom verdict. */
async function deliver(rule: Rule, c: ReturnType<typeof conversation>): Promise<Verdict> {
  for (const p of ['envfrom', 'data', 'eoh'] as const) {
    const v = await run(rule, p, c);
    if (v.action !== 'continue') return v;
  }
  for (const b of BODY) await run(rule, 'body', c, Buffer.from(b));
  return run(rule, 'eom', c);
}

describe('antivirus rule', () => {
  test('streams the header block at eoh and each body chunk, in order; clean gets the header', async () => {
    const scanner = new FakeScanner();
    const rule = makeRule({}, scanner);
    const c = conversation('inbound');
    const v = await deliver(rule, c);
    assert.equal(v.action, 'continue');
    assert.equal(scanner.sessions.length, 1);
    assert.equal(Buffer.concat(scanner.sessions[0]!.data).toString(), HEADERS + BODY.join(''));
    assert.deepEqual(v.mods, [{ type: 'addHeader', name: 'X-Virus-Scanned', value: 'clean' }]);
    assert.ok(rule.needs!.actions!.includes('quarantine'));
    assert.ok(rule.needs!.actions!.includes('addHeader'));
  });

  test('a copy of the scan header from outside is removed before ours is added', async () => {
    const scanner = new FakeScanner();
    const rule = makeRule({}, scanner);
    const c = conversation('inbound', [
      { name: 'X-Virus-Scanned', value: 'clean, trust me' },
      { name: 'x-virus-scanned', value: 'again' },
    ]);
    const v = await deliver(rule, c);
    assert.deepEqual(v.mods, [
      { type: 'changeHeader', name: 'X-Virus-Scanned', index: 2, value: '' },
      { type: 'changeHeader', name: 'X-Virus-Scanned', index: 1, value: '' },
      { type: 'addHeader', name: 'X-Virus-Scanned', value: 'clean' },
    ]);
  });

  test('infected inbound: 554 5.7.1 with the signature name', async () => {
    const scanner = new FakeScanner();
    scanner.results = [{ status: 'infected', signature: 'Eicar-Test-Signature' }];
    const v = await deliver(makeRule({}, scanner), conversation('inbound'));
    assert.equal(v.action, 'reject');
    assert.deepEqual(v.smtp, VIRUS_REJECT);
    assert.equal(v.reason, 'Virus found: Eicar-Test-Signature');
    assert.equal(v.details?.signature, 'Eicar-Test-Signature');
  });

  test('infected outbound: quarantined, tagged', async () => {
    const scanner = new FakeScanner();
    scanner.results = [{ status: 'infected', signature: 'Eicar-Test-Signature' }];
    const v = await deliver(makeRule({}, scanner), conversation('outbound'));
    assert.equal(v.action, 'quarantine');
    assert.match(v.reason!, /Eicar-Test-Signature/);
    assert.deepEqual(v.mods, [
      { type: 'addHeader', name: 'X-Virus-Scanned', value: 'infected (Eicar-Test-Signature)' },
    ]);
  });

  test('configured actions per direction, discard only when asked for', async () => {
    const scanner = new FakeScanner();
    scanner.results = [{ status: 'infected', signature: 'X' }];
    const rule = makeRule({ actions: { inbound: 'quarantine', outbound: 'discard' } }, scanner);
    assert.equal((await deliver(rule, conversation('inbound'))).action, 'quarantine');
    assert.equal((await deliver(rule, conversation('outbound'))).action, 'discard');
    assert.equal(
      (await deliver(makeRule({ actions: 'tempfail' }, scanner), conversation('outbound'))).action,
      'tempfail',
    );
  });

  test('scanner error: tempfail 4xx with cause dependency, never accepted as clean', async () => {
    for (const reason of [
      'connect',
      'timeout',
      'clamd-error',
      'unknown-reply',
      'size-limit',
      'circuit-open',
    ] as const) {
      const scanner = new FakeScanner();
      scanner.results = [{ status: 'error', reason }];
      const v = await deliver(makeRule({}, scanner), conversation('inbound'));
      assert.equal(v.action, 'tempfail', reason);
      assert.equal(v.cause, 'dependency');
      assert.deepEqual(v.smtp, UNSCANNED_TEMPFAIL);
    }
  });

  test('a broken stream is retried once from the stored message', async () => {
    const scanner = new FakeScanner();
    scanner.results = [
      { status: 'error', reason: 'io' },
      { status: 'infected', signature: 'Late' },
    ];
    const v = await deliver(makeRule({}, scanner), conversation('inbound'));
    assert.equal(scanner.sessions.length, 2);
    assert.equal(Buffer.concat(scanner.sessions[1]!.data).toString(), HEADERS + BODY.join(''));
    assert.equal(v.action, 'reject');
  });

  test('a timeout is not retried (it would double the wait)', async () => {
    const scanner = new FakeScanner();
    scanner.results = [{ status: 'error', reason: 'timeout' }, { status: 'clean' }];
    const v = await deliver(makeRule({}, scanner), conversation('inbound'));
    assert.equal(scanner.sessions.length, 1);
    assert.equal(v.action, 'tempfail');
  });

  test('on_failure per direction: accept-with-header and reject', async () => {
    const scanner = new FakeScanner();
    scanner.results = [{ status: 'error', reason: 'connect' }];
    const rule = makeRule({ on_failure: { inbound: 'reject', outbound: 'accept-with-header' } }, scanner);
    const inbound = await deliver(rule, conversation('inbound'));
    assert.equal(inbound.action, 'reject');
    assert.equal(inbound.smtp?.code, 554);
    const outbound = await deliver(rule, conversation('outbound'));
    assert.equal(outbound.action, 'continue');
    assert.deepEqual(outbound.mods, [{ type: 'addHeader', name: 'X-Virus-Scanned', value: 'unscanned (connect)' }]);
  });

  test('breaker open: refused at MAIL already, nothing streamed', async () => {
    const scanner = new FakeScanner();
    scanner.up = false;
    const c = conversation('inbound');
    const v = await run(makeRule({}, scanner), 'envfrom', c);
    assert.equal(v.action, 'tempfail');
    assert.equal(v.cause, 'dependency');
    assert.equal(scanner.sessions.length, 0);
  });

  test('breaker open with on_failure accept-with-header: no early refusal', async () => {
    const scanner = new FakeScanner();
    scanner.up = false;
    const v = await run(makeRule({ on_failure: 'accept-with-header' }, scanner), 'envfrom', conversation('inbound'));
    assert.equal(v.action, 'continue');
  });

  test('declared SIZE above max_size: not streamed, on_oversize decides', async () => {
    const scanner = new FakeScanner();
    const rule = makeRule(
      { clamd: { address: 'tcp:127.0.0.1:3310', max_size: '1K' }, on_oversize: 'accept-with-header' },
      scanner,
    );
    const c = conversation('inbound');
    (c.msg as { senderParams: Record<string, string> }).senderParams = { SIZE: '5000' };
    const v = await deliver(rule, c);
    assert.equal(scanner.sessions.length, 0);
    assert.deepEqual(v.mods, [{ type: 'addHeader', name: 'X-Virus-Scanned', value: 'unscanned (too-large)' }]);
  });

  test('a scan left behind by an aborted message is closed at the next MAIL', async () => {
    const scanner = new FakeScanner();
    const rule = makeRule({}, scanner);
    const first = conversation('inbound');
    await run(rule, 'envfrom', first);
    await run(rule, 'eoh', first);
    // ABORT: no eom. Next message on the same connection:
    const second = { conn: first.conn, msg: conversation('inbound').msg };
    await run(rule, 'envfrom', second);
    assert.equal(scanner.sessions[0]!.aborted, 'aborted');
  });

  test('a message refused by another rule during the body: its scan is closed at once', async () => {
    const scanner = new FakeScanner();
    const rule = makeRule({}, scanner);
    const c = conversation('inbound');
    await run(rule, 'envfrom', c);
    await run(rule, 'eoh', c);
    await rule.onOutcome!({ conn: c.conn, msg: c.msg, phase: 'envrcpt', action: 'reject' });
    assert.equal(scanner.sessions[0]!.aborted, null, 'a refused recipient does not end the message');
    await rule.onOutcome!({ conn: c.conn, msg: c.msg, phase: 'body', action: 'reject', rule: 'size' });
    assert.equal(scanner.sessions[0]!.aborted, 'aborted');
  });

  test('no streaming state at eom (eoh never ran): scans the stored message', async () => {
    const scanner = new FakeScanner();
    const rule = makeRule({}, scanner);
    const c = conversation('inbound');
    const v = await run(rule, 'eom', c);
    assert.equal(v.action, 'continue');
    assert.equal(Buffer.concat(scanner.sessions[0]!.data).toString(), HEADERS + BODY.join(''));
  });

  test('header: false adds nothing and does not ask for header changes', async () => {
    const scanner = new FakeScanner();
    const rule = makeRule({ header: false }, scanner);
    const v = await deliver(rule, conversation('inbound'));
    assert.equal(v.mods, undefined);
    assert.ok(!rule.needs!.actions!.includes('addHeader'));
  });

  test('schema is strict and checks the address', () => {
    assert.equal(
      antivirusSchema.safeParse({ clamd: { address: 'tcp:127.0.0.1:3310' }, actions: { inbound: 'reject' } }).success,
      false,
    );
    assert.equal(antivirusSchema.safeParse({ clamd: { address: 'nowhere' } }).success, false);
    assert.equal(
      antivirusSchema.safeParse({ clamd: { address: 'unix:/run/clamd.ctl' }, colour: 'red' }).success,
      false,
    );
    assert.equal(
      antivirusSchema.safeParse({ clamd: { address: 'unix:/run/clamd.ctl' }, on_failure: 'discard' }).success,
      false,
    );
    const d = antivirusSchema.parse({ clamd: { address: 'unix:/run/clamd.ctl', timeout: '10s' } });
    assert.equal(d.clamd.timeout, 10_000);
    assert.deepEqual(d.actions, { inbound: 'reject', outbound: 'quarantine' });
    assert.equal(d.on_failure, 'tempfail');
  });
});
