// postfix-config: the lines written for a policy, and that they pass the lint.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import type { PolicyConfig } from '../../src/rules/policy-schema.js';
import { lintPostfix } from '../../src/mta/lint.js';
import { parsePostconf, parseMilterEntry, splitList } from '../../src/mta/postconf.js';
import { formatConfigLines, postfixConfigLines } from '../../src/mta/postfix-config.js';
import { mtaRequirements } from '../../src/mta/requirements.js';
import {
  accessMapPath,
  accessMapPrefix,
  formatAccessMap,
  formatSendmailConfig,
  sendmailAccessEntries,
} from '../../src/mta/sendmail-config.js';
import { PACKAGE_ROOT } from '../../src/cli/command.js';
import { SIZE_HEADROOM_BYTES } from '../../src/rules/size/mta.js';
import { excludedProtocols } from '../../src/rules/tls/mta.js';

const REFERENCE = join(PACKAGE_ROOT, 'examples', 'postfix', 'relayguard.yaml');

function policy(yaml: string): PolicyConfig {
  const r = parsePolicyText(yaml, 'test.yaml');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.config;
}

function reference(): PolicyConfig {
  const r = parsePolicyText(readFileSync(REFERENCE, 'utf8'), REFERENCE);
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.config;
}

/** The generated main.cf lines as Postfix would read them. */
function generated(config: PolicyConfig): Map<string, string> {
  return parsePostconf(formatConfigLines(postfixConfigLines(mtaRequirements(config)), ['test']));
}

describe('postfix-config for the reference policy', () => {
  const cf = generated(reference());

  it('closes VRFY, relaying and wires relayguard in first, fail closed', () => {
    assert.equal(cf.get('disable_vrfy_command'), 'yes');
    assert.equal(
      cf.get('smtpd_relay_restrictions'),
      'permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
    );
    assert.equal(cf.get('mynetworks'), '127.0.0.0/8, 10.0.0.0/8');
    assert.equal(cf.get('relay_domains'), 'example.test');
    const milters = splitList(cf.get('smtpd_milters')!).map(parseMilterEntry);
    assert.equal(milters[0]!.address, 'inet:127.0.0.1:10025');
    assert.equal(milters[0]!.settings.default_action, 'tempfail');
    assert.equal(cf.get('milter_protocol'), '6');
    assert.equal(cf.get('milter_default_action'), 'tempfail');
  });

  it('gives Postfix timeouts longer than relayguard deadlines (20s envelope, 240s content)', () => {
    assert.equal(cf.get('milter_command_timeout'), '30s');
    assert.equal(cf.get('milter_content_timeout'), '300s');
  });

  it('keeps Postfix above the 2 MiB size limit, at its default 10240000 (never lowered, relayguard decides with its reference)', () => {
    assert.equal(Number(cf.get('message_size_limit')), 10240000);
  });

  it('lists the macros relayguard reads, on top of Postfix defaults', () => {
    const connect = cf.get('milter_connect_macros')!.split(' ');
    for (const m of ['j', 'v', '_', '{daemon_name}', '{client_addr}']) assert.ok(connect.includes(m), m);
    const mail = cf.get('milter_mail_macros')!.split(' ');
    for (const m of ['i', '{auth_authen}', '{mail_addr}', '{tls_version}']) assert.ok(mail.includes(m), m);
  });

  it('offers TLS and refuses protocols below TLSv1.2', () => {
    assert.equal(cf.get('smtpd_tls_security_level'), 'may');
    assert.equal(cf.get('smtpd_tls_protocols'), '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1');
    assert.equal(cf.get('smtpd_tls_mandatory_protocols'), '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1');
    // Certificate paths are site data: suggested, commented out.
    assert.equal(cf.has('smtpd_tls_chain_files'), false);
  });

  it('has a one-line reason above every setting', () => {
    const text = formatConfigLines(postfixConfigLines(mtaRequirements(reference())), ['hdr']);
    const lines = text.trimEnd().split('\n').slice(1);
    for (let i = 0; i < lines.length; i += 2) {
      assert.match(lines[i]!, /^# \S/, `reason line before ${lines[i + 1]}`);
      assert.match(lines[i + 1]!, /^#?[a-z_]+ = /);
    }
  });

  it('passes lint-mta: no errors, and only the certificate warning', () => {
    const findings = lintPostfix(cf, mtaRequirements(reference()));
    assert.deepEqual(
      findings.filter((f) => f.severity === 'error'),
      [],
    );
    assert.deepEqual(
      findings.map((f) => f.parameter),
      ['smtpd_tls_chain_files'],
    );
    const withCert = new Map(cf).set('smtpd_tls_chain_files', '/etc/postfix/key.pem, /etc/postfix/cert.pem');
    assert.deepEqual(lintPostfix(withCert, mtaRequirements(reference())), []);
  });
});

describe('postfix-config derives each value from the policy', () => {
  it("takes the largest of per-direction limits, plus headroom above Postfix's default", () => {
    const cf = generated(policy('rules:\n  size:\n    max_bytes: { inbound: 1MiB, outbound: 15MiB }\n'));
    assert.equal(Number(cf.get('message_size_limit')), 15 * 1024 * 1024 + SIZE_HEADROOM_BYTES);
    assert.equal(cf.has('mailbox_size_limit'), false);
  });

  it('without a size rule keeps a finite limit (Postfix default), never 0', () => {
    assert.equal(generated(policy('{}')).get('message_size_limit'), '10240000');
  });

  it('raises mailbox_size_limit with a big message limit (Postfix would not start)', () => {
    const cf = generated(policy('rules:\n  size:\n    max_bytes: 60MiB\n'));
    assert.equal(cf.get('mailbox_size_limit'), cf.get('message_size_limit'));
  });

  it('turns a wildcard or unix listen address into one the MTA can reach', () => {
    assert.match(
      generated(policy('server:\n  listen: inet:0.0.0.0:11000\n')).get('smtpd_milters')!,
      /\{ inet:127\.0\.0\.1:11000, default_action=tempfail \}/,
    );
    assert.match(
      generated(policy('server:\n  listen: unix:/run/relayguard/milter.sock\n')).get('smtpd_milters')!,
      /unix:\/run\/relayguard\/milter\.sock/,
    );
    assert.match(
      generated(policy('server:\n  listen: inet:[::1]:10025\n')).get('smtpd_milters')!,
      /inet:\[::1\]:10025/,
    );
  });

  it('writes IPv6 networks in brackets and adds the relay rule networks and domains', () => {
    const cf = generated(
      policy(
        'local_domains: [example.test]\nnetworks:\n  internal: [127.0.0.0/8, "::1/128"]\nrules:\n  relay:\n    relay_domains: [other.test]\n    include_subdomains: true\n    trusted_networks: [192.168.5.0/24]\n',
      ),
    );
    assert.equal(cf.get('mynetworks'), '127.0.0.0/8, [::1]/128, 192.168.5.0/24');
    assert.equal(cf.get('relay_domains'), 'example.test, .example.test, other.test, .other.test');
  });

  it('follows a longer deadline with a longer timeout', () => {
    const cf = generated(policy('server:\n  deadlines: { connect: 10s, envelope: 45s, content: 400s }\n'));
    assert.equal(cf.get('milter_command_timeout'), '55s');
    assert.equal(cf.get('milter_content_timeout'), '410s');
  });

  it('follows rule 9: min_version and partner domains reached over TLS', () => {
    assert.equal(excludedProtocols('TLSv1.3'), '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2');
    const cf = generated(
      policy('rules:\n  tls:\n    min_version: TLSv1.3\n    require:\n      sender_domains: [partner.test]\n'),
    );
    assert.equal(cf.get('smtpd_tls_protocols'), '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2');
    assert.equal(cf.get('smtp_tls_policy_maps'), 'inline:{ partner.test=encrypt, .partner.test=encrypt }');
    const findings = lintPostfix(
      cf,
      mtaRequirements(
        policy('rules:\n  tls:\n    min_version: TLSv1.3\n    require:\n      sender_domains: [partner.test]\n'),
      ),
    );
    assert.deepEqual(
      findings.filter((f) => f.severity === 'error'),
      [],
    );
  });

  it('adds the macros a rule declares', () => {
    const req = mtaRequirements(policy('{}'), [{ macros: { envrcpt: ['{rcpt_extra}'], eom: ['msg_id'] } }]);
    const cf = parsePostconf(formatConfigLines(postfixConfigLines(req), []));
    assert.ok(cf.get('milter_rcpt_macros')!.split(' ').includes('{rcpt_extra}'));
    assert.ok(cf.get('milter_end_of_data_macros')!.split(' ').includes('{msg_id}'));
  });
});

describe('postfix-config --mta sendmail', () => {
  const mc = formatSendmailConfig(mtaRequirements(reference()), ['hdr'], {
    accessMap: accessMapPath('/etc/mail/sendmail.cf'),
  });

  it('writes the privacy flags, size and the milter with fail-closed flags and timeouts', () => {
    assert.match(mc, /^define\(`confPRIVACY_FLAGS', `goaway,noexpn,novrfy'\)dnl$/m);
    assert.match(
      mc,
      new RegExp(`^define\\(\`confMAX_MESSAGE_SIZE', \`${2 * 1024 * 1024 + SIZE_HEADROOM_BYTES}'\\)dnl$`, 'm'),
    );
    assert.match(
      mc,
      /^INPUT_MAIL_FILTER\(`relayguard', `S=inet:10025@127\.0\.0\.1, F=T, T=C:30s;S:30s;R:30s;E:5m'\)dnl$/m,
    );
  });

  it('lists macros with m4 double quotes, keeping Sendmail defaults', () => {
    const line = mc.split('\n').find((l) => l.startsWith("define(`confMILTER_MACROS_CONNECT'"))!;
    assert.match(
      line,
      /^define\(`confMILTER_MACROS_CONNECT', ``j, _, \{daemon_name\}, \{if_name\}, \{if_addr\}, .*\{client_addr\}.*''\)dnl$/,
    );
    assert.match(mc, /^define\(`confMILTER_MACROS_EOM', ``\{msg_id\}, i''\)dnl$/m);
  });

  it('turns TLS minimum into OpenSSL options and describes relaying as access entries', () => {
    assert.match(
      mc,
      /confSERVER_SSL_OPTIONS', `\+SSL_OP_NO_SSLv2 \+SSL_OP_NO_SSLv3 \+SSL_OP_NO_TLSv1 \+SSL_OP_NO_TLSv1_1'/,
    );
    assert.deepEqual(sendmailAccessEntries(mtaRequirements(reference()), { accessMap: '/etc/mail/access' }), [
      'Connect:127\tRELAY',
      'Connect:10\tRELAY',
      'To:example.test\tRELAY',
    ]);
    assert.equal(accessMapPrefix('192.168.5.0/24'), '192.168.5');
    assert.equal(accessMapPrefix('10.1.0.0/20'), null);
    assert.doesNotMatch(mc, /^FEATURE\(`promiscuous_relay'\)/m);
  });

  it('names the access map beside sendmail.cf; a failed lookup is a temporary failure; --access-map prints the file', () => {
    assert.match(mc, /^FEATURE\(`access_db', `hash -T<TMPF> \/etc\/mail\/access'\)dnl$/m);
    assert.equal(accessMapPath('/srv/mail/sendmail.cf'), '/srv/mail/access');
    assert.equal(
      formatAccessMap(mtaRequirements(reference()), ['hdr'], { accessMap: '/etc/mail/access' }),
      '# hdr\nConnect:127\tRELAY\nConnect:10\tRELAY\nTo:example.test\tRELAY\n',
    );
  });

  it('keeps every non-m4 line a dnl comment', () => {
    for (const l of mc.trimEnd().split('\n')) assert.match(l, /^(dnl |define\(|INPUT_MAIL_FILTER\(|FEATURE\()/, l);
  });
});
