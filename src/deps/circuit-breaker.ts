// A small circuit breaker for a dependency that can go away (clamd, a DNS server...).
// closed: calls go through and consecutive failures are counted. After `failures` in a row it
// opens: calls are refused at once, so every message does not wait for its own timeout.
// After `cooldownMs` (or earlier, when a health probe says the dependency is back) it is
// half-open: exactly one trial call goes through; its success closes the breaker, its failure
// opens it again for another cool-down.

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker (>= 1). */
  failures: number;
  /** How long the breaker stays open before it lets a trial call through. */
  cooldownMs: number;
  /** Clock, for tests. */
  now?: () => number;
  /** Told about every state change (logging, metrics). */
  onStateChange?: (to: BreakerState, from: BreakerState) => void;
}

/** One admitted call. Settle it exactly once; later calls of any method are ignored. */
export interface Permit {
  /** The dependency worked. */
  success(): void;
  /** The dependency failed (refused, timed out, answered nonsense). */
  failure(): void;
  /** The call ended without telling anything about the dependency (e.g. the caller gave up). */
  release(): void;
  /** This permit is the half-open trial. */
  readonly trial: boolean;
}

export class CircuitBreaker {
  private consecutiveFailures = 0;
  private openedAt = 0;
  private current: BreakerState = 'closed';
  /** Generation of the half-open trial in flight, or 0. A permit from an older generation is ignored. */
  private trialGeneration = 0;
  private trialStartedAt = 0;
  private generation = 0;
  private readonly now: () => number;

  constructor(private readonly opts: CircuitBreakerOptions) {
    if (!(opts.failures >= 1)) throw new RangeError('circuit breaker: failures must be at least 1');
    if (!(opts.cooldownMs >= 0)) throw new RangeError('circuit breaker: cooldown must not be negative');
    this.now = opts.now ?? Date.now;
  }

  /** The state right now (an expired cool-down reads as half-open). */
  get state(): BreakerState {
    if (this.current === 'open' && this.now() - this.openedAt >= this.opts.cooldownMs) this.move('half-open');
    return this.current;
  }

  get failuresInARow(): number {
    return this.consecutiveFailures;
  }

  /** Would acquire() admit a call now? Does not take the trial. */
  get admitting(): boolean {
    const s = this.state;
    return s === 'closed' || (s === 'half-open' && !this.trialBusy());
  }

  /** Admit one call, or null when the breaker is open (or the half-open trial is taken). */
  acquire(): Permit | null {
    const s = this.state;
    if (s === 'open') return null;
    if (s === 'half-open') {
      if (this.trialBusy()) return null;
      const gen = ++this.generation;
      this.trialGeneration = gen;
      this.trialStartedAt = this.now();
      return this.permit(gen, true);
    }
    return this.permit(++this.generation, false);
  }

  /** A health probe succeeded while open: skip the rest of the cool-down, let one trial through. */
  probeSucceeded(): void {
    if (this.state === 'open') this.move('half-open');
  }

  /** Forget everything (tests, reload). */
  reset(): void {
    this.consecutiveFailures = 0;
    this.trialGeneration = 0;
    this.move('closed');
  }

  /** A trial that was never settled (a bug elsewhere) must not block the breaker forever. */
  private trialBusy(): boolean {
    if (this.trialGeneration === 0) return false;
    if (this.now() - this.trialStartedAt >= this.opts.cooldownMs) {
      this.trialGeneration = 0;
      return false;
    }
    return true;
  }

  private permit(gen: number, trial: boolean): Permit {
    let settled = false;
    const once = (fn: () => void) => () => {
      if (settled) return;
      settled = true;
      fn();
    };
    return {
      trial,
      success: once(() => this.onSuccess(gen, trial)),
      failure: once(() => this.onFailure(gen, trial)),
      release: once(() => {
        if (trial && this.trialGeneration === gen) this.trialGeneration = 0;
      }),
    };
  }

  private onSuccess(gen: number, trial: boolean): void {
    if (trial && this.trialGeneration !== gen) return;
    this.trialGeneration = 0;
    this.consecutiveFailures = 0;
    if (this.current !== 'closed') this.move('closed');
  }

  private onFailure(gen: number, trial: boolean): void {
    if (trial) {
      if (this.trialGeneration !== gen) return;
      this.trialGeneration = 0;
      this.consecutiveFailures++;
      this.open();
      return;
    }
    this.consecutiveFailures++;
    if (this.current === 'closed' && this.consecutiveFailures >= this.opts.failures) this.open();
  }

  private open(): void {
    this.openedAt = this.now();
    this.move('open');
  }

  private move(to: BreakerState): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    this.opts.onStateChange?.(to, from);
  }
}
