// relayguard offenders / relayguard unban IP: the offender ledger from the command line. They use
// the storage the policy names (SQLite in server.state_dir, or Redis in server.state), so they
// see and change the very ledger the running daemon uses; an unban takes effect at the client's
// next connection.
import type { PolicyConfig } from '../rules/policy-schema.js';
import { openExistingOffenderLedger, type OffenderLedger, type OffenderRow } from '../deps/offender-ledger.js';
import { normalizeIp } from '../primitives/networks.js';
import { showable } from '../primitives/safe-text.js';
import { formatUntil, ledgerPolicyOf, offendersSchema, type OffendersConfig } from '../rules/offenders.js';
import { bool, list, parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { loadPolicyOrExit } from './policy-file.js';

/** The offenders block of the policy, with defaults when the rule is not configured. */
function offendersConfig(config: PolicyConfig): { rule: OffendersConfig; configured: boolean } {
  const block = (config.rules as Record<string, unknown>).offenders;
  return { rule: offendersSchema.parse(block ?? {}), configured: block !== undefined };
}

/** Storage trouble (Redis away, unreadable database) is a one-line message, not a stack trace. */
class LedgerUnavailable extends Error {}

async function withLedger<T>(
  config: PolicyConfig,
  rule: OffendersConfig,
  use: (l: OffenderLedger | null) => Promise<T>,
): Promise<T> {
  let ledger: OffenderLedger | null;
  try {
    ledger = await openExistingOffenderLedger(config.server, ledgerPolicyOf(rule));
  } catch (err) {
    throw new LedgerUnavailable(`offender ledger unavailable: ${(err as Error).message}`);
  }
  try {
    return await use(ledger);
  } finally {
    await ledger?.close();
  }
}

/** 600000 -> "10m", 3600000 -> "1h", 90000 -> "90s". */
export function shortDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function table(rows: OffenderRow[]): string {
  // The country (placed by the origin rule) only when the ledger has one: without an origin
  // rule the column would be all dashes.
  const withCountry = rows.some((r) => r.country !== null);
  const cells = [
    ['IP', ...(withCountry ? ['COUNTRY'] : []), 'OFFENCES', 'TOTAL', 'BANNED UNTIL', 'LAST SEEN', 'LAST OFFENCE'],
    ...rows.map((r) => [
      r.ip,
      ...(withCountry ? [r.country ?? '-'] : []),
      String(r.count),
      String(r.total),
      r.bannedUntil ? formatUntil(r.bannedUntil) : '-',
      formatUntil(r.lastSeen),
      r.lastReason ?? r.lastKind ?? '',
    ]),
  ].map((row) => row.map(showable)); // a reason quotes what a client sent (or an AS name from the database): no escape sequence reaches the terminal
  return columns(cells);
}

function columns(cells: string[][]): string {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return (
    cells.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') +
    '\n'
  );
}

/** Addresses and bans per country, most addresses first ("-": not placed). */
function byCountry(rows: OffenderRow[]): Array<{ country: string; addresses: number; banned: number }> {
  const out = new Map<string, { country: string; addresses: number; banned: number }>();
  for (const r of rows) {
    const key = r.country ?? '-';
    const c = out.get(key) ?? { country: key, addresses: 0, banned: 0 };
    c.addresses++;
    if (r.bannedUntil !== null) c.banned++;
    out.set(key, c);
  }
  return [...out.values()].sort((a, b) => b.addresses - a.addresses || a.country.localeCompare(b.country));
}

export const offendersCommand: Command = {
  ...about('offenders'),
  run: (argv) => reportingLedgerTrouble('offenders', () => listOffenders(argv)),
};

async function listOffenders(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    config: { value: true },
    json: { value: false },
    country: { value: true, repeat: true },
    'by-country': { value: false },
  });
  const countries = list(args, 'country').map((c) => c.trim().toUpperCase());
  const badCountry = countries.find((c) => !/^[A-Z]{2}$/.test(c));
  if (badCountry !== undefined)
    throw new UsageError(`--country ${badCountry}: use a two-letter ISO 3166 code such as DE`);
  const { config } = loadPolicyOrExit(str(args, 'config'));
  const { rule, configured } = offendersConfig(config);
  const all = await withLedger(config, rule, async (l) => (l ? l.list() : []));
  const rows = countries.length ? all.filter((r) => r.country !== null && countries.includes(r.country)) : all;
  if (bool(args, 'by-country')) {
    const counts = byCountry(rows);
    if (bool(args, 'json')) process.stdout.write(JSON.stringify({ configured, countries: counts }, null, 2) + '\n');
    else
      process.stdout.write(
        counts.length
          ? columns([
              ['COUNTRY', 'ADDRESSES', 'BANNED'],
              ...counts.map((c) => [c.country, String(c.addresses), String(c.banned)]),
            ])
          : 'no offenders\n',
      );
    return 0;
  }
  if (bool(args, 'json')) {
    const out = {
      configured,
      threshold: rule.threshold,
      window_ms: rule.window,
      ban_ms: rule.ban,
      offenders: rows.map((r) => ({
        ip: r.ip,
        offences: r.count,
        total: r.total,
        banned: r.bannedUntil !== null,
        banned_until: r.bannedUntil ? new Date(r.bannedUntil).toISOString() : null,
        bans: r.bans,
        last_seen: new Date(r.lastSeen).toISOString(),
        last_kind: r.lastKind,
        last_reason: r.lastReason,
        country: r.country,
      })),
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  if (!configured)
    process.stdout.write('note: the policy has no rules.offenders block; nothing is recorded or banned\n');
  process.stdout.write(
    `offences count for ${shortDuration(rule.window)}; ${rule.threshold} of them ban an IP for ${shortDuration(rule.ban)}\n`,
  );
  process.stdout.write(rows.length ? table(rows) : 'no offenders\n');
  return 0;
}

export const unbanCommand: Command = {
  ...about('unban'),
  run: (argv) => reportingLedgerTrouble('unban', () => unban(argv)),
};

async function unban(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { config: { value: true } }, { min: 0, max: 1 });
  if (args.positional.length !== 1) throw new UsageError('exactly one IP address is required');
  const given = args.positional[0]!;
  const ip = normalizeIp(given);
  if (!ip) {
    process.stderr.write(`relayguard unban: "${given}" is not an IP address\n`);
    return 1;
  }
  const { config } = loadPolicyOrExit(str(args, 'config'));
  const { rule } = offendersConfig(config);
  const lifted = await withLedger(config, rule, async (l) => (l ? l.unban(ip) : false));
  if (!lifted) {
    process.stderr.write(`relayguard unban: ${ip} is not banned\n`);
    return 1;
  }
  process.stdout.write(`${ip}: ban lifted, offences forgotten\n`);
  return 0;
}

async function reportingLedgerTrouble(command: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (!(err instanceof LedgerUnavailable)) throw err;
    process.stderr.write(`relayguard ${command}: ${err.message}\n`);
    return 1;
  }
}
