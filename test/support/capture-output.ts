// What a command writes to stdout and stderr while it runs, captured for a test.
//
// Only text is taken. `node --test` runs each file in a child process whose test runner reports
// to the parent through this same stdout, in binary (v8-serialized) frames, whenever a test
// ends; a frame swallowed here would drop a test's result, a failure included, from the run's
// output (it happened: a failing test showed only as "1 subtest failed"). Our commands write
// text only, so binary writes go through untouched.

type Write = typeof process.stdout.write;

function capturing(original: Write, sink: (text: string) => void): Write {
  return (chunk: unknown, ...rest: unknown[]) => {
    if (typeof chunk === 'string') {
      sink(chunk);
      const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      done?.();
      return true;
    }
    return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
  };
}

/** Runs `fn` with the text it writes to stdout and stderr captured. */
export async function captureOutput<T>(fn: () => T | Promise<T>): Promise<{ value: T; out: string; err: string }> {
  let out = '';
  let err = '';
  const saved = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  process.stdout.write = capturing(saved.out, (t) => (out += t));
  process.stderr.write = capturing(saved.err, (t) => (err += t));
  try {
    const value = await fn();
    return { value, out, err };
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
  }
}

/** A command's exit code and its captured output. */
export async function captureCommand(run: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const { value, out, err } = await captureOutput(run);
  return { code: value, out, err };
}
