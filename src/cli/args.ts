// A small, strict argument parser: known flags only, repeated flags collected, clear errors.
export interface FlagSpec {
  /** Flag takes a value (--config F) or is a switch (--json). */
  value: boolean;
  /** May be given several times (--rcpt A --rcpt B). */
  repeat?: boolean;
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

export function parseArgs(argv: readonly string[], spec: Record<string, FlagSpec>): ParsedArgs {
  const flags: ParsedArgs['flags'] = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a === '-') {
      positional.push(a);
      continue;
    }
    let name = a.slice(2);
    let inline: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const s = spec[name];
    if (!s) throw new UsageError(`unknown option --${name}`);
    if (!s.value) {
      flags[name] = true;
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new UsageError(`--${name} needs a value`);
    if (s.repeat) flags[name] = [...((flags[name] as string[] | undefined) ?? []), v];
    else flags[name] = v;
  }
  return { flags, positional };
}

export const str = (p: ParsedArgs, name: string): string | undefined => (typeof p.flags[name] === 'string' ? (p.flags[name] as string) : undefined);
export const list = (p: ParsedArgs, name: string): string[] => (Array.isArray(p.flags[name]) ? (p.flags[name] as string[]) : []);
export const bool = (p: ParsedArgs, name: string): boolean => p.flags[name] === true;
