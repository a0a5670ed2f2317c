// postfix-config as changes: only what differs from the live postconf -n, the admin's own values
// kept where they can be, replacements flagged, and a second run after the changes finds nothing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parsePolicyText } from '../../src/rules/policy-schema.js';
import type { PolicyConfig } from '../../src/rules/policy-schema.js';
import { lintPostfix } from '../../src/mta/lint.js';
import { backupName, repeatedParameters } from '../../src/mta/postfix-apply.js';
import { chrootInfo, insideJail } from '../../src/mta/master-cf.js';
import {
  chrootView,
  formatChanges,
  postconfCommand,
  postfixChanges,
  shellQuote,
  type PostfixChange,
} from '../../src/mta/postfix-changes.js';
import { postfixSizeLimit } from '../../src/rules/size/mta.js';
import { parsePostconf } from '../../src/mta/postconf.js';
import { mtaRequirements } from '../../src/mta/requirements.js';
import { unifiedDiff } from '../../src/mta/text-diff.js';
import { PACKAGE_ROOT } from '../../src/cli/command.js';

const REFERENCE = join(PACKAGE_ROOT, 'examples', 'postfix', 'relayguard.yaml');

function reference(): PolicyConfig {
  const r = parsePolicyText(readFileSync(REFERENCE, 'utf8'), REFERENCE);
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.config;
}

/** main.cf after running the changes (what postconf -e does), as postconf -n would show it. */
function applied(params: Map<string, string>, changes: readonly PostfixChange[]): Map<string, string> {
  const next = new Map(params);
  for (const c of changes) if (!c.suggestion) next.set(c.name, c.value);
  return next;
}

const byName = (cs: readonly PostfixChange[], n: string) => cs.find((c) => c.name === n);

/** A Debian-like main.cf an admin already runs. */
const ADMIN = parsePostconf(`compatibility_level = 3.6
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8, 192.168.1.0/24
relay_domains = other.test
smtpd_milters = inet:127.0.0.1:8891
milter_mail_macros = i {auth_authen} {my_own}
smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_security_level = may
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination
message_size_limit = 10240000
`);

describe('postfix-config changes against the live settings', () => {
  const req = mtaRequirements(reference());

  it('against Postfix defaults: every setting the policy needs, the certificate as a suggestion', () => {
    const cs = postfixChanges(req, new Map());
    for (const n of [
      'disable_vrfy_command',
      'mynetworks',
      'relay_domains',
      'smtpd_relay_restrictions',
      'smtpd_milters',
      'smtpd_tls_security_level',
    ]) {
      assert.ok(byName(cs, n), n);
    }
    assert.equal(byName(cs, 'smtpd_tls_chain_files')?.suggestion, true);
    // Postfix's defaults that are already right are not repeated.
    assert.equal(byName(cs, 'milter_protocol'), undefined);
    assert.equal(byName(cs, 'milter_default_action'), undefined);
    assert.equal(byName(cs, 'milter_content_timeout'), undefined);
    assert.equal(byName(cs, 'message_size_limit'), undefined); // the default 10240000 is above 2 MiB
  });

  it('after the changes nothing differs, and the lint finds no error', () => {
    for (const start of [new Map<string, string>(), ADMIN]) {
      const after = applied(start, postfixChanges(req, start));
      assert.deepEqual(
        postfixChanges(req, after)
          .filter((c) => !c.suggestion)
          .map((c) => c.name),
        [],
      );
      assert.deepEqual(
        lintPostfix(after, req).filter((f) => f.severity === 'error'),
        [],
      );
    }
  });

  it("keeps the admin's own values where it can: other milters after relayguard, their macros, their domains", () => {
    const cs = postfixChanges(req, ADMIN);
    assert.equal(
      byName(cs, 'smtpd_milters')?.value,
      '{ inet:127.0.0.1:10025, default_action=tempfail }, inet:127.0.0.1:8891',
    );
    const macros = byName(cs, 'milter_mail_macros')!.value.split(' ');
    assert.ok(macros.includes('{my_own}') && macros.includes('{mail_addr}'), macros.join(' '));
    assert.equal(byName(cs, 'relay_domains')?.value, 'other.test, example.test');
    // A certificate is configured: no suggestion for one.
    assert.equal(byName(cs, 'smtpd_tls_chain_files'), undefined);
  });

  it("flags what widens or replaces the admin's settings and says what it does", () => {
    const cs = postfixChanges(req, ADMIN);
    const net = byName(cs, 'mynetworks')!;
    assert.match(
      net.flag!,
      /^replaces your mynetworks = 127\.0\.0\.0\/8, 192\.168\.1\.0\/24: 192\.168\.1\.0\/24 would no longer relay by address; widens: 10\.0\.0\.0\/8 may relay/,
    );
    assert.match(byName(cs, 'relay_domains')!.flag!, /widens relay_domains: .*example\.test.*keeps other\.test/);
    assert.match(
      byName(cs, 'smtpd_relay_restrictions')!.flag!,
      /^replaces your smtpd_relay_restrictions = .*defer_unauth_destination/,
    );
    assert.match(
      byName(cs, 'smtpd_tls_protocols')!.flag!,
      /replaces Postfix's default smtpd_tls_protocols = >=TLSv1: clients that only speak TLSv1 or TLSv1\.1/,
    );
    // 10240000 is above the policy's 2 MiB: the admin's limit stays.
    assert.equal(byName(cs, 'message_size_limit'), undefined);
    // Below it, or 0 (unlimited): a plain change, not flagged.
    for (const low of ['1000000', '0']) {
      const c = byName(postfixChanges(req, new Map(ADMIN).set('message_size_limit', low)), 'message_size_limit')!;
      assert.equal(c.flag, undefined);
      assert.equal(c.value, String(postfixSizeLimit(2 * 1024 * 1024)));
      assert.equal(c.value, '10240000');
    }
  });

  it('leaves stricter or longer settings alone (encrypt, TLSv1.3 only, longer timeouts)', () => {
    const strict = new Map(ADMIN);
    strict.set('smtpd_tls_protocols', '>=TLSv1.3');
    strict.set('milter_content_timeout', '10m');
    const cs = postfixChanges(req, strict);
    assert.equal(byName(cs, 'smtpd_tls_protocols'), undefined);
    assert.equal(byName(cs, 'milter_content_timeout'), undefined);
  });

  it('prints postconf -e commands a shell runs as written, with the reason and the flag above', () => {
    const cs = postfixChanges(req, ADMIN);
    const text = formatChanges(cs, '/etc/postfix', ['hdr']);
    assert.match(
      text,
      /^# rule 1: .*\n# CHECK FIRST: replaces your mynetworks .*\npostconf -e 'mynetworks = 127\.0\.0\.0\/8, 10\.0\.0\.0\/8'$/m,
    );
    assert.equal(
      postconfCommand('/srv/pf', { name: 'non_smtpd_milters', value: '$smtpd_milters' }),
      "postconf -c '/srv/pf' -e 'non_smtpd_milters = $smtpd_milters'",
    );
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
    // What is already right is listed too, as comments: the whole picture, nothing to run.
    assert.match(
      formatChanges([], '/etc/postfix', ['hdr'], [{ name: 'disable_vrfy_command', value: 'yes' }]),
      /^# Already as the policy needs \(no change\):\n# {3}disable_vrfy_command = yes$/m,
    );
  });
});

describe('--apply helpers', () => {
  it('finds parameters set more than once (the "later lines win" habit)', () => {
    assert.deepEqual(repeatedParameters('a = 1\nb = 2\n# a = 3\n  a = continuation\na = 4\nb=5\nc = 6\n'), ['a', 'b']);
  });

  it('names the backup after the UTC time', () => {
    assert.equal(
      backupName('/etc/postfix/main.cf', new Date('2026-12-07T05:04:03Z')),
      '/etc/postfix/main.cf.relayguard-20261207-050403',
    );
  });

  it('diffs main.cf like diff -u, removals first', () => {
    const a = 'one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n';
    const b = 'one\ntwo\nTHREE\nfour\nfive\nsix\nseven\neight\nnine\n';
    assert.equal(
      unifiedDiff(a, b, 'a', 'b'),
      '--- a\n+++ b\n@@ -1,5 +1,5 @@\n one\n two\n-three\n+THREE\n four\n five\n@@ -7,2 +7,3 @@\n seven\n eight\n+nine\n',
    );
    assert.equal(unifiedDiff(a, a, 'a', 'b'), '');
  });
});

describe('postfix-config with a chrooted smtpd (master.cf)', () => {
  const DEBIAN_MASTER = `# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       y       -       -       smtpd
  -o smtpd_tls_security_level=may
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
`;
  const unixPolicy = (path: string) => {
    const r = parsePolicyText(`server:\n  listen: unix:${path}\n`, 't.yaml');
    if (!r.ok) throw new Error('bad policy');
    return mtaRequirements(r.config);
  };

  it('reads the chroot column; "-" is "n" on Postfix 3', () => {
    assert.deepEqual(chrootInfo(DEBIAN_MASTER, '/var/spool/postfix'), {
      smtpd: true,
      cleanup: true,
      queueDirectory: '/var/spool/postfix',
    });
    assert.deepEqual(chrootInfo('smtp inet n - - - - smtpd\ncleanup unix n - n - 0 cleanup\n', '/q'), {
      smtpd: false,
      cleanup: false,
      queueDirectory: '/q',
    });
    assert.equal(
      insideJail('/var/spool/postfix/relayguard/milter.sock', '/var/spool/postfix/'),
      '/relayguard/milter.sock',
    );
    assert.equal(insideJail('/run/relayguard/milter.sock', '/var/spool/postfix'), null);
  });

  it('names the socket relative to queue_directory where smtpd and cleanup are chrooted, and lint accepts it', () => {
    const req = unixPolicy('/var/spool/postfix/relayguard/milter.sock');
    const chroot = chrootInfo(DEBIAN_MASTER, '/var/spool/postfix');
    const cs = postfixChanges(req, new Map(), chroot);
    assert.equal(byName(cs, 'smtpd_milters')?.value, '{ unix:/relayguard/milter.sock, default_action=tempfail }');
    assert.equal(byName(cs, 'non_smtpd_milters')?.value, '$smtpd_milters');
    const after = applied(new Map(), cs);
    assert.deepEqual(
      lintPostfix(after, req).filter((f) => f.parameter === 'smtpd_milters'),
      [],
    );
    assert.deepEqual(
      postfixChanges(req, after, chroot).filter((c) => !c.suggestion),
      [],
    );
  });

  it('gives cleanup its own address when only smtpd is chrooted; says so when the socket is outside the jail', () => {
    const req = unixPolicy('/var/spool/postfix/relayguard/milter.sock');
    const onlySmtpd = chrootInfo('smtp inet n - y - - smtpd\ncleanup unix n - n - 0 cleanup\n', '/var/spool/postfix');
    const cs = postfixChanges(req, new Map(), onlySmtpd);
    assert.equal(byName(cs, 'smtpd_milters')?.value, '{ unix:/relayguard/milter.sock, default_action=tempfail }');
    assert.equal(
      byName(cs, 'non_smtpd_milters')?.value,
      '{ unix:/var/spool/postfix/relayguard/milter.sock, default_action=tempfail }',
    );
    const outside = chrootView(unixPolicy('/run/relayguard/milter.sock'), onlySmtpd);
    assert.match(
      outside.note!,
      /smtpd runs chrooted in \/var\/spool\/postfix .* cannot reach \/run\/relayguard\/milter\.sock: .*unix:\/var\/spool\/postfix\/relayguard\/milter\.sock/,
    );
  });
});
