// Rule 8 (offender ledger) through the real engine and Conversation, with a SQLite ledger in a
// temporary state directory. The blocklists rule (static lists, no DNS) supplies the refusals.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { openExistingOffenderLedger } from '../../src/deps/offender-ledger.js';
import type { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { reject, type Rule } from '../../src/policy/types.js';
import { offendersRule, offendersSchema, ledgerPolicyOf } from '../../src/rules/offenders.js';
import { kitClient, kitConnection, kitEnv, kitPolicy } from '../support/rule-kit.js';

const root = mkdtempSync(join(tmpdir(), 'rg-offenders-'));
after(() => rmSync(root, { recursive: true, force: true }));

const policies: CompiledPolicy[] = [];
after(async () => {
  for (const p of policies) await p.close();
});

let dirs = 0;
/** A stand-in for a content rule: refuses every message at end of data. */
const refuseAtEom: Rule = {
  name: 'content_stub',
  mode: 'enforce',
  handlers: { eom: async () => reject('bad attachment') },
};

function compile(offenders: Record<string, unknown> = {}, extraRules: Rule[] = []) {
  const stateDir = join(root, `s${++dirs}`);
  const policy = kitPolicy(
    { blocklists: { blocked_domains: ['blocked.test'] }, offenders },
    { server: { state_dir: stateDir }, networks: { internal: ['127.0.0.0/8'] } },
    { extraRules },
  );
  policies.push(policy);
  return { policy, stateDir };
}

async function connect(policy: CompiledPolicy, ip: string) {
  const { c, connect: out } = await kitClient(policy, { ip, helo: null });
  return { c, out };
}

/** One connection that earns one refusal (a blocked sender). */
async function offend(policy: CompiledPolicy, ip: string, auth?: string) {
  const { c, out } = await connect(policy, ip);
  if (out.action !== 'continue') return out;
  await c.helo('client.test');
  if (auth) c.macros.set('M', [['{auth_authen}', auth]]);
  const mail = await c.mail(['<x@blocked.test>']);
  await tick(); // the outcome hook runs after the reply
  return mail;
}

describe('offenders rule', () => {
  it('five refusals within the window ban the client: refused at connect with 554 5.7.1 and the end of the ban', async () => {
    const { policy } = compile();
    for (let i = 0; i < 5; i++)
      assert.equal((await offend(policy, '203.0.113.20')).action, 'reject', `offence ${i + 1}`);
    const { out } = await connect(policy, '203.0.113.20');
    assert.equal(out.action, 'reject');
    assert.equal(out.rule, 'offenders');
    assert.equal(out.reply?.code, 554);
    assert.equal(out.reply?.enhanced, '5.7.1');
    assert.match(
      out.reply?.text ?? '',
      /^Client host \[203\.0\.113\.20\] banned until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC after repeated policy violations/,
    );
    // Other clients are not affected.
    assert.equal((await connect(policy, '203.0.113.21')).out.action, 'continue');
  });

  it('four refusals are no ban', async () => {
    const { policy } = compile();
    for (let i = 0; i < 4; i++) await offend(policy, '203.0.113.22');
    assert.equal((await connect(policy, '203.0.113.22')).out.action, 'continue');
  });

  it('EXPN attempts count as offences', async () => {
    const { policy } = compile();
    const { c } = await connect(policy, '203.0.113.23');
    for (let i = 0; i < 5; i++) assert.equal((await c.unknown('EXPN root')).action, 'continue');
    assert.equal((await connect(policy, '203.0.113.23')).out.action, 'reject');
  });

  it('other unknown commands do not count', async () => {
    const { policy } = compile();
    const { c } = await connect(policy, '203.0.113.24');
    for (let i = 0; i < 6; i++) await c.unknown('FOO bar');
    assert.equal((await connect(policy, '203.0.113.24')).out.action, 'continue');
  });

  it('internal and authenticated clients neither earn offences nor get banned', async () => {
    const { policy, stateDir } = compile();
    for (let i = 0; i < 6; i++) {
      await offend(policy, '127.0.0.9');
      await offend(policy, '203.0.113.25', 'alice');
    }
    assert.equal((await connect(policy, '127.0.0.9')).out.action, 'continue');
    assert.equal((await connect(policy, '203.0.113.25')).out.action, 'continue');
    const ledger = await openExistingOffenderLedger({ state_dir: stateDir }, ledgerPolicyOf(offendersSchema.parse({})));
    assert.deepEqual(await ledger!.list(), []);
    await ledger!.close();
  });

  it('the ban refusals themselves are not offences; unban lets the client in again', async () => {
    const { policy, stateDir } = compile();
    for (let i = 0; i < 5; i++) await offend(policy, '203.0.113.26');
    for (let i = 0; i < 3; i++) assert.equal((await connect(policy, '203.0.113.26')).out.action, 'reject');
    await tick();
    const ledger = await openExistingOffenderLedger({ state_dir: stateDir }, ledgerPolicyOf(offendersSchema.parse({})));
    const rows = await ledger!.list();
    assert.deepEqual(
      rows.map((r) => [r.ip, r.count, r.bannedUntil !== null]),
      [['203.0.113.26', 5, true]],
    );
    assert.match(rows[0]!.lastReason ?? '', /^blocklists: Sender address <x@blocked\.test> rejected/);
    assert.equal(await ledger!.unban('203.0.113.26'), true);
    await ledger!.close();
    assert.equal((await connect(policy, '203.0.113.26')).out.action, 'continue');
  });

  it('refuse_at: mail lets an authenticated user through from a banned address', async () => {
    const { policy } = compile({ refuse_at: 'mail' });
    for (let i = 0; i < 5; i++) await offend(policy, '203.0.113.27');
    const plain = await connect(policy, '203.0.113.27');
    assert.equal(plain.out.action, 'continue');
    const mail = await plain.c.mail(['<x@outside.test>']);
    assert.equal(mail.action, 'reject');
    assert.equal(mail.rule, 'offenders');
    const authed = await connect(policy, '203.0.113.27');
    authed.c.macros.set('M', [['{auth_authen}', 'alice']]);
    assert.equal((await authed.c.mail(['<alice@example.test>'])).action, 'continue');
  });

  it('never_ban addresses are neither counted nor banned', async () => {
    const { policy } = compile({ never_ban: ['203.0.113.0/28'] });
    for (let i = 0; i < 6; i++) await offend(policy, '203.0.113.5');
    assert.equal((await connect(policy, '203.0.113.5')).out.action, 'continue');
  });

  it('a lower threshold bans sooner', async () => {
    const { policy } = compile({ threshold: 2 });
    await offend(policy, '203.0.113.28');
    assert.equal((await connect(policy, '203.0.113.28')).out.action, 'continue');
    await offend(policy, '203.0.113.28');
    assert.equal((await connect(policy, '203.0.113.28')).out.action, 'reject');
  });

  it('refusals of message content count only with message_rejections', async () => {
    const sendRefused = async (policy: CompiledPolicy, ip: string) => {
      const { c, out } = await connect(policy, ip);
      if (out.action !== 'continue') return out;
      await c.mail(['<x@outside.test>']);
      await c.rcpt(['<user@example.test>']);
      const eom = await c.eom(Buffer.from('hello\r\n'));
      await tick();
      return eom;
    };
    const byDefault = compile({}, [refuseAtEom]).policy;
    for (let i = 0; i < 6; i++) assert.equal((await sendRefused(byDefault, '203.0.113.32')).action, 'reject');
    assert.equal((await connect(byDefault, '203.0.113.32')).out.action, 'continue');
    const counting = compile({ count: ['message_rejections'] }, [refuseAtEom]).policy;
    for (let i = 0; i < 5; i++) await sendRefused(counting, '203.0.113.32');
    assert.equal((await connect(counting, '203.0.113.32')).out.action, 'reject');
  });

  it('monitor mode records, and only logs the refusal', async () => {
    const { policy } = compile({ mode: 'monitor' });
    for (let i = 0; i < 5; i++) await offend(policy, '203.0.113.29');
    const { c, out } = await connect(policy, '203.0.113.29');
    assert.equal(out.action, 'continue');
    const trace = c.currentTrace.find((t) => t.rule === 'offenders');
    assert.equal(trace?.action, 'reject');
    assert.equal(trace?.monitor, true);
  });

  it('recipients the MTA refused count when enabled (and the rule asks Postfix for them)', async () => {
    const { policy } = compile({ count: ['mta_rejected_recipients'] });
    const rule = policy.engine.activeRules().find((r) => r.name === 'offenders')!;
    assert.ok(rule.needs?.protocol);
    assert.deepEqual(rule.needs?.macros?.envrcpt, ['{rcpt_mailer}']);
    const { c } = await connect(policy, '203.0.113.30');
    await c.mail(['<x@outside.test>']);
    for (let i = 0; i < 5; i++) {
      c.macros.set('R', [['{rcpt_mailer}', i === 0 ? 'smtp' : 'error']]);
      await c.rcpt([`<nobody${i}@example.test>`]);
    }
    assert.equal((await connect(policy, '203.0.113.30')).out.action, 'continue', 'four refused recipients');
    c.macros.set('R', [['{rcpt_mailer}', 'error']]);
    await c.rcpt(['<nobody9@example.test>']);
    assert.equal((await connect(policy, '203.0.113.30')).out.action, 'reject');
  });

  it('mode off: no rule and no ledger (no state directory, no database)', () => {
    const { policy, stateDir } = compile({ mode: 'off' });
    assert.equal(
      policy.engine.rules.some((r) => r.name === 'offenders'),
      false,
    );
    assert.equal(existsSync(stateDir), false, 'the ledger was not opened');
    const on = compile({ mode: 'monitor' });
    assert.equal(existsSync(on.stateDir), true, 'a rule that is on opens it when the policy is made');
  });

  it('offline (relayguard check): reads bans, records nothing, creates no state', async () => {
    const stateDir = join(root, 'offline-none');
    const env = kitEnv({ policy: { server: { state_dir: stateDir } }, offline: true });
    const rule = offendersRule.create(offendersSchema.parse({}), env);
    await rule.onOutcome!({
      conn: kitConnection({ ip: '203.0.113.31' }),
      phase: 'envfrom',
      action: 'reject',
      rule: 'relay',
    });
    assert.equal(existsSync(stateDir), false);
  });
});
