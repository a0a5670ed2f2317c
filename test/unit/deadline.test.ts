// PhaseDeadline: one timer per phase run, a signal only for handlers that read it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PhaseDeadline } from '../../src/policy/deadline.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('phase deadline', () => {
  it('work that settles first wins the race, and the signal never aborts afterwards', async () => {
    const d = new PhaseDeadline(50);
    const signal = d.signal;
    assert.equal(await d.race(sleep(1)), true);
    await sleep(80);
    assert.equal(signal.aborted, false, 'the timer must be gone once the phase is over');
    assert.equal(d.expired, false);
  });

  it('a rejected piece of work also ends the race (the engine turns it into a verdict)', async () => {
    const d = new PhaseDeadline(1000);
    assert.equal(await d.race(Promise.reject(new Error('x'))), true);
  });

  it('past the deadline: the race answers false, the signal aborts with a TimeoutError', async () => {
    const d = new PhaseDeadline(20);
    const signal = d.signal;
    const started = Date.now();
    assert.equal(await d.race(new Promise(() => undefined)), false);
    assert.ok(Date.now() - started < 500);
    assert.equal(d.expired, true);
    assert.equal(signal.aborted, true);
    assert.equal((signal.reason as DOMException).name, 'TimeoutError');
  });

  it('a signal first asked for after the deadline is already aborted', async () => {
    const d = new PhaseDeadline(10);
    await d.race(new Promise(() => undefined));
    assert.equal(d.signal.aborted, true);
    assert.equal((d.signal.reason as DOMException).name, 'TimeoutError');
  });

  it('makes no signal for a phase whose handlers never read it', async () => {
    const d = new PhaseDeadline(1000);
    await d.race(Promise.resolve());
    assert.equal((d as unknown as { controller: unknown }).controller, null);
  });
});
