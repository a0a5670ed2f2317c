import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Action, MacroStage, Proto } from '../../src/protocol/constants.js';
import { eventNeeds, negotiate, negotiateCached, NegotiationError } from '../../src/session/negotiate.js';
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
    const rules = [rule({ actions: ['addHeader'] }, ['eom'])];
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
    const rules = [rule({ actions: ['replaceBody', 'quarantine'] }, ['eom'])];
    const n = negotiate(
      { version: 6, actions: Action.ADDHDRS | Action.SETSYMLIST, protocol: Proto.NR_HDR },
      rules,
      handlesOf(rules),
    );
    assert.equal(n.actions, Action.SETSYMLIST);
    assert.equal(n.protocol, Proto.NR_HDR);
    assert.equal(n.missingActions, Action.CHGBODY | Action.QUARANTINE);
  });
  it('turns the words of needs.actions and needs.protocol into milter bits', () => {
    const rules = [
      rule({ actions: ['addHeader', 'changeHeader', 'replaceBody', 'quarantine'], protocol: ['refusedRecipients'] }, [
        'envrcpt',
      ]),
    ];
    const n = negotiate(offer, rules, handlesOf(rules));
    assert.equal(n.actions, Action.ADDHDRS | Action.CHGHDRS | Action.CHGBODY | Action.QUARANTINE | Action.SETSYMLIST);
    assert.ok(n.protocol & Proto.RCPT_REJ);
    const without = negotiate(offer, [rule({}, ['envrcpt'])], handlesOf([rule({}, ['envrcpt'])]));
    assert.equal(without.protocol & Proto.RCPT_REJ, 0);
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

  it('does not ask for HELO, DATA, headers, EOH or the body when the rules declare they read none', () => {
    const rules = [rule({ actions: ['addHeader'], events: [] }, ['eom'])];
    const n = negotiate(offer, rules, handlesOf(rules));
    for (const bit of [Proto.NOHELO, Proto.NODATA, Proto.NOHDRS, Proto.NOEOH, Proto.NOBODY])
      assert.ok(n.protocol & bit, `bit 0x${bit.toString(16)}`);
    assert.equal(eventNeeds(rules, handlesOf(rules)).storeBody, false);
  });
  it('without a declaration a content rule gets HELO, headers and body; DATA and EOH only when handled', () => {
    const rules = [rule({}, ['eom'])];
    const n = negotiate(offer, rules, handlesOf(rules));
    assert.equal(n.protocol & (Proto.NOHELO | Proto.NOHDRS | Proto.NOBODY), 0);
    assert.ok(n.protocol & Proto.NODATA && n.protocol & Proto.NOEOH);
    assert.equal(eventNeeds(rules, handlesOf(rules)).storeBody, true);
    const withData = [rule({}, ['data', 'eoh', 'eom'])];
    assert.equal(negotiate(offer, withData, handlesOf(withData)).protocol & (Proto.NODATA | Proto.NOEOH), 0);
  });
  it('one undeclared rule keeps HELO; a declared one gets only what it lists', () => {
    const envelopeOnly = rule({}, ['envrcpt']);
    const bodyReader = rule({ events: ['body'] }, ['eom']);
    const n = negotiate(offer, [envelopeOnly, bodyReader], handlesOf([envelopeOnly, bodyReader]));
    assert.equal(
      n.protocol & (Proto.NOHELO | Proto.NOBODY),
      0,
      'HELO for the undeclared rule, the body for the reader',
    );
    assert.ok(n.protocol & Proto.NOHDRS, 'nobody reads headers');
  });
  it('no-reply bits for unjudged events over a unix socket only', () => {
    const rules = [rule({ events: [] }, ['envrcpt', 'eom'])];
    const unix = negotiate(offer, rules, handlesOf(rules), 'unix');
    for (const bit of [Proto.NR_CONN, Proto.NR_HELO, Proto.NR_MAIL, Proto.NR_DATA, Proto.NR_EOH, Proto.NR_BODY])
      assert.ok(unix.protocol & bit, `bit 0x${bit.toString(16)}`);
    assert.equal(unix.protocol & Proto.NR_RCPT, 0, 'a judged event keeps its reply');
    const tcp = negotiate(offer, rules, handlesOf(rules), 'inet');
    assert.equal(
      tcp.protocol &
        (Proto.NR_CONN | Proto.NR_HELO | Proto.NR_MAIL | Proto.NR_RCPT | Proto.NR_DATA | Proto.NR_EOH | Proto.NR_BODY),
      0,
    );
    const headerRule = [rule({}, ['header', 'eom'])];
    assert.equal(
      negotiate(offer, headerRule, handlesOf(headerRule), 'unix').protocol & Proto.NR_EOH,
      0,
      'refusals from headers are answered at EOH',
    );
  });
  it('caches one negotiation per policy, offer and transport', () => {
    const rules = [rule({ actions: ['addHeader'] }, ['eom'])];
    const engine = { activeRules: () => rules, handles: handlesOf(rules) };
    const a = negotiateCached(engine, offer, 'unix');
    assert.equal(negotiateCached(engine, { ...offer }, 'unix'), a);
    assert.notEqual(negotiateCached(engine, offer, 'inet'), a);
    assert.notEqual(negotiateCached(engine, { ...offer, protocol: Proto.NR_HDR }, 'unix'), a);
    assert.notEqual(
      negotiateCached({ activeRules: () => rules, handles: handlesOf(rules) }, offer, 'unix'),
      a,
      'another policy',
    );
    assert.deepEqual(a.negotiated, negotiate(offer, rules, handlesOf(rules), 'unix'));
    assert.throws(() => negotiateCached(engine, { ...offer, version: 1 }, 'unix'), NegotiationError);
  });
});
