// `relayguard check` (offline) must reach the decisions the live gateway reaches for the same
// envelope: each case below goes through the real Postfix and relayguard, then through
// `relayguard check` with the same policy file, client address, sender, recipients and message,
// and the refusal (SMTP code and enhanced code, per recipient where RCPT decides) must match.
// The offender ledger is the one rule that differs on purpose: offline it neither counts nor bans.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  clearQueues,
  ensureStack,
  message,
  runRelayguard,
  smtp,
  startRelayguard,
  type RelayguardProcess,
  type SmtpReply,
  type SmtpResult,
} from './harness.js';

/** Over the reference policy's 2 MiB body limit. */
const OVER_LIMIT_BODY = 'x'.repeat(76) + '\r\n';
const OVER_LIMIT_LINES = Math.ceil((2_097_152 + 50_000) / OVER_LIMIT_BODY.length);

interface Case {
  name: string;
  /** What the live gateway must answer (a code prefix of the first refusal), or null: accepted. */
  live: string | null;
  /** Which recipients the live gateway refuses at RCPT, when that is the point of the case. */
  rcptRefused?: boolean[];
  ip: string;
  from: string;
  rcpts: string[];
  body?: string;
  fromHeader?: string;
}

// One outside address per case, so that the offender ledger (live only) never bans one of them.
const CASES: Case[] = [
  {
    name: 'rule 1: outside client, one local and one foreign recipient',
    live: null,
    rcptRefused: [false, true],
    ip: '203.0.113.11',
    from: 'sender@outside.test',
    rcpts: ['user@example.test', 'x@elsewhere.test'],
  },
  {
    name: 'rule 1: internal client relays',
    live: null,
    ip: '127.0.0.1',
    from: 'alice@example.test',
    rcpts: ['x@elsewhere.test'],
  },
  {
    name: 'rule 3: body over the size limit',
    live: '552',
    ip: '203.0.113.12',
    from: 'sender@outside.test',
    rcpts: ['user@example.test'],
    body: OVER_LIMIT_BODY.repeat(OVER_LIMIT_LINES),
  },
  {
    name: 'rule 4: denied network',
    live: '554',
    ip: '192.0.2.10',
    from: 'sender@outside.test',
    rcpts: ['user@example.test'],
  },
  {
    name: 'rule 4: outside client with our domain as envelope sender',
    live: '5',
    ip: '203.0.113.13',
    from: 'ceo@example.test',
    rcpts: ['user@example.test'],
  },
  {
    name: 'rule 4: outside client with our domain in From:',
    live: '5',
    ip: '203.0.113.14',
    from: 'sender@outside.test',
    fromHeader: 'ceo@example.test',
    rcpts: ['user@example.test'],
  },
  {
    name: 'rule 8: client listed in bl.test',
    live: '554',
    ip: '203.0.113.66',
    from: 'sender@outside.test',
    rcpts: ['user@example.test'],
  },
  {
    name: 'rule 8: sender domain in blocked_domains',
    live: '554',
    ip: '203.0.113.15',
    from: 'x@blocked.test',
    rcpts: ['user@example.test'],
  },
  {
    name: 'rule 9: partner without STARTTLS',
    live: '530',
    ip: '198.51.100.7',
    from: 'orders@partner.test',
    rcpts: ['user@example.test'],
  },
  {
    name: 'an ordinary inbound message',
    live: null,
    ip: '203.0.113.16',
    from: 'sender@outside.test',
    rcpts: ['user@example.test'],
  },
];

/** What the client saw: the first refusal (code, enhanced) or acceptance, and each RCPT's code. */
interface Decision {
  refused: { code: number; enhanced?: string } | null;
  rcpts: number[];
}

const refusal = (r: SmtpReply | undefined) =>
  r && r.code >= 400 ? { code: r.code, ...(r.enhanced ? { enhanced: r.enhanced } : {}) } : null;

function liveDecision(r: SmtpResult): Decision {
  const rcpts = r.rcptReplies.map((x) => x.code);
  const steps = [
    r.xclientReply,
    r.mailReply,
    ...(rcpts.every((c) => c >= 400) ? r.rcptReplies : []),
    r.dataStartReply,
    r.dataReply,
  ];
  for (const s of steps) {
    const f = refusal(s);
    // A refusal at connect shows as Postfix's greeting after XCLIENT: only its code is ours.
    if (f) return { refused: s === r.xclientReply ? { code: f.code } : f, rcpts };
  }
  return { refused: null, rcpts };
}

interface CheckJson {
  action: string;
  phase: string;
  smtp: string | null;
  recipients: Array<{ address: string; action: string; smtp: string | null }>;
}

function parseSmtp(text: string | null): { code: number; enhanced?: string } | null {
  const m = text ? /^(\d{3})(?:[ -](\d\.\d{1,3}\.\d{1,3}))?/.exec(text) : null;
  return m ? { code: Number(m[1]), ...(m[2] ? { enhanced: m[2] } : {}) } : null;
}

let rg: RelayguardProcess;
let dir: string;

before(async () => {
  await ensureStack();
  await clearQueues();
  rg = await startRelayguard();
  dir = mkdtempSync(join(tmpdir(), 'rg-parity-'));
});

after(async () => {
  await rg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('relayguard check decides as the live gateway does', () => {
  CASES.forEach((c, i) => {
    test(c.name, async () => {
      const data = message({
        from: c.fromHeader ?? c.from,
        to: c.rcpts[0]!,
        subject: `parity ${i}`,
        body: c.body ?? 'parity test',
      });
      const live = await smtp({
        from: c.from,
        to: c.rcpts,
        data,
        ...(c.ip === '127.0.0.1' ? {} : { xclient: { addr: c.ip } }),
      });
      const liveD = liveDecision(live);
      // The live decision is the one the reference gateway prescribes (so the parity is not vacuous).
      if (c.live === null)
        assert.equal(liveD.refused, null, `live: ${JSON.stringify(live.replies.map((r) => r.full))}`);
      if (c.rcptRefused)
        assert.deepEqual(
          liveD.rcpts.map((code) => code >= 500),
          c.rcptRefused,
          JSON.stringify(live.rcptReplies),
        );
      if (c.live !== null)
        assert.ok(
          liveD.refused && String(liveD.refused.code).startsWith(c.live),
          `live: ${JSON.stringify(live.replies.map((r) => r.full))}`,
        );

      const eml = join(dir, `case-${i}.eml`);
      writeFileSync(eml, data);
      const args = [
        'check',
        '--config',
        rg.configPath,
        '--json',
        '--client-ip',
        c.ip,
        '--helo',
        'client.parity.test',
        '--from',
        c.from,
      ];
      for (const r of c.rcpts) args.push('--rcpt', r);
      const run = await runRelayguard([...args, eml], { timeoutMs: 60_000 });
      assert.equal(run.code, 0, run.stderr);
      const offline = JSON.parse(run.stdout) as CheckJson;

      // Where RCPT decided per recipient, compare each recipient's code.
      if (liveD.rcpts.length === c.rcpts.length && offline.recipients.length === c.rcpts.length) {
        const offlineCodes = offline.recipients.map((r) => parseSmtp(r.smtp)?.code ?? 250);
        const liveCodes = liveD.rcpts.map((code) => (code >= 400 ? code : 250));
        assert.deepEqual(
          offlineCodes,
          liveCodes,
          `per-recipient codes\nlive: ${JSON.stringify(live.rcptReplies)}\noffline: ${run.stdout}`,
        );
      }
      const offlineRefused = offline.action === 'accept' ? null : parseSmtp(offline.smtp);
      if (liveD.refused === null) {
        assert.equal(offline.action, 'accept', `live accepted (${live.dataReply?.full}); offline: ${run.stdout}`);
      } else {
        assert.ok(offlineRefused, `live refused with ${JSON.stringify(liveD.refused)}; offline: ${run.stdout}`);
        assert.equal(
          offlineRefused.code,
          liveD.refused.code,
          `live ${JSON.stringify(liveD.refused)} / offline ${run.stdout}`,
        );
        if (liveD.refused.enhanced)
          assert.equal(
            offlineRefused.enhanced,
            liveD.refused.enhanced,
            `live ${JSON.stringify(liveD.refused)} / offline ${run.stdout}`,
          );
      }
    });
  });
});
