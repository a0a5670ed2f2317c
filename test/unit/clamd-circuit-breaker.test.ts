import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CircuitBreaker, type BreakerState } from '../../src/deps/circuit-breaker.js';

function breaker(failures = 3, cooldownMs = 1000) {
  const clock = { now: 0 };
  const changes: string[] = [];
  const b = new CircuitBreaker({
    failures,
    cooldownMs,
    now: () => clock.now,
    onStateChange: (to: BreakerState, from: BreakerState) => changes.push(`${from}->${to}`),
  });
  return { b, clock, changes };
}

describe('CircuitBreaker', () => {
  test('opens after N consecutive failures, not before', () => {
    const { b } = breaker(3);
    b.acquire()!.failure();
    b.acquire()!.failure();
    assert.equal(b.state, 'closed');
    b.acquire()!.failure();
    assert.equal(b.state, 'open');
    assert.equal(b.acquire(), null);
    assert.equal(b.admitting, false);
  });

  test('a success in between resets the count', () => {
    const { b } = breaker(2);
    b.acquire()!.failure();
    b.acquire()!.success();
    b.acquire()!.failure();
    assert.equal(b.state, 'closed');
  });

  test('after the cool-down exactly one trial goes through; its success closes', () => {
    const { b, clock, changes } = breaker(1, 1000);
    b.acquire()!.failure();
    clock.now = 999;
    assert.equal(b.acquire(), null);
    clock.now = 1000;
    assert.equal(b.state, 'half-open');
    const trial = b.acquire()!;
    assert.equal(trial.trial, true);
    assert.equal(b.acquire(), null, 'second caller while the trial runs');
    trial.success();
    assert.equal(b.state, 'closed');
    assert.deepEqual(changes, ['closed->open', 'open->half-open', 'half-open->closed']);
  });

  test('a failed trial opens again for a full cool-down', () => {
    const { b, clock } = breaker(1, 1000);
    b.acquire()!.failure();
    clock.now = 1000;
    b.acquire()!.failure();
    assert.equal(b.state, 'open');
    clock.now = 1999;
    assert.equal(b.state, 'open');
    clock.now = 2000;
    assert.equal(b.state, 'half-open');
  });

  test('a released trial frees the slot without changing the state', () => {
    const { b, clock } = breaker(1, 1000);
    b.acquire()!.failure();
    clock.now = 1000;
    b.acquire()!.release();
    assert.equal(b.state, 'half-open');
    assert.ok(b.acquire());
  });

  test('a trial that is never settled stops blocking after a cool-down', () => {
    const { b, clock } = breaker(1, 1000);
    b.acquire()!.failure();
    clock.now = 1000;
    assert.ok(b.acquire());
    assert.equal(b.acquire(), null);
    clock.now = 2000;
    assert.ok(b.acquire());
  });

  test('a permit settles once', () => {
    const { b } = breaker(2);
    const p = b.acquire()!;
    p.failure();
    p.failure();
    p.failure();
    assert.equal(b.failuresInARow, 1);
  });

  test('a successful health probe ends the cool-down early', () => {
    const { b } = breaker(1, 60_000);
    b.acquire()!.failure();
    assert.equal(b.state, 'open');
    b.probeSucceeded();
    assert.equal(b.state, 'half-open');
    assert.ok(b.acquire()?.trial);
  });

  test('rejects nonsense settings', () => {
    assert.throws(() => new CircuitBreaker({ failures: 0, cooldownMs: 1 }));
    assert.throws(() => new CircuitBreaker({ failures: 1, cooldownMs: -1 }));
  });
});
