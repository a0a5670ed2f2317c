// lint-mta: findings on crafted `postconf -n` output, and the postconf parsing they rest on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import type { PolicyConfig } from '../../src/rules/policy-schema.js';
import { lintPostconfText, lowestAllowedProtocol, tlsLevel, type Finding } from '../../src/mta/lint.js';
import {
  compatibilityLevel,
  expandParam,
  parseMilterEntry,
  parsePostconf,
  parsePostfixTime,
  splitList,
} from '../../src/mta/postconf.js';

const POLICY = `
local_domains: [example.test]
networks:
  internal: [127.0.0.0/8, 10.0.0.0/8]
rules:
  size:
    max_bytes: 2MiB
  tls:
    require:
      networks: [198.51.100.0/24]
`;

function config(text = POLICY): PolicyConfig {
  const r = parsePolicyText(text, 'test.yaml');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.config;
}

/** A main.cf that matches POLICY (postconf -n style, sorted as postconf prints it). */
const GOOD = `compatibility_level = 3.6
disable_vrfy_command = yes
message_size_limit = 10240000
milter_default_action = tempfail
milter_protocol = 6
mynetworks = 127.0.0.0/8, 10.0.0.0/8
relay_domains = example.test
smtpd_milters = inet:127.0.0.1:10025
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_tls_chain_files = /etc/postfix/key.pem, /etc/postfix/cert.pem
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = !SSLv2, !SSLv3, !TLSv1, !TLSv1.1
smtpd_tls_security_level = may
`;

/** GOOD with some lines replaced (name -> new value, or null to drop the line). */
function variant(changes: Record<string, string | null>): string {
  const map = parsePostconf(GOOD);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null) map.delete(k);
    else map.set(k, v);
  }
  return [...map].map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
}

function lint(text: string, cfg = config()): Finding[] {
  return lintPostconfText(text, cfg);
}

function only(findings: Finding[], parameter: string, severity: Finding['severity']): Finding {
  assert.equal(findings.length, 1, `exactly one finding, got ${JSON.stringify(findings, null, 1)}`);
  const f = findings[0]!;
  assert.equal(f.parameter, parameter);
  assert.equal(f.severity, severity);
  return f;
}

describe('postconf parsing', () => {
  it('reads name = value lines, continuation lines and comments; later lines win', () => {
    const p = parsePostconf('# c\na = 1\nb = x,\n   y\n\na = 2\n');
    assert.equal(p.get('a'), '2');
    assert.equal(p.get('b'), 'x, y');
  });

  it('splits lists on commas and spaces but keeps { } groups', () => {
    assert.deepEqual(splitList('a, b c,d'), ['a', 'b', 'c', 'd']);
    const items = splitList(
      '{ inet:127.0.0.1:10025, default_action=tempfail, command_timeout=45s }, inet:127.0.0.1:8891',
    );
    assert.equal(items.length, 2);
    const m = parseMilterEntry(items[0]!);
    assert.equal(m.address, 'inet:127.0.0.1:10025');
    assert.deepEqual(m.settings, { default_action: 'tempfail', command_timeout: '45s' });
    assert.equal(parseMilterEntry(items[1]!).address, 'inet:127.0.0.1:8891');
  });

  it('expands $parameters and knows defaults, also those of old compatibility levels', () => {
    const p = parsePostconf('smtpd_milters = inet:a:1\nnon_smtpd_milters = $smtpd_milters\n');
    assert.equal(expandParam(p, 'non_smtpd_milters'), 'inet:a:1');
    assert.equal(expandParam(p, 'milter_default_action'), 'tempfail');
    assert.equal(compatibilityLevel(p), 0);
    assert.equal(expandParam(p, 'mynetworks_style'), 'subnet');
    assert.equal(expandParam(parsePostconf('compatibility_level = 3.6\n'), 'mynetworks_style'), 'host');
  });

  it('reads Postfix times and TLS protocol lists', () => {
    assert.equal(parsePostfixTime('30s'), 30_000);
    assert.equal(parsePostfixTime('5m'), 300_000);
    assert.equal(parsePostfixTime('300'), 300_000);
    assert.equal(parsePostfixTime('soon'), null);
    assert.equal(lowestAllowedProtocol('!SSLv2, !SSLv3'), 'TLSv1');
    assert.equal(lowestAllowedProtocol('>=TLSv1.2'), 'TLSv1.2');
    assert.equal(lowestAllowedProtocol('!SSLv2:!SSLv3:!TLSv1:!TLSv1.1'), 'TLSv1.2');
    assert.equal(lowestAllowedProtocol('TLSv1.3'), 'TLSv1.3');
    assert.equal(tlsLevel(parsePostconf('smtpd_use_tls = yes\n')), 'may');
    assert.equal(tlsLevel(parsePostconf('')), 'none');
  });
});

describe('lint-mta findings', () => {
  it('a configuration that matches the policy has none', () => {
    assert.deepEqual(lint(GOOD), []);
  });

  it('more smtpd processes than relayguard takes connections from one address is a warning (issue 16)', () => {
    const f = only(lint(variant({ default_process_limit: '300' })), 'default_process_limit', 'warning');
    assert.match(f.message, /takes max_connections_per_peer \(250\)/);
    assert.equal(f.fix, 'default_process_limit = 250');
    assert.deepEqual(lint(variant({ default_process_limit: '250' })), [], "250 fits relayguard's defaults");
    const unix = config(`${POLICY}server:\n  listen: unix:/run/relayguard/milter.sock\n`);
    const g = only(
      lint(variant({ default_process_limit: '600', smtpd_milters: 'unix:/run/relayguard/milter.sock' }), unix),
      'default_process_limit',
      'warning',
    );
    assert.match(g.message, /takes max_connections \(500\)/, 'over a unix socket only the total counts');
  });

  it("an smtpd_timeout not shorter than relayguard's idle_timeout is a warning (issue 16)", () => {
    const f = only(lint(variant({ smtpd_timeout: '600s' })), 'smtpd_timeout', 'warning');
    assert.match(f.message, /idle_timeout of 600s/);
    assert.equal(f.fix, 'smtpd_timeout = 300s');
    assert.deepEqual(lint(variant({ smtpd_timeout: '300s' })), []);
  });

  it('VRFY enabled (Postfix default) is an error', () => {
    const f = only(lint(variant({ disable_vrfy_command: null })), 'disable_vrfy_command', 'error');
    assert.equal(f.fix, 'disable_vrfy_command = yes');
    only(lint(variant({ disable_vrfy_command: 'no' })), 'disable_vrfy_command', 'error');
  });

  it('an open relay is an error, also when written as check_client_access static:OK', () => {
    const f = only(
      lint(variant({ smtpd_relay_restrictions: 'check_client_access static:OK, reject_unauth_destination' })),
      'smtpd_relay_restrictions',
      'error',
    );
    assert.match(f.message, /open relay/);
    assert.equal(
      f.fix,
      'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
    );
    const plain = lint(variant({ smtpd_relay_restrictions: 'permit' }));
    assert.ok(plain.some((x) => x.severity === 'error' && x.parameter === 'smtpd_relay_restrictions'));
  });

  it('no reject_unauth_destination anywhere is an error; the pre-2.10 place counts', () => {
    const none = lint(variant({ smtpd_relay_restrictions: 'permit_mynetworks, permit_sasl_authenticated' }));
    assert.ok(none.some((x) => x.severity === 'error' && /no reject_unauth_destination/.test(x.message)));
    const old = lint(
      variant({
        smtpd_relay_restrictions: '',
        smtpd_recipient_restrictions: 'permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
      }),
    );
    assert.deepEqual(old, []);
  });

  it('Postfix default relay restrictions only defer (warning); missing permits are warnings', () => {
    only(lint(variant({ smtpd_relay_restrictions: null })), 'smtpd_relay_restrictions', 'warning');
    const noSasl = lint(variant({ smtpd_relay_restrictions: 'permit_mynetworks, reject_unauth_destination' }));
    only(noSasl, 'smtpd_relay_restrictions', 'warning');
    assert.match(noSasl[0]!.message, /permit_sasl_authenticated/);
  });

  it('mynetworks wider than the internal networks is an error, narrower a warning', () => {
    const wide = only(lint(variant({ mynetworks: '127.0.0.0/8, 10.0.0.0/8, 0.0.0.0/0' })), 'mynetworks', 'error');
    assert.match(wide.message, /0\.0\.0\.0\/0/);
    only(lint(variant({ mynetworks: '127.0.0.0/8' })), 'mynetworks', 'warning');
    only(lint(variant({ mynetworks: '127.0.0.1/32, 10.1.0.0/16' })), 'mynetworks', 'warning');
    const legacy = lint(variant({ mynetworks: null, compatibility_level: null }));
    assert.ok(legacy.some((x) => x.parameter === 'mynetworks' && x.severity === 'error' && /subnet/.test(x.message)));
  });

  it('a local domain Postfix does not accept is a warning', () => {
    const f = only(lint(variant({ relay_domains: 'other.test' })), 'relay_domains', 'warning');
    assert.equal(f.fix, 'relay_domains = example.test');
  });

  it('message_size_limit below the policy limit, or 0, is an error', () => {
    const low = only(lint(variant({ message_size_limit: '1048576' })), 'message_size_limit', 'error');
    assert.match(low.message, /below the policy's limit of 2097152/);
    only(lint(variant({ message_size_limit: '0' })), 'message_size_limit', 'error');
    // Without a size rule, 0 is still an error (nothing limits the size at all).
    assert.ok(
      lint(
        variant({ message_size_limit: '0' }),
        config('local_domains: [example.test]\nnetworks:\n  internal: [127.0.0.0/8, 10.0.0.0/8]\n'),
      ).some((x) => x.parameter === 'message_size_limit'),
    );
  });

  it('relayguard missing from smtpd_milters, or after a DKIM signer, is an error', () => {
    only(lint(variant({ smtpd_milters: 'inet:127.0.0.1:8891' })), 'smtpd_milters', 'error');
    const after = only(
      lint(variant({ smtpd_milters: 'inet:127.0.0.1:8891, inet:127.0.0.1:10025' })),
      'smtpd_milters',
      'error',
    );
    assert.match(after.message, /after the DKIM milter inet:127\.0\.0\.1:8891/);
    assert.equal(after.fix, 'smtpd_milters = { inet:127.0.0.1:10025, default_action=tempfail }, inet:127.0.0.1:8891');
    only(
      lint(variant({ smtpd_milters: 'unix:/run/opendkim/opendkim.sock, inet:localhost:10025' })),
      'smtpd_milters',
      'error',
    );
    assert.deepEqual(lint(variant({ smtpd_milters: 'inet:localhost:10025, unix:/run/opendkim/opendkim.sock' })), []);
  });

  it('milter_default_action = accept is an error (fail-open), also per milter', () => {
    const f = only(lint(variant({ milter_default_action: 'accept' })), 'milter_default_action', 'error');
    assert.match(f.message, /fail-open/);
    only(lint(variant({ smtpd_milters: '{ inet:127.0.0.1:10025, default_action=accept }' })), 'smtpd_milters', 'error');
    // The per-milter setting overrides the global one.
    assert.deepEqual(
      lint(
        variant({
          milter_default_action: 'accept',
          smtpd_milters: '{ inet:127.0.0.1:10025, default_action=tempfail }',
        }),
      ),
      [],
    );
    only(lint(variant({ milter_default_action: 'reject' })), 'milter_default_action', 'warning');
  });

  it('milter timeouts not longer than relayguard deadlines are warnings', () => {
    const f = only(lint(variant({ milter_command_timeout: '20s' })), 'milter_command_timeout', 'warning');
    assert.equal(f.fix, 'milter_command_timeout = 30s');
    only(lint(variant({ milter_content_timeout: '4m' })), 'milter_content_timeout', 'warning');
    only(lint(variant({ smtpd_milters: '{ inet:127.0.0.1:10025, content_timeout=60s }' })), 'smtpd_milters', 'warning');
  });

  it('no STARTTLS while rule 9 requires TLS is an error; without that requirement a warning', () => {
    only(lint(variant({ smtpd_tls_security_level: null })), 'smtpd_tls_security_level', 'error');
    const noRequirement = config(
      'local_domains: [example.test]\nnetworks:\n  internal: [127.0.0.0/8, 10.0.0.0/8]\nrules:\n  size:\n    max_bytes: 2MiB\n',
    );
    only(lint(variant({ smtpd_tls_security_level: 'none' }), noRequirement), 'smtpd_tls_security_level', 'warning');
  });

  it('TLS offered without a certificate, or with protocols below min_version, is a warning', () => {
    only(lint(variant({ smtpd_tls_chain_files: null })), 'smtpd_tls_chain_files', 'warning');
    assert.deepEqual(
      lint(variant({ smtpd_tls_chain_files: null, smtpd_tls_cert_file: '/c.pem', smtpd_tls_key_file: '/k.pem' })),
      [],
    );
    const f = only(lint(variant({ smtpd_tls_protocols: null })), 'smtpd_tls_protocols', 'warning');
    assert.match(f.message, /allows TLSv1, below rule 9's min_version TLSv1\.2/);
  });

  it('every finding names the line that fixes it', () => {
    const all = lint(
      'disable_vrfy_command = no\nmessage_size_limit = 0\nmilter_default_action = accept\nsmtpd_milters = inet:127.0.0.1:8891\n',
    );
    assert.ok(all.length >= 5);
    for (const f of all) assert.match(f.fix, /^[a-z_]+ = /);
  });
});
