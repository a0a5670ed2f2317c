// Waiting on work that takes no AbortSignal of its own (a DNS query, a ledger call) without
// waiting past the phase deadline: the work goes on, the caller stops waiting for it.

/** Resolves or rejects as `work` does, or rejects with "deadline passed" once `signal` fires. */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(new Error('deadline passed'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('deadline passed'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
