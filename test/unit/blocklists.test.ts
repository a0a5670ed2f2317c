// Rule 8 (blocklists) through the real engine and Conversation, against a fake DNS server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import type { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { kitClient, kitPolicy } from '../support/rule-kit.js';
import { blackHole, FakeDns } from './dnsbl-fake-server.js';

const dns = new FakeDns({
  '66.113.0.203.bl.test': { a: ['127.0.0.2'], txt: ['203.0.113.66 is listed in bl.test (test DNSBL)'] },
  '67.113.0.203.bl.test': { a: ['127.255.255.254'], txt: ['query refused'] },
  '68.113.0.203.bl.test': { a: ['127.0.0.9'] },
  '2.0.0.127.bl.test': { a: ['127.0.0.2'] },
  '66.113.0.203.other.test': { a: ['127.0.0.2'] },
  'spam.example.dbl.test': { a: ['127.0.1.2'], txt: ['Domain listed in dbl.test: spam.example'] },
  'bad-helo.example.dbl.test': { a: ['127.0.1.2'] },
});
let server = '';
before(async () => {
  server = await dns.start();
});
after(async () => {
  await dns.stop();
});

const LISTS = {
  ip_lists: [{ zone: 'bl.test', codes: ['127.0.0.2'] }],
  domain_lists: [{ zone: 'dbl.test', codes: ['127.0.1.2-127.0.1.3'], check: ['sender', 'helo'] }],
  blocked_domains: ['blocked.test'],
  blocked_ips: ['192.0.2.128/25'],
};

const policies: CompiledPolicy[] = [];
after(async () => {
  for (const p of policies) await p.close();
});

function compile(rule: Record<string, unknown> = {}, dnsSettings: Record<string, unknown> = {}): CompiledPolicy {
  const p = kitPolicy(
    { blocklists: { ...LISTS, ...rule } },
    {
      networks: { internal: ['127.0.0.0/8', '10.0.0.0/8'] },
      dns: { servers: [server], timeout: '500ms', budget: '2s', ...dnsSettings },
    },
  );
  policies.push(p);
  return p;
}

async function mailFrom(
  policy: CompiledPolicy,
  ip: string,
  sender: string,
  opts: { auth?: string; helo?: string } = {},
) {
  const { c, connect: atConnect } = await kitClient(policy, {
    ip,
    helo: opts.helo ?? 'client.test',
    ...(opts.auth ? { auth: opts.auth } : {}),
  });
  assert.equal(atConnect.action, 'continue', 'lists never refuse at connect');
  const out = await c.mail([`<${sender}>`]);
  return { c, out, trace: c.currentTrace.find((t) => t.rule === 'blocklists') };
}

describe('blocklists rule', () => {
  it('a listed client is refused at MAIL with 554 5.7.1, the list named and the TXT reason', async () => {
    const { out } = await mailFrom(compile(), '203.0.113.66', 'someone@outside.test');
    assert.equal(out.action, 'reject');
    assert.equal(out.reply?.code, 554);
    assert.equal(out.reply?.enhanced, '5.7.1');
    assert.match(
      out.reply?.text ?? '',
      /^Client host \[203\.0\.113\.66\] blocked using bl\.test; 203\.0\.113\.66 is listed in bl\.test \(test DNSBL\) \(ref /,
    );
  });

  it('the client lookup starts at connect, before MAIL', async () => {
    const policy = compile();
    const { c } = await kitClient(policy, { ip: '203.0.113.66', hostname: 'x', helo: null });
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(dns.seen.includes('66.113.0.203.bl.test A'));
    const before = dns.seen.length;
    assert.equal((await c.mail(['<a@outside.test>'])).action, 'reject');
    assert.equal((await c.mail(['<b@outside.test>'])).action, 'reject', 'every MAIL of the connection');
    assert.equal(
      dns.seen.filter((s, i) => i >= before && s.endsWith('.bl.test A')).length,
      0,
      'no second client query',
    );
  });

  it('an authenticated listed client is accepted', async () => {
    const { out } = await mailFrom(compile(), '203.0.113.66', 'alice@example.test', { auth: 'alice' });
    assert.equal(out.action, 'continue');
  });

  it('internal clients are never looked up', async () => {
    const before = dns.seen.length;
    const { out } = await mailFrom(compile(), '127.0.0.2', 'spam@spam.example', { helo: 'bad-helo.example' });
    assert.equal(out.action, 'continue');
    assert.equal(dns.seen.length, before);
  });

  it('127.255.255.x is a list error: logged in the trace, mail accepted', async () => {
    const { out, trace } = await mailFrom(compile(), '203.0.113.67', 'someone@outside.test');
    assert.equal(out.action, 'continue');
    assert.deepEqual(trace?.details?.list_errors, [{ list: 'bl.test', subject: '203.0.113.67', error: 'ELISTERROR' }]);
  });

  it('a 127/8 answer that is not a configured code is a list error too', async () => {
    const { out, trace } = await mailFrom(compile(), '203.0.113.68', 'someone@outside.test');
    assert.equal(out.action, 'continue');
    assert.equal((trace?.details?.list_errors as Array<{ error: string }>)[0]?.error, 'EUNKNOWNCODE');
  });

  it('a sender domain in a domain list is refused at MAIL', async () => {
    const { out } = await mailFrom(compile(), '203.0.113.9', 'x@Spam.Example');
    assert.equal(out.action, 'reject');
    assert.match(
      out.reply?.text ?? '',
      /^Sender address <x@Spam\.Example> rejected: domain spam\.example blocked using dbl\.test; Domain listed in dbl\.test: spam\.example/,
    );
  });

  it('a HELO name in a domain list is refused when the list checks HELO', async () => {
    const { out } = await mailFrom(compile(), '203.0.113.9', 'x@outside.test', { helo: 'bad-helo.example' });
    assert.equal(out.action, 'reject');
    assert.match(out.reply?.text ?? '', /^Helo command rejected: bad-helo\.example blocked using dbl\.test/);
    const senderOnly = compile({ domain_lists: [{ zone: 'dbl.test', codes: ['127.0.1.2'] }] });
    assert.equal(
      (await mailFrom(senderOnly, '203.0.113.9', 'x@outside.test', { helo: 'bad-helo.example' })).out.action,
      'continue',
    );
  });

  it('static blocked domains cover the domain and its subdomains, nothing else', async () => {
    const p = compile();
    for (const sender of ['a@blocked.test', 'a@sub.blocked.test', 'a@BLOCKED.TEST']) {
      const { out } = await mailFrom(p, '203.0.113.9', sender);
      assert.equal(out.action, 'reject', sender);
      assert.match(out.reply?.text ?? '', /blocked by local policy/);
    }
    for (const sender of ['a@notblocked.test', 'a@blocked.test.example', '']) {
      assert.equal((await mailFrom(p, '203.0.113.9', sender)).out.action, 'continue', sender);
    }
  });

  it('static blocked IPs are refused at MAIL, authenticated clients are not', async () => {
    const p = compile();
    assert.equal((await mailFrom(p, '192.0.2.200', 'a@outside.test')).out.action, 'reject');
    assert.equal((await mailFrom(p, '192.0.2.200', 'a@outside.test', { auth: 'bob' })).out.action, 'continue');
    assert.equal((await mailFrom(p, '192.0.2.100', 'a@outside.test')).out.action, 'continue');
  });

  it('an allowlist entry exempts from the named lists only', async () => {
    const p = compile({
      ip_lists: [
        { zone: 'bl.test', codes: ['127.0.0.2'] },
        { zone: 'other.test', codes: ['127.0.0.2'] },
      ],
      allowlist: [{ ip: '203.0.113.0/24', lists: ['bl.test'], reason: 'ticket 42' }],
    });
    const { out } = await mailFrom(p, '203.0.113.66', 'a@outside.test');
    assert.equal(out.action, 'reject');
    assert.match(out.reply?.text ?? '', /blocked using other\.test/);
    const all = compile({ allowlist: [{ ip: '203.0.113.66', reason: 'ticket 43' }] });
    const r = await mailFrom(all, '203.0.113.66', 'a@outside.test');
    assert.equal(r.out.action, 'continue');
    assert.deepEqual(r.trace?.details?.allowlisted, [
      { list: 'bl.test', subject: '203.0.113.66', reason: 'ticket 43' },
    ]);
  });

  it('a domain allowlist entry exempts the sender domain from blocked_domains and domain lists', async () => {
    const p = compile({
      allowlist: [{ domain: 'blocked.test', lists: ['blocked_domains'] }, { domain: 'spam.example' }],
    });
    assert.equal((await mailFrom(p, '203.0.113.9', 'a@sub.blocked.test')).out.action, 'continue');
    assert.equal((await mailFrom(p, '203.0.113.9', 'a@spam.example')).out.action, 'continue');
    assert.equal(
      (await mailFrom(p, '203.0.113.66', 'a@spam.example')).out.action,
      'reject',
      'the client list still applies',
    );
  });

  it('an expired allowlist entry no longer applies', async () => {
    const p = compile({ allowlist: [{ ip: '203.0.113.66', expires: '2020-01-31' }] });
    assert.equal((await mailFrom(p, '203.0.113.66', 'a@outside.test')).out.action, 'reject');
  });

  it('monitor mode logs the refusal and accepts', async () => {
    const { out, trace } = await mailFrom(compile({ mode: 'monitor' }), '203.0.113.66', 'a@outside.test');
    assert.equal(out.action, 'continue');
    assert.equal(trace?.action, 'reject');
    assert.equal(trace?.monitor, true);
  });

  it('a custom reply text with placeholders', async () => {
    const p = compile({
      ip_lists: [{ zone: 'bl.test', name: 'public-name', codes: ['127.0.0.2'], reply: 'Go away {ip}, see {list}' }],
    });
    const { out } = await mailFrom(p, '203.0.113.66', 'a@outside.test');
    assert.match(out.reply?.text ?? '', /^Go away 203\.0\.113\.66, see public-name \(ref /);
  });
});

describe('blocklists DNS budget', () => {
  it('a DNS server that never answers delays MAIL by at most the budget, and mail goes on', async () => {
    const hole = await blackHole();
    try {
      const policy = compile({}, { servers: [hole.server], timeout: '10s', budget: '400ms' });
      const started = Date.now();
      const { c } = await kitClient(policy, { ip: '203.0.113.66', hostname: 'x' });
      const out = await c.mail(['<a@spam.example>']);
      const took = Date.now() - started;
      assert.equal(out.action, 'continue');
      // Two budgets at most: the client lookup (from connect) and the sender lookup (from MAIL) overlap.
      assert.ok(took < 900, `took ${took} ms`);
      const trace = c.currentTrace.find((t) => t.rule === 'blocklists');
      assert.deepEqual(
        (trace?.details?.list_errors as Array<{ error: string }>).map((e) => e.error),
        ['EBUDGET', 'EBUDGET', 'EBUDGET'],
      );
    } finally {
      await hole.stop();
    }
  });
});

describe('blocklists schema', () => {
  const errorsOf = (rule: string) => {
    const r = parsePolicyText(`rules:\n  blocklists:\n${rule}`, 'p.yaml');
    return r.ok ? [] : r.errors.map((e) => `${e.line}: ${e.message}`);
  };

  it('accepts the reference configuration', () => {
    const r = parsePolicyText(
      [
        'rules:',
        '  blocklists:',
        '    ip_lists:',
        '      - zone: bl.test',
        '        codes: [127.0.0.2]',
        '    domain_lists:',
        '      - zone: dbl.test',
        '        codes: [127.0.1.2]',
        '    blocked_domains: [blocked.test]',
        '',
      ].join('\n'),
      'p.yaml',
    );
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  });

  it('refuses error-range and non-loopback codes, unknown keys and unknown allowlist lists', () => {
    assert.match(
      errorsOf('    ip_lists:\n      - zone: bl.test\n        codes: [127.255.255.254]\n').join(),
      /5: .*error answers/,
    );
    assert.match(
      errorsOf('    ip_lists:\n      - zone: bl.test\n        codes: [10.0.0.2]\n').join(),
      /127\.0\.0\.0\/8/,
    );
    assert.match(
      errorsOf('    ip_lists:\n      - zone: bl.test\n        code: [127.0.0.2]\n').join(),
      /unknown key "code"/,
    );
    assert.match(
      errorsOf('    allowlist:\n      - ip: 203.0.113.1\n        lists: [nope]\n').join(),
      /no list named "nope"/,
    );
    assert.match(
      errorsOf('    allowlist:\n      - ip: 203.0.113.1\n        domain: a.test\n').join(),
      /exactly one of ip or domain/,
    );
    assert.match(
      errorsOf(
        '    ip_lists:\n      - zone: bl.test\n        codes: [127.0.0.2]\n      - zone: bl.test\n        codes: [127.0.0.3]\n',
      ).join(),
      /used twice/,
    );
  });
});
