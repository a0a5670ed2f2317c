// Engine: verdict merging, monitor mode, deadlines, and the outcome -> SMTP reply mapping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/ops/logging.js';
import { PolicyEngine } from '../../src/engine/engine.js';
import { DEFAULT_DEPENDENCY_TEMPFAIL, DEFAULT_REJECT, toSmtpReply } from '../../src/policy/reply.js';
import {
  pass,
  quarantine,
  reject,
  tempfail,
  type ConnectionContext,
  type Rule,
  type Verdict,
} from '../../src/policy/types.js';

const conn = (): ConnectionContext => ({
  id: 'c1',
  client: { ip: '203.0.113.9', hostname: 'x', port: 1, family: 'inet' },
  macros: { get: () => undefined },
  internalNetwork: false,
  networkGroups: [],
  state: new Map(),
  log: silentLogger(),
});

const rule = (name: string, v: Verdict | (() => Promise<Verdict>), mode: Rule['mode'] = 'enforce'): Rule => ({
  name,
  mode,
  handlers: { connect: typeof v === 'function' ? v : async () => v },
});

const run = (rules: Rule[], ms = 1000) =>
  new PolicyEngine(rules).run('connect', { conn: conn(), signal: AbortSignal.timeout(ms) });

describe('engine', () => {
  it('merges by precedence: reject > tempfail > quarantine > continue', async () => {
    const r = await run([
      rule('a', quarantine('hold')),
      rule('b', tempfail('dns down')),
      rule('c', reject('bad')),
      rule('d', pass()),
    ]);
    assert.equal(r.action, 'reject');
    assert.equal(r.rule, 'c');
    assert.equal(r.trace.length, 4);
    const t = await run([rule('a', quarantine('hold')), rule('b', tempfail('dns down'))]);
    assert.equal(t.action, 'tempfail');
    assert.equal(t.cause, 'dependency');
  });

  it('monitor mode records what would happen and changes nothing', async () => {
    const r = await run([rule('m', reject('would refuse'), 'monitor')]);
    assert.equal(r.action, 'continue');
    assert.deepEqual(
      r.trace.map((t) => [t.rule, t.action, t.monitor]),
      [['m', 'reject', true]],
    );
  });

  it('off rules never run', async () => {
    let ran = false;
    const r = await run([
      rule(
        'off',
        async () => {
          ran = true;
          return reject('x');
        },
        'off',
      ),
    ]);
    assert.equal(r.action, 'continue');
    assert.equal(ran, false);
  });

  it('a rule past the deadline becomes a dependency tempfail, even if it ignores its signal', async () => {
    const started = Date.now();
    const r = await run([rule('slow', () => new Promise((res) => setTimeout(() => res(pass()), 2000)))], 100);
    assert.ok(Date.now() - started < 1000);
    assert.equal(r.action, 'tempfail');
    assert.equal(r.cause, 'dependency');
  });

  it('the deadline of a phase fails each slow rule by name and keeps the verdicts that came in time', async () => {
    const slow = (name: string) => rule(name, () => new Promise((res) => setTimeout(() => res(pass()), 2000)));
    const r = await run([slow('slow1'), rule('quick', reject('refused in time')), slow('slow2')], 100);
    assert.equal(r.action, 'reject', 'the verdict that came in time still counts');
    assert.deepEqual(
      r.trace.map((t) => [t.rule, t.action, t.reason]),
      [
        ['slow1', 'tempfail', 'slow1: deadline exceeded'],
        ['quick', 'reject', 'refused in time'],
        ['slow2', 'tempfail', 'slow2: deadline exceeded'],
      ],
    );
  });

  it('a phase that starts past its deadline runs no rule to completion', async () => {
    const signal = AbortSignal.abort();
    const r = await new PolicyEngine([rule('a', pass()), rule('b', pass())]).run('connect', { conn: conn(), signal });
    assert.equal(r.action, 'tempfail');
    assert.equal(r.cause, 'dependency');
  });

  it('leaves no abort listener behind on the phase signal', async () => {
    const signal = AbortSignal.timeout(5000);
    let added = 0;
    let removed = 0;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = (...a: Parameters<typeof add>) => (added++, add(...a));
    signal.removeEventListener = (...a: Parameters<typeof remove>) => (removed++, remove(...a));
    await new PolicyEngine([rule('a', pass()), rule('b', pass()), rule('c', pass())]).run('connect', {
      conn: conn(),
      signal,
    });
    assert.equal(added, 1, 'one listener for the whole phase');
    assert.equal(removed, added);
  });

  it('a rule that throws becomes an internal tempfail, not an acceptance', async () => {
    const r = await run([rule('bug', async () => Promise.reject(new Error('boom')))]);
    assert.equal(r.action, 'tempfail');
    assert.equal(r.cause, 'internal');
  });

  it('close() closes every rule even when one throws synchronously', async () => {
    const closed: string[] = [];
    const throwing: Rule = {
      ...rule('throws', pass()),
      close: () => {
        throw new Error('close failed');
      },
    };
    const later: Rule = { ...rule('later', pass()), close: async () => void closed.push('later') };
    await new PolicyEngine([throwing, later]).close();
    assert.deepEqual(closed, ['later']);
  });
});

describe('outcome to SMTP reply (the one place)', () => {
  it('policy refusal is 5xx, dependency failure 4xx, both with a reference', () => {
    const rj = toSmtpReply('reject', 'policy', 'Relay access denied', 'abc-1');
    assert.deepEqual(rj, {
      code: DEFAULT_REJECT.code,
      enhanced: DEFAULT_REJECT.enhanced,
      text: 'Relay access denied (ref abc-1)',
    });
    const tf = toSmtpReply('tempfail', 'dependency', 'clamd unreachable', 'abc-2');
    assert.equal(tf!.code, DEFAULT_DEPENDENCY_TEMPFAIL.code);
    assert.equal(tf!.enhanced, DEFAULT_DEPENDENCY_TEMPFAIL.enhanced);
    assert.equal(toSmtpReply('continue', undefined, undefined, 'x'), null);
  });
  it('keeps overrides of the right class and repairs the wrong class', () => {
    assert.deepEqual(toSmtpReply('reject', 'policy', 'too big', 'r', { code: 552, enhanced: '5.3.4' }), {
      code: 552,
      enhanced: '5.3.4',
      text: 'too big (ref r)',
    });
    const wrong = toSmtpReply('tempfail', 'dependency', 'x', 'r', { code: 554, enhanced: '5.7.1' })!;
    assert.equal(Math.floor(wrong.code / 100), 4, 'a dependency failure never becomes a 5xx');
    assert.match(wrong.enhanced, /^4\./);
  });
});
