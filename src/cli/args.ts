// The command line of every subcommand, on node:util's parseArgs (strict): an option a command
// does not take, a positional argument it does not take, a switch given a value or an option
// given twice is a usage error (exit 2), so nothing on the command line is ever ignored.
// Every command also gets -c for --config (when it takes --config) and -h/--help.
import { parseArgs as nodeParseArgs } from 'node:util';

export interface FlagSpec {
  /** Flag takes a value (--config F) or is a switch (--json). */
  value: boolean;
  /** May be given several times (--rcpt A --rcpt B). */
  repeat?: boolean;
}

/** How many positional arguments a command takes: none unless it says so. */
export interface PositionalSpec {
  min: number;
  max: number;
}

export interface ParsedArgs {
  flags: Record<string, string | string[] | boolean>;
  positional: string[];
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** --help was asked for: main prints the command's usage and exits 0. */
export class HelpRequested extends Error {
  constructor() {
    super('help');
    this.name = 'HelpRequested';
  }
}

/** Short aliases every command has when it takes the long option. */
const SHORT: Record<string, string> = { config: 'c' };

type NodeOptions = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

export function parseArgs(
  argv: readonly string[],
  spec: Record<string, FlagSpec>,
  positionals: PositionalSpec = { min: 0, max: 0 },
): ParsedArgs {
  const options: NodeOptions = { help: { type: 'boolean', short: 'h' } };
  for (const [name, s] of Object.entries(spec)) {
    options[name] = {
      type: s.value ? 'string' : 'boolean',
      ...(s.repeat ? { multiple: true } : {}),
      ...(SHORT[name] ? { short: SHORT[name] } : {}),
    };
  }
  let parsed: ReturnType<typeof nodeParseArgs>;
  try {
    parsed = nodeParseArgs({ args: [...argv], options, strict: true, allowPositionals: true, tokens: true });
  } catch (err) {
    throw new UsageError(usageMessage(err as Error & { code?: string }, options));
  }
  if (parsed.values.help) throw new HelpRequested();
  // parseArgs keeps the last of a repeated option; a command line that says two things is refused.
  const seen = new Set<string>();
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== 'option' || spec[t.name]?.repeat) continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name} given more than once`);
    seen.add(t.name);
  }
  const flags: ParsedArgs['flags'] = {};
  for (const [name, v] of Object.entries(parsed.values))
    if (name !== 'help' && v !== undefined) flags[name] = v as string | string[] | boolean;
  const positional = parsed.positionals;
  if (positional.length > positionals.max) {
    const extra = positional[positionals.max]!;
    const hint =
      spec.config && /\.ya?ml$/i.test(extra) ? ` (a policy file goes after --config: --config ${extra})` : '';
    throw new UsageError(`unexpected argument "${extra}"${hint}`);
  }
  if (positional.length < positionals.min) throw new UsageError('missing argument');
  return { flags, positional };
}

/** node's messages are long and name the option in quotes; keep one short line. */
function usageMessage(err: Error & { code?: string }, options: NodeOptions): string {
  const quoted = /'([^']+)'/.exec(err.message)?.[1] ?? '';
  const long = quoted.replace(/^-\w, /, '').replace(/ <value>$/, '');
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${quoted}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const name = long.replace(/^--/, '');
      if (options[name]?.type === 'boolean') return `${long} takes no value`;
      return /ambiguous/.test(err.message)
        ? `${long} needs a value (a value that starts with "-": ${long}=VALUE)`
        : `${long} needs a value`;
    }
    default:
      return err.message.split('\n')[0]!;
  }
}

export const str = (p: ParsedArgs, name: string): string | undefined =>
  typeof p.flags[name] === 'string' ? p.flags[name] : undefined;
export const list = (p: ParsedArgs, name: string): string[] => (Array.isArray(p.flags[name]) ? p.flags[name] : []);
export const bool = (p: ParsedArgs, name: string): boolean => p.flags[name] === true;
