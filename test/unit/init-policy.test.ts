// relayguard init's reading of Postfix and clamd values: domains and networks from the lists
// Postfix uses (tables named, not guessed), clamd's address, the TLS floor; the text validates.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import { deriveSites, initPolicyText, parseClamdConf, tlsFloor } from '../../src/mta/init-policy.js';

const debian = new Map([
  ['mydestination', 'mx.example.org, example.org, localhost.example.org, localhost'],
  ['relay_domains', 'hash:/etc/postfix/relay_domains, .sub.example.net'],
  ['virtual_alias_domains', 'example.com'],
  ['virtual_mailbox_domains', ''],
  ['mynetworks', '127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128 192.168.10.5 /etc/postfix/networks'],
  ['message_size_limit', '0'],
  ['smtpd_tls_security_level', 'may'],
  ['smtpd_tls_mandatory_protocols', '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2'],
  ['smtpd_tls_cert_file', '/etc/ssl/certs/ssl-cert-snakeoil.pem'],
]);

describe('relayguard init', () => {
  it('takes domains from every list Postfix accepts mail for, names the tables it cannot read', () => {
    const d = deriveSites(debian);
    assert.deepEqual(d.domains, ['mx.example.org', 'example.org', 'sub.example.net', 'example.com']);
    assert.deepEqual(d.networks, ['127.0.0.0/8', '::ffff:127.0.0.0/104', '::1/128', '192.168.10.5/32']);
    assert.deepEqual(d.unread, ['relay_domains: hash:/etc/postfix/relay_domains', 'mynetworks: /etc/postfix/networks']);
  });

  it('reads clamd.conf: LocalSocket first, else TCPSocket on a reachable address; the sample is not a config', () => {
    assert.deepEqual(
      parseClamdConf('# LocalSocket /nope\nLocalSocket /run/clamav/clamd.ctl\nTCPSocket 3310\nStreamMaxLength 25M\n'),
      { address: 'unix:/run/clamav/clamd.ctl', streamMaxLength: '25M' },
    );
    assert.deepEqual(parseClamdConf('TCPSocket 3310\nTCPAddr 0.0.0.0\n'), { address: 'tcp:127.0.0.1:3310' });
    assert.deepEqual(parseClamdConf('TCPSocket 3310\nTCPAddr ::1\n'), { address: 'tcp:[::1]:3310' });
    assert.equal(parseClamdConf('Example\nLocalSocket /tmp/x\n'), null);
    assert.equal(parseClamdConf('LogFile /var/log/clamav.log\n'), null);
  });

  it('keeps the TLS floor at TLSv1.2 or the stricter one Postfix has', () => {
    assert.equal(tlsFloor(debian), 'TLSv1.3');
    assert.equal(tlsFloor(new Map([['smtpd_tls_mandatory_protocols', '>=TLSv1']])), 'TLSv1.2');
  });

  it('writes a valid policy, every rule monitor, size 10240000 when Postfix has no limit', () => {
    const text = initPolicyText(debian, {
      configDir: '/etc/postfix',
      clamdConf: '/etc/clamav/clamd.conf',
      clamd: { found: { address: 'unix:/run/clamav/clamd.ctl' } },
    });
    const r = parsePolicyText(text, 'init.yaml');
    assert.ok(r.ok, r.ok ? '' : r.errors.map((e) => `${e.line}:${e.message}`).join('\n'));
    for (const [name, c] of Object.entries(r.config.rules))
      if (c) assert.equal((c as { mode: string }).mode, 'monitor', name);
    assert.match(text, /max_bytes: 10240000/);
    assert.match(
      text,
      /# not read \(a table or file; add its domains by hand\): relay_domains: hash:\/etc\/postfix\/relay_domains/,
    );
    assert.doesNotMatch(text, /^\s+mode: enforce/m);
  });
});

describe('relayguard init with a chrooted smtpd', () => {
  it('says how to listen inside the jail, and stays valid', () => {
    const text = initPolicyText(new Map(), {
      configDir: '/etc/postfix',
      clamdConf: '/x',
      clamd: { found: null, why: 'x' },
      chrootedSmtpd: '/var/spool/postfix',
    });
    assert.match(text, /^ {2}# listen: unix:\/var\/spool\/postfix\/relayguard\/milter\.sock/m);
    assert.ok(parsePolicyText(text, 'init.yaml').ok);
  });
});
