import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Action, MacroStage, Proto } from '../../src/protocol/constants.js';
import { negotiate, NegotiationError } from '../../src/session/negotiate.js';
import type { Phase, Rule } from '../../src/policy/types.js';

const rule = (needs: Rule['needs'], phases: Phase[]): Rule => ({
  name: 'r',
  mode: 'enforce',
  ...(needs ? { needs } : {}),
  handlers: Object.fromEntries(phases.map((p) => [p, async () => ({ action: 'continue' as const })])),
});
const handlesOf = (rules: Rule[]) => (p: Phase) => rules.some((r) => p in r.handlers);

describe('negotiation', () => {
  const offer = { version: 6, actions: 0x1ff, protocol: 0x1fffff };
  it('requests only what rules need, plus SETSYMLIST', () => {
    const rules = [rule({ actions: Action.ADDHDRS }, ['eom'])];
    const n = negotiate(offer, rules, handlesOf(rules));
    assert.equal(n.actions, Action.ADDHDRS | Action.SETSYMLIST);
    assert.ok(n.protocol & Proto.HDR_LEADSPC);
    assert.ok(n.protocol & Proto.NOUNKNOWN);
    assert.equal(n.protocol & Proto.NOBODY, 0);
  });
  it('skips content when no rule looks at it, asks for unknown commands when one does', () => {
    const rules = [rule({}, ['envrcpt', 'unknown'])];
    const n = negotiate(offer, rules, handlesOf(rules));
    assert.ok(n.protocol & Proto.NOBODY && n.protocol & Proto.NOHDRS && n.protocol & Proto.NOEOH);
    assert.equal(n.protocol & Proto.NOUNKNOWN, 0);
    assert.ok(n.protocol & Proto.NR_UNKN);
  });
  it('never asks for more than offered and reports what is missing', () => {
    const rules = [rule({ actions: Action.CHGBODY | Action.QUARANTINE }, ['eom'])];
    const n = negotiate({ version: 6, actions: Action.ADDHDRS | Action.SETSYMLIST, protocol: Proto.NR_HDR }, rules, handlesOf(rules));
    assert.equal(n.actions, Action.SETSYMLIST);
    assert.equal(n.protocol, Proto.NR_HDR);
    assert.equal(n.missingActions, Action.CHGBODY | Action.QUARANTINE);
  });
  it('adds rule macros to the base lists per stage', () => {
    const rules = [rule({ macros: { envrcpt: ['rcpt_mailer', '{x_custom}'] } }, ['envrcpt'])];
    const n = negotiate(offer, rules, handlesOf(rules));
    assert.ok(n.reply.macros![MacroStage.RCPT]!.includes('{x_custom}'));
    assert.ok(n.reply.macros![MacroStage.CONNECT]!.includes('{client_addr}'));
    assert.ok(n.reply.macros![MacroStage.EOM]!.includes('i'));
  });
  it('speaks down to older versions and refuses ancient ones', () => {
    assert.equal(negotiate({ ...offer, version: 4 }, [], () => false).version, 4);
    assert.throws(() => negotiate({ ...offer, version: 1 }, [], () => false), NegotiationError);
  });
});
