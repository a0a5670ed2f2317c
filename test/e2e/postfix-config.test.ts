// postfix-config through the real Postfix: a Postfix instance stripped of its relayguard
// settings fails lint-mta; after `postfix-config --apply` (and only the certificate path filled
// in) it passes lint-mta, delivers mail, and passes the audit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  clearQueues,
  ensureStack,
  message,
  postconf,
  restartPostfix,
  restorePostconf,
  run,
  runRelayguard,
  smtp,
  stack,
  startRelayguard,
  waitForDelivery,
  type RelayguardProcess,
} from './harness.js';

/** Everything in the stack's main.cf that configures Postfix for relayguard's policy. */
const POLICY_PARAMETERS = [
  'disable_vrfy_command',
  'message_size_limit',
  'mynetworks',
  'relay_domains',
  'smtpd_relay_restrictions',
  'smtpd_milters',
  'milter_protocol',
  'milter_default_action',
  'smtpd_tls_security_level',
  'smtpd_tls_chain_files',
];

let rg: RelayguardProcess;

/** The backups --apply leaves beside main.cf. */
const backups = () => readdirSync(stack.postfixConfigDir).filter((n) => n.startsWith('main.cf.relayguard-'));

before(async () => {
  await ensureStack();
  await restorePostconf();
  await clearQueues();
  rg = await startRelayguard();
  // A Postfix that knows nothing of relayguard: Postfix's defaults for all of the above.
  const x = await run('postconf', ['-c', stack.postfixConfigDir, '-X', ...POLICY_PARAMETERS]);
  assert.equal(x.code, 0, x.stderr);
  await restartPostfix();
});

after(async () => {
  await rg?.stop();
  for (const b of backups()) rmSync(join(stack.postfixConfigDir, b));
  await restorePostconf();
  await clearQueues();
});

describe('postfix-config applied to a fresh Postfix instance', () => {
  test('before: the unconfigured instance fails lint-mta', async () => {
    const r = await runRelayguard(['lint-mta', '--config', rg.configPath]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^error: disable_vrfy_command:/m);
    assert.match(r.stdout, /^error: smtpd_milters: relayguard .* is not in smtpd_milters/m);
  });

  test('after --apply: lint-mta finds nothing', async () => {
    const out = await runRelayguard(['postfix-config', '--config', rg.configPath, '--apply']);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(
      out.stdout,
      new RegExp(`^\\+smtpd_milters = \\{ inet:127\\.0\\.0\\.1:${stack.milterPort}, default_action=tempfail \\}$`, 'm'),
    );
    assert.match(out.stdout, /^\+disable_vrfy_command = yes$/m);
    assert.equal(backups().length, 1);
    // The one site-specific value postfix-config leaves to the admin: the certificate.
    assert.match(out.stdout, /^not applied \(site data\): smtpd_tls_chain_files:/m);
    await postconf({ smtpd_tls_chain_files: `${stack.postfixConfigDir}/key.pem, ${stack.postfixConfigDir}/cert.pem` });
    const r = await runRelayguard(['lint-mta', '--config', rg.configPath]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /: 0 error\(s\), 0 warning\(s\)$/m);
  });

  test('after: mail flows through relayguard (outside client to example.test is delivered)', async () => {
    const data = message({ from: 'sender@outside.test', to: 'user@example.test', body: 'postfix-config e2e' });
    const s = await smtp({
      from: 'sender@outside.test',
      to: ['user@example.test'],
      data,
      xclient: { addr: '203.0.113.20' },
    });
    assert.equal(s.ok, true, s.dataReply?.full ?? s.error);
    assert.match(await waitForDelivery(s.queueId!), /^X-Relayguard:/m);
  });

  test('after: the audit passes every probe', async () => {
    const r = await runRelayguard(['audit', '--smtp', `${stack.host}:${stack.smtpPort}`, '--config', rg.configPath], {
      timeoutMs: 150_000,
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^all \d+ probes passed$/m);
  });
});
