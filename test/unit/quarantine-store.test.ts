import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { QuarantineStore, recordQuarantine } from '../../src/deps/quarantine-store.js';
import { stateDbPath } from '../../src/deps/state-file.js';
import { parseEnvelopeAddress } from '../../src/primitives/address.js';
import type { Decision } from '../../src/policy/decision.js';
import { kitConnection, kitMessage } from '../support/rule-kit.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'rg-qstore-'));
  dirs.push(d);
  return d;
}

function decision(overrides: Partial<Decision['outcome']> = {}, trace: Decision['trace'] = []): Decision {
  const msg = kitMessage('Subject: held\r\n\r\nbody\r\n', {
    queueId: 'ABC123DEF',
    from: 'alice@example.test',
    to: ['bob@outside.test', { address: parseEnvelopeAddress('refused@outside.test'), args: [], refused: true }],
    direction: 'outbound',
  });
  return {
    conn: kitConnection({ id: 'c1' }),
    msg,
    phase: 'eom',
    outcome: {
      action: 'quarantine',
      quarantine: 'virus Eicar',
      rule: 'antivirus',
      ref: 'c1-1',
      mods: [],
      ...overrides,
    },
    trace,
  };
}

describe('quarantine store', () => {
  test('the daemon creates directory and database; records round-trip', () => {
    const dir = join(tempDir(), 'state', 'nested');
    const store = QuarantineStore.open(dir);
    const rec = recordQuarantine(store, decision());
    assert.ok(rec);
    assert.equal(existsSync(stateDbPath(dir)), true);
    const got = store.latest('ABC123DEF')!;
    assert.equal(got.rule, 'antivirus');
    assert.equal(got.reason, 'virus Eicar');
    assert.equal(got.direction, 'outbound');
    assert.equal(got.sender, 'alice@example.test');
    assert.deepEqual(got.recipients, ['bob@outside.test'], 'refused recipients are not held');
    assert.equal(got.ref, 'c1-1');
    assert.equal(got.state, 'held');
    store.close();
  });

  test('the command line never creates the database', () => {
    const dir = tempDir();
    assert.equal(QuarantineStore.openExisting(dir), null);
    assert.equal(existsSync(stateDbPath(dir)), false);
  });

  test('state changes touch the newest held record of that queue ID only', () => {
    const dir = tempDir();
    const store = QuarantineStore.open(dir);
    store.record({
      queueId: 'Q1',
      rule: 'a',
      reason: 'old',
      direction: 'inbound',
      sender: '',
      recipients: [],
      ref: 'r1',
      time: new Date(1000),
    });
    store.setState('Q1', 'released');
    store.record({
      queueId: 'Q1',
      rule: 'a',
      reason: 'new',
      direction: 'inbound',
      sender: '',
      recipients: [],
      ref: 'r2',
    });
    assert.equal(store.latest('Q1')!.reason, 'new');
    assert.equal(store.latest('Q1', new Date(Date.now() + 60_000)), undefined, 'none made since then');
    assert.equal(store.setState('Q1', 'deleted'), true);
    assert.equal(store.setState('Q1', 'deleted'), false, 'nothing held any more');
    assert.deepEqual(
      store.list().map((r) => [r.reason, r.state]),
      [
        ['old', 'released'],
        ['new', 'deleted'],
      ],
    );
    assert.equal(store.list('held').length, 0);
    // A second handle (the CLI while serve runs) sees the same data.
    const other = QuarantineStore.openExisting(dir)!;
    assert.equal(other.latest('Q1')!.state, 'deleted');
    other.close();
    store.close();
  });

  test('recordQuarantine ignores anything but a hold, takes the rule from the trace if needed', () => {
    const store = QuarantineStore.open(tempDir());
    assert.equal(recordQuarantine(store, decision({ action: 'reject' })), null);
    const rec = recordQuarantine(
      store,
      decision({ rule: undefined as unknown as string }, [
        { rule: 'content', phase: 'eom', action: 'quarantine', monitor: true, ms: 1 },
        { rule: 'dlp', phase: 'eom', action: 'quarantine', ms: 1 },
      ]),
    );
    assert.equal(rec!.rule, 'dlp');
    store.close();
  });

  test('recordQuarantine never throws (closed database)', () => {
    const store = QuarantineStore.open(tempDir());
    store.close();
    assert.equal(recordQuarantine(store, decision()), null);
  });
});
