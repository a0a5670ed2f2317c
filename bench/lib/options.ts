// How every bench tool reads its command line: node:util's parseArgs from a table of options, so
// an unknown option or a missing value stops the tool, and checked conversions, so `--messages
// 6OO` is refused instead of measuring NaN messages and `--size text5k` instead of sending
// something else. A usage error prints one line and exits 2; any other error is a bug and keeps
// its stack.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

type Parsed<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T & { strict: true }>>;

/** Parses `config.args` and converts the values; on a usage error prints `tool: why` and exits 2. */
export function readOptions<T extends ParseArgsConfig, R>(
  tool: string,
  config: T,
  convert: (parsed: Parsed<T>) => R,
): R {
  try {
    return convert(parseArgs({ ...config, strict: true }));
  } catch (err) {
    if (!isUsageError(err)) throw err;
    process.stderr.write(`${tool}: ${(err as Error).message.split('\n')[0]} (see bench/README.md)\n`);
    process.exit(2);
  }
}

function isUsageError(err: unknown): boolean {
  return err instanceof UsageError || String((err as { code?: unknown })?.code ?? '').startsWith('ERR_PARSE_ARGS_');
}

/** A whole number of at least `min` (default 1). */
export function whole(raw: string | undefined, option: string, min = 1): number {
  const n = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min)
    throw new UsageError(`--${option}: expected a whole number of at least ${min}, got '${raw ?? ''}'`);
  return n;
}

/** A number of at least `min` (default 0), fractions allowed. */
export function amount(raw: string | undefined, option: string, min = 0): number {
  const n = raw !== undefined && /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n < min)
    throw new UsageError(`--${option}: expected a number of at least ${min}, got '${raw ?? ''}'`);
  return n;
}

/** One of `choices`. */
export function oneOf<C extends string>(raw: string | undefined, option: string, choices: readonly C[]): C {
  if (raw === undefined || !(choices as readonly string[]).includes(raw))
    throw new UsageError(`--${option}: '${raw ?? ''}' is not one of ${choices.join(', ')}`);
  return raw as C;
}

/** A comma-separated list of `choices`, at least one. */
export function listOf<C extends string>(raw: string | undefined, option: string, choices: readonly C[]): C[] {
  const items = (raw ?? '').split(',').filter(Boolean);
  if (items.length === 0) throw new UsageError(`--${option}: expected a comma-separated list of ${choices.join(', ')}`);
  return items.map((item) => oneOf(item, option, choices));
}

/** Node flags given as one value (`--b-node-args='--max-semi-space-size=4 --no-maglev'`). */
export function words(raw: string | undefined): string[] {
  return (raw ?? '').split(/\s+/).filter(Boolean);
}
