// The deadline of one phase run. A phase usually ends within microseconds and most handlers
// never wait on I/O, so the AbortSignal is only made when a handler reads it, and the timer is
// cleared when the phase ends. AbortSignal.timeout() would leave a live timer and a weak
// reference behind for every phase of every message (body chunks included) until its deadline,
// tens of seconds later: measurable garbage-collector work at a few hundred messages a second.
// A signal handed out therefore never aborts once its phase is over: work that outlives the
// phase needs a deadline of its own.

/** The abort reason when the deadline passes, as AbortSignal.timeout() gives it. */
export function deadlineReason(): DOMException {
  return new DOMException('The operation was aborted due to timeout', 'TimeoutError');
}

export class PhaseDeadline {
  private controller: AbortController | null = null;
  private passed = false;

  constructor(readonly ms: number) {}

  /** Aborts (reason: a TimeoutError) when the deadline passes. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.passed) this.controller.abort(deadlineReason());
    }
    return this.controller.signal;
  }

  /** Did the deadline pass before the phase ended? */
  get expired(): boolean {
    return this.passed;
  }

  /**
   * Resolves when `work` settles (true), or when the deadline passes first (false; `work` is
   * left to finish on its own, its result unread). The timer lives only as long as the race.
   */
  race(work: Promise<unknown>): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.passed = true;
        this.controller?.abort(deadlineReason());
        resolve(false);
      }, this.ms);
      const settled = () => {
        clearTimeout(timer);
        resolve(true);
      };
      work.then(settled, settled);
    });
  }
}
