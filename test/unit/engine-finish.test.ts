// The engine's finish step at end of message: rules that sign the delivered message see every
// rule's merged modifications, add theirs, and never turn a failure into a refusal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { modify, pass, reject, type Modification, type Rule, type Verdict } from '../../src/policy/types.js';
import { kitConnection, kitInput, kitMessage, runPhase } from '../support/rule-kit.js';

const conn = () => kitConnection({ ip: '203.0.113.9', hostname: 'x' });
const msg = kitMessage('Subject: x\r\n\r\nbody\r\n');

function signer(seen: Array<readonly Modification[]>, mode: Rule['mode'] = 'enforce', fail = false): Rule {
  return {
    name: 'signer',
    mode,
    handlers: { eom: async () => pass({ checked: true }) },
    async finish(_input, mods) {
      if (fail) throw new Error('key gone');
      seen.push([...mods]);
      return {
        mods: [{ type: 'insertHeader', index: 0, name: 'X-Sig', value: String(mods.length) }],
        details: { signed: true },
      };
    },
  };
}
const changer = (v: Verdict): Rule => ({ name: 'changer', mode: 'enforce', handlers: { eom: async () => v } });
const run = (rules: Rule[]) => runPhase(rules, 'eom', kitInput(conn(), msg, { signal: AbortSignal.timeout(2000) }));

describe('engine finish step', () => {
  it('gets the merged modifications of the other rules and adds its own, with trace details', async () => {
    const seen: Array<readonly Modification[]> = [];
    const r = await run([signer(seen), changer(modify([{ type: 'addHeader', name: 'X-A', value: '1' }]))]);
    assert.deepEqual(seen, [[{ type: 'addHeader', name: 'X-A', value: '1' }]]);
    assert.deepEqual(r.mods.at(-1), { type: 'insertHeader', index: 0, name: 'X-Sig', value: '1' });
    assert.deepEqual(r.trace.find((t) => t.rule === 'signer')?.details, { checked: true, signed: true });
  });

  it('does not run for a refused message, nor in monitor mode', async () => {
    const seen: Array<readonly Modification[]> = [];
    await run([signer(seen), changer(reject('no'))]);
    await run([signer(seen, 'monitor'), changer(pass())]);
    assert.deepEqual(seen, []);
  });

  it('a failing step adds nothing and the message is still accepted', async () => {
    const r = await run([
      signer([], 'enforce', true),
      changer(modify([{ type: 'addHeader', name: 'X-A', value: '1' }])),
    ]);
    assert.equal(r.action, 'continue');
    assert.deepEqual(r.mods, [{ type: 'addHeader', name: 'X-A', value: '1' }]);
  });
});
