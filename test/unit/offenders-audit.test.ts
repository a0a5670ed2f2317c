// The audit leaves no trace in the offender ledger: a client named AUDIT_CLIENT_NAME (which
// only XCLIENT can set; .invalid never resolves) earns no offences and is never refused for a
// ban, while the same address under any other name is counted and banned.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import type { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { AUDIT_CLIENT_NAME } from '../../src/rules/offenders.js';
import { kitClient, kitPolicy } from '../support/rule-kit.js';

const root = mkdtempSync(join(tmpdir(), 'rg-offenders-audit-'));
const policies: CompiledPolicy[] = [];
after(async () => {
  for (const p of policies) await p.close();
  rmSync(root, { recursive: true, force: true });
});

function compile(): CompiledPolicy {
  const p = kitPolicy(
    { blocklists: { blocked_domains: ['blocked.test'] }, offenders: { threshold: 5 } },
    { server: { state_dir: join(root, `s${policies.length}`) }, networks: { internal: ['127.0.0.0/8'] } },
  );
  policies.push(p);
  return p;
}

async function offend(policy: CompiledPolicy, ip: string, hostname: string) {
  const { c, connect: out } = await kitClient(policy, { ip, hostname, helo: null });
  if (out.action !== 'continue') return out;
  await c.helo('probe');
  const mail = await c.mail(['<x@blocked.test>']);
  await tick();
  return mail;
}

describe("offenders: the audit's own probes", () => {
  it("ten audits' worth of refusals from one probe address: never counted, never banned", async () => {
    const policy = compile();
    for (let i = 0; i < 10; i++) {
      const r = await offend(policy, '203.0.113.10', AUDIT_CLIENT_NAME);
      assert.equal(r.rule, 'blocklists', `run ${i + 1}: refused by the probe's own rule, not a ban`);
    }
    // The same address under another name is an ordinary client: counted, and banned at five.
    for (let i = 0; i < 5; i++) await offend(policy, '203.0.113.10', '[UNAVAILABLE]');
    const banned = await offend(policy, '203.0.113.10', 'mail.example.org');
    assert.equal(banned.rule, 'offenders');
    assert.equal(banned.reply?.code, 554);
  });

  it('matches the name exactly (case aside), not a suffix an attacker could own', async () => {
    const policy = compile();
    for (let i = 0; i < 5; i++)
      await offend(policy, '203.0.113.11', `x.${AUDIT_CLIENT_NAME.replace(/^probe\./, '')}.example.org`);
    assert.equal((await offend(policy, '203.0.113.11', '[UNAVAILABLE]')).rule, 'offenders'); // the look-alike names were counted
    // The audit's probe is exempt from the ban too (any case): its own checks still run.
    assert.equal((await offend(policy, '203.0.113.11', AUDIT_CLIENT_NAME.toUpperCase())).rule, 'blocklists');
  });
});
