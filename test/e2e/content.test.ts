// Rule 6 through the real Postfix with the reference policy: blocked attachment types are
// refused at end of data (by filename, by name= only in upper case, inside a zip), outbound
// card numbers go to the hold queue, the outbound confidentiality marker is refused, clean
// mail is delivered.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  ensureStack,
  holdQueue,
  message,
  run,
  smtp,
  startRelayguard,
  waitForDelivery,
  waitForHold,
  type RelayguardProcess,
  type SmtpResult,
} from './harness.js';

const OUTSIDE = { addr: '203.0.113.9', helo: 'mail.outside.test' };
const EXE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(512, 0x90)]);
const CARD = '4111 1111 1111 1111';
const MARKER = 'CONFIDENTIAL - INTERNAL ONLY';

let rg: RelayguardProcess;

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard();
});

after(async () => {
  await rg?.stop();
});

/** From outside (XCLIENT 203.0.113.9) to example.test. */
function inbound(opts: Omit<Parameters<typeof message>[0], 'from' | 'to'>): Promise<SmtpResult> {
  const from = 'sender@outside.test';
  const to = 'user@example.test';
  return smtp({ from, to: [to], data: message({ from, to, ...opts }), xclient: OUTSIDE });
}

/** From an internal client (127.0.0.1, no XCLIENT) to the outside. */
function outbound(opts: Omit<Parameters<typeof message>[0], 'from' | 'to'>): Promise<SmtpResult> {
  const from = 'alice@example.test';
  const to = 'bob@partner.test';
  return smtp({ from, to: [to], data: message({ from, to, ...opts }) });
}

/** A zip written by Python's zipfile, members given as name -> content. */
async function zipOf(members: Record<string, string>): Promise<Buffer> {
  const script = [
    'import io, json, sys, zipfile',
    'buf = io.BytesIO()',
    'with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:',
    '    for name, data in json.loads(sys.stdin.read()).items(): z.writestr(name, data)',
    'sys.stdout.write(buf.getvalue().hex())',
  ].join('\n');
  const r = await run('/usr/bin/python3', ['-c', script], { input: JSON.stringify(members) });
  assert.equal(r.code, 0, r.stderr);
  return Buffer.from(r.stdout.trim(), 'hex');
}

function assertRefused(r: SmtpResult, what: RegExp): void {
  assert.equal(r.ok, false, 'must not be queued');
  assert.equal(r.dataReply?.code, 550, r.dataReply?.full ?? r.error);
  assert.equal(r.dataReply?.enhanced, '5.7.1');
  assert.match(r.dataReply.text, what);
  assert.match(r.dataReply.text, /\(ref [0-9a-z-]+\)/, 'the reply carries a reference');
}

describe('rule 6: attachments', () => {
  test('inbound .exe attachment: 550 5.7.1 at end of data, naming the file', async () => {
    const r = await inbound({ body: 'see attachment', attachments: [{ filename: 'invoice.pdf.exe', content: EXE }] });
    assertRefused(r, /Blocked attachment "invoice\.pdf\.exe" \(file type \.exe\)/);
  });

  test('outbound upper-case .EXE given only as name=: refused too', async () => {
    const r = await outbound({ body: 'the tool', attachments: [{ name: 'SETUP.EXE', content: EXE }] });
    assertRefused(r, /Blocked attachment "SETUP\.EXE"/);
  });

  test('a .js inside a zip: refused, naming archive and member', async () => {
    const zip = await zipOf({ 'docs/readme.txt': 'hello', 'docs/open-me.js': 'WScript.Echo(1)' });
    const r = await inbound({
      body: 'archive attached',
      attachments: [{ filename: 'documents.zip', contentType: 'application/zip', content: zip }],
    });
    assertRefused(r, /"documents\.zip" contains "docs\/open-me\.js" \(file type \.js\)/);
  });

  test('inbound clean message with a PDF and a clean zip is delivered', async () => {
    const zip = await zipOf({ 'report.pdf': '%PDF-1.4 report' });
    const r = await inbound({
      body: `Hello, the figures are attached. Our order number is 41111111111111110000; card ${CARD} inbound is not our DLP concern.`,
      attachments: [
        { filename: 'figures.pdf', contentType: 'application/pdf', content: '%PDF-1.4 figures' },
        { filename: 'reports.zip', contentType: 'application/zip', content: zip },
      ],
    });
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    const delivered = await waitForDelivery(r.queueId!);
    assert.match(delivered, /filename="figures\.pdf"/);
  });
});

describe('rule 6: outbound data-leak rules', () => {
  test('outbound card number: accepted by Postfix into the hold queue, not delivered', async () => {
    const r = await outbound({ body: `Hi Bob, my card is ${CARD}, expiry 12/27.` });
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    const held = await waitForHold(r.queueId!);
    assert.deepEqual(
      held.recipients.map((x) => x.address),
      ['bob@partner.test'],
    );
    assert.ok((await holdQueue()).some((e) => e.queue_id === r.queueId));
  });

  test('outbound card number with dashes in an HTML part is held as well', async () => {
    const r = await outbound({ body: 'see the HTML part', html: '<p>Card: <b>5555</b>-5555-5555-4444</p>' });
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    await waitForHold(r.queueId!);
  });

  test('outbound confidentiality marker: 550 5.7.1 at end of data, naming the rule', async () => {
    const r = await outbound({ body: `Quarterly numbers below.\n\n${MARKER}\n` });
    assertRefused(r, /content rule "confidential-marker"/);
    assert.doesNotMatch(r.dataReply!.text, /CONFIDENTIAL/, 'the reply names the rule, not the marker');
  });

  test('outbound clean mail is delivered', async () => {
    const r = await outbound({ body: 'Lunch on Friday? Tracking 9400111899223100001234.' });
    assert.equal(r.ok, true, r.dataReply?.full ?? r.error);
    await waitForDelivery(r.queueId!);
  });
});

describe('rule 6: MIME forms that hid attachments (RFC 2046 allows them)', () => {
  const exe = EXE.toString('base64');
  const raw = (delimiter: (l: string) => string, innerClosed: boolean | null) => {
    const lines = [
      'From: sender@outside.test',
      'To: user@example.test',
      'Subject: forms',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="outer"',
      '',
      delimiter('--outer'),
    ];
    if (innerClosed === null) lines.push('Content-Type: text/plain', '', 'see attachment', delimiter('--outer'));
    else {
      lines.push(
        'Content-Type: multipart/alternative; boundary="inner"',
        '',
        '--inner',
        'Content-Type: text/plain',
        '',
        'hi',
        '--inner',
        'Content-Type: text/html',
        '',
        '<p>hi</p>',
      );
      if (innerClosed) lines.push('--inner--');
      lines.push(delimiter('--outer'));
    }
    lines.push(
      'Content-Type: application/octet-stream; name="invoice.exe"',
      'Content-Transfer-Encoding: base64',
      '',
      exe,
      delimiter('--outer--'),
      '',
    );
    return lines.join('\r\n');
  };
  const send = (data: string) =>
    smtp({ from: 'sender@outside.test', to: ['user@example.test'], data, xclient: OUTSIDE });

  test('blanks after the delimiter lines: the .exe is refused', async () => {
    assertRefused(await send(raw((l) => `${l}  \t`, null)), /invoice\.exe/);
  });

  test('an inner multipart left unterminated: the .exe after the outer delimiter is refused like its twin', async () => {
    assertRefused(await send(raw((l) => l, true)), /invoice\.exe/);
    assertRefused(await send(raw((l) => l, false)), /invoice\.exe/);
  });
});
