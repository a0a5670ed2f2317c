// `relayguard offenders` and `relayguard unban` against a SQLite ledger in a temporary state dir.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { captureCommand } from '../support/capture-output.js';
import { offendersCommand, shortDuration, unbanCommand } from '../../src/cli/offenders.js';
import type { Command } from '../../src/cli/command.js';
import { createOffenderLedger } from '../../src/deps/offender-ledger.js';

const dir = mkdtempSync(join(tmpdir(), 'rg-offenders-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const stateDir = join(dir, 'state');
const policyFile = join(dir, 'policy.yaml');
writeFileSync(
  policyFile,
  `server:\n  state_dir: ${stateDir}\nrules:\n  offenders:\n    threshold: 2\n    window: 5m\n    ban: 2h\n`,
);

/** Runs a command with stdout and stderr captured. */
const run = (cmd: Command, argv: string[]) => captureCommand(() => cmd.run(argv));

describe('offenders / unban commands', () => {
  it('shortDuration', () => {
    assert.equal(shortDuration(600_000), '10m');
    assert.equal(shortDuration(3_600_000), '1h');
    assert.equal(shortDuration(90_000), '90s');
    assert.equal(shortDuration(1500), '1500ms');
  });

  it('no database yet: no offenders, nothing created; unban says not banned', async () => {
    const r = await run(offendersCommand, ['--config', policyFile]);
    assert.equal(r.code, 0);
    assert.match(r.out, /offences count for 5m; 2 of them ban an IP for 2h\nno offenders\n/);
    const u = await run(unbanCommand, ['203.0.113.9', '--config', policyFile]);
    assert.equal(u.code, 1);
    assert.match(u.err, /203\.0\.113\.9 is not banned/);
  });

  it('lists banned IPs first, as a table and as JSON; unban lifts a ban once', async () => {
    const ledger = createOffenderLedger({ state_dir: stateDir }, { threshold: 2, window: 300_000, ban: 7_200_000 });
    await ledger.record('203.0.113.10', 'rejection', 'relay: <a@elsewhere.test>: Relay access denied');
    await ledger.record('203.0.113.9', 'expn', 'EXPN attempt');
    await ledger.record('203.0.113.9', 'expn', 'EXPN attempt');
    await ledger.close();

    const table = await run(offendersCommand, ['--config', policyFile]);
    const lines = table.out.trim().split('\n');
    assert.match(lines[1]!, /^IP\s+OFFENCES\s+TOTAL\s+BANNED UNTIL\s+LAST SEEN\s+LAST OFFENCE$/);
    assert.match(lines[2]!, /^203\.0\.113\.9\s+2\s+2\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\s+.*EXPN attempt$/);
    assert.match(lines[3]!, /^203\.0\.113\.10\s+1\s+1\s+-\s+.*Relay access denied$/);

    const json = JSON.parse((await run(offendersCommand, ['--config', policyFile, '--json'])).out) as {
      offenders: Array<{ ip: string; banned: boolean; offences: number }>;
    };
    assert.deepEqual(
      json.offenders.map((o) => [o.ip, o.banned, o.offences]),
      [
        ['203.0.113.9', true, 2],
        ['203.0.113.10', false, 1],
      ],
    );

    assert.equal((await run(unbanCommand, ['203.0.113.10', '--config', policyFile])).code, 1, 'listed but not banned');
    const u = await run(unbanCommand, ['::ffff:203.0.113.9', '--config', policyFile]);
    assert.equal(u.code, 0, u.err);
    assert.equal(u.out, '203.0.113.9: ban lifted, offences forgotten\n');
    assert.equal((await run(unbanCommand, ['203.0.113.9', '--config', policyFile])).code, 1);
  });

  it('refuses what is not an IP address, and a missing argument', async () => {
    const r = await run(unbanCommand, ['example.test', '--config', policyFile]);
    assert.equal(r.code, 1);
    assert.match(r.err, /"example\.test" is not an IP address/);
    await assert.rejects(run(unbanCommand, ['--config', policyFile]), /exactly one IP address/);
  });

  it('the country the origin rule placed an address in: a column, a filter, a count per country', async () => {
    const geoDir = join(dir, 'geo');
    const geoPolicy = join(dir, 'geo.yaml');
    writeFileSync(
      geoPolicy,
      `server:\n  state_dir: ${geoDir}\nrules:\n  offenders:\n    threshold: 2\n    window: 5m\n    ban: 2h\n`,
    );
    const ledger = createOffenderLedger({ state_dir: geoDir }, { threshold: 2, window: 300_000, ban: 7_200_000 });
    await ledger.record('198.51.100.1', 'origin', 'origin: RU AS64501', 'RU');
    await ledger.record('198.51.100.1', 'rejection', 'relay: denied'); // no country this time: the one known stays
    await ledger.record('198.51.100.2', 'origin', 'origin: RU AS64501', 'RU');
    await ledger.record('2001:db8::7', 'origin', 'origin: KP', 'KP');
    await ledger.record('203.0.113.50', 'expn', 'EXPN attempt');
    await ledger.close();

    const table = (await run(offendersCommand, ['--config', geoPolicy])).out.trim().split('\n');
    assert.match(table[1]!, /^IP\s+COUNTRY\s+OFFENCES\s+TOTAL\s+BANNED UNTIL\s+LAST SEEN\s+LAST OFFENCE$/);
    assert.match(
      table.find((l) => l.startsWith('198.51.100.1 '))!,
      /^198\.51\.100\.1\s+RU\s+2\s+2\s+\d{4}-/,
    );
    assert.match(
      table.find((l) => l.startsWith('203.0.113.50 '))!,
      /^203\.0\.113\.50\s+-\s+1\s+/,
    );

    const ru = JSON.parse((await run(offendersCommand, ['--config', geoPolicy, '--country', 'ru', '--json'])).out) as {
      offenders: Array<{ ip: string; country: string }>;
    };
    assert.deepEqual(ru.offenders.map((o) => [o.ip, o.country]).sort(), [
      ['198.51.100.1', 'RU'],
      ['198.51.100.2', 'RU'],
    ]);
    const two = JSON.parse(
      (await run(offendersCommand, ['--config', geoPolicy, '--country', 'RU', '--country', 'KP', '--json'])).out,
    ) as { offenders: unknown[] };
    assert.equal(two.offenders.length, 3);

    const counts = (await run(offendersCommand, ['--config', geoPolicy, '--by-country'])).out;
    assert.match(counts, /^COUNTRY\s+ADDRESSES\s+BANNED\nRU\s+2\s+1\n-\s+1\s+0\nKP\s+1\s+0\n$/);
    await assert.rejects(
      run(offendersCommand, ['--config', geoPolicy, '--country', 'Russia']),
      /--country RUSSIA: use a two-letter ISO 3166 code/,
    );
  });
});
