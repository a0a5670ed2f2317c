// Rule 8 (second half): repeat offenders. Every command of a client that relayguard refuses and
// every EXPN it tries (if enabled also refused message content and recipients the MTA refused
// itself) is an offence in the ledger; `threshold` offences within `window` ban the client's IP
// for `ban`, and a banned client is refused when it connects. Offences decay: only those inside
// the window count. Internal and authenticated clients neither earn offences nor get refused.
// `relayguard unban IP` lifts a ban.
import client from '../ops/prom.js';
import { z } from 'zod';
import { cidrList } from '../config/settings.js';
import { duration } from '../primitives/units.js';
import {
  createOffenderLedger,
  openExistingOffenderLedger,
  type LedgerPolicy,
  type OffenceKind,
  type OffenderLedger,
} from '../deps/offender-ledger.js';
import { gaugeFromCallback, registry } from '../ops/metrics.js';
import { NetworkSet } from '../primitives/networks.js';
import { AUDIT_CLIENT_NAME } from '../policy/rule-parts.js';
import {
  pass,
  reject,
  type ConnectionContext,
  type OutcomeEvent,
  type Phase,
  type PhaseHandlers,
  type Rule,
} from '../policy/types.js';
import { modeField } from './common.js';
import { defineRule } from '../policy/rule-env.js';
import { untilAborted } from '../deps/until-aborted.js';
import { originOf } from './origin/state.js';

const BANNED = { code: 554, enhanced: '5.7.1' } as const;
/** SMTP verbs that probe for addresses; Postfix passes EXPN to the milter as an unknown command. */
const PROBE_VERBS = new Set(['EXPN']);
/** Phases where a refusal judges the client's commands rather than a message's content. */
const COMMAND_PHASES = new Set<Phase>(['connect', 'helo', 'envfrom', 'envrcpt', 'data', 'unknown']);
/** Postfix sets {rcpt_mailer} to "error" for a recipient it refused itself (seen with SMFIP_RCPT_REJ). */
const MTA_REFUSED_MAILER = 'error';
const RULE_NAME = 'offenders';

const offencesTotal = new client.Counter({
  name: 'relayguard_offences_total',
  help: 'Offences recorded in the offender ledger, by kind',
  labelNames: ['kind'] as const,
  registers: [registry],
});
const bansTotal = new client.Counter({
  name: 'relayguard_offender_bans_total',
  help: 'Client IPs banned by the offender ledger',
  registers: [registry],
});

export const offendersSchema = z
  .object({
    mode: modeField(),
    /** Offences within `window` that ban the client. */
    threshold: z.number().int().min(1).default(5),
    window: duration().default(600_000),
    /** How long a ban lasts. */
    ban: duration().default(3_600_000),
    /**
     * What counts as an offence:
     *  rejections: relayguard refused one of the client's commands (connect, HELO, MAIL, RCPT,
     *    DATA, unknown commands): relay attempts, listed hosts, blocked or forged senders...
     *  message_rejections: relayguard refused a message for its content (virus, attachment,
     *    size found at end of data...). Off by default: the sender of a bad message is often a
     *    victim, and one mailing would ban a whole mail provider.
     *  expn: EXPN attempts (address harvesting).
     *  mta_rejected_recipients: recipients the MTA refused itself (unknown local users:
     *    address probing); this makes Postfix show relayguard the refused recipients too.
     * Only 5xx refusals count: a 4xx is often our own trouble (clamd down).
     */
    count: z
      .array(z.enum(['rejections', 'message_rejections', 'expn', 'mta_rejected_recipients']))
      .min(1)
      .default(['rejections', 'expn']),
    /**
     * connect: refuse a banned client at once (it cannot authenticate first). mail: refuse at
     * MAIL FROM, so a user who authenticates from a banned address still gets through.
     */
    refuse_at: z.enum(['connect', 'mail']).default('connect'),
    /** Addresses that are never counted nor banned (monitoring hosts, a shared NAT you trust). */
    never_ban: cidrList().default([]),
  })
  .strict()
  .refine((c) => c.window > 0 && c.ban > 0, { message: 'window and ban must be longer than 0' });

export type OffendersConfig = z.infer<typeof offendersSchema>;

export const ledgerPolicyOf = (c: Pick<OffendersConfig, 'threshold' | 'window' | 'ban'>): LedgerPolicy => ({
  threshold: c.threshold,
  window: c.window,
  ban: c.ban,
});

export const offendersRule = defineRule({
  name: RULE_NAME,
  summary: 'Bans client IPs that earned too many refusals or EXPN attempts in a short time; refused at connect.',
  schema: offendersSchema,
  mta: {
    init: () => [
      '  offenders:',
      '    # enforce: a client with 5 refused commands (or EXPN attempts) in 10 minutes is refused at connect',
      '    # for an hour (relayguard unban IP lifts it). Internal and authenticated clients never count.',
      '    mode: monitor',
      '    threshold: 5',
      '    window: 10m',
      '    ban: 1h',
    ],
  },
  create(config, env) {
    const policy = ledgerPolicyOf(config);
    if (env.offline) {
      // `relayguard check` shows whether a client is banned, but neither creates state nor
      // records offences: an offline what-if must not ban anybody.
      const holder = env.shared(
        'offender-ledger-readonly',
        () => ({ ledger: null as Promise<OffenderLedger | null> | null }),
        async (h) => (await h.ledger?.catch(() => null))?.close(),
      );
      const open = () => (holder.ledger ??= openExistingOffenderLedger(env.policy.server, policy).catch(() => null));
      return createOffenders(config, open, { record: false });
    }
    // Opened now, so a state directory that cannot be written stops `serve` with a clear error.
    const ledger = env.shared(
      'offender-ledger',
      () => createOffenderLedger(env.policy.server, policy),
      (l) => l.close(),
    );
    gaugeFromCallback(
      'relayguard_offenders_banned',
      'Client IPs the offender ledger bans right now',
      async () => (await ledger.list()).filter((r) => r.bannedUntil !== null).length,
    );
    return createOffenders(config, async () => ledger);
  },
});

/** The audit's clients are exempt from the ledger: a daily audit must not ban its own probe addresses. */
export { AUDIT_CLIENT_NAME };

/** "2025-01-31 14:05:00 UTC": for reply texts, which must stay plain ASCII. */
export function formatUntil(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function createOffenders(
  config: OffendersConfig,
  ledgerOf: () => Promise<OffenderLedger | null>,
  opts: { record?: boolean } = {},
): Rule {
  const recording = opts.record !== false;
  const neverBan = new NetworkSet(config.never_ban);
  const counts = new Set(config.count);

  const isAuthenticated = (conn: ConnectionContext) => !!(conn.authUser || conn.macros.get('auth_authen'));
  /** The IP whose offences count, or null when this client is exempt. */
  const accountable = (conn: ConnectionContext): string | null => {
    const ip = conn.client.ip;
    if (!ip || conn.internalNetwork || isAuthenticated(conn) || neverBan.contains(ip)) return null;
    if (conn.client.hostname?.toLowerCase() === AUDIT_CLIENT_NAME) return null; // hostname: absent in hand-made contexts
    return ip;
  };

  const record = async (
    conn: ConnectionContext,
    ip: string,
    kind: OffenceKind,
    reason: string,
    signal?: AbortSignal,
  ) => {
    if (!recording) return;
    try {
      const ledger = await ledgerOf();
      if (!ledger) return;
      const r = await untilAborted(ledger.record(ip, kind, reason, originOf(conn)?.country), signal);
      offencesTotal.inc({ kind });
      if (r.newlyBanned) {
        bansTotal.inc();
        conn.log.warn(
          `offenders: ${ip} banned until ${formatUntil(r.bannedUntil!)} after ${r.count} offences in ${config.window / 1000}s (last: ${reason})`,
          {
            rule: RULE_NAME,
            client: ip,
            banned_until: new Date(r.bannedUntil!).toISOString(),
            offences: r.count,
          },
        );
      }
    } catch (err) {
      // The ledger is a reputation aid: when its storage fails, mail goes on and the log says so.
      conn.log.warn(`offenders: could not record ${kind} for ${ip}: ${(err as Error).message}`, { rule: RULE_NAME });
    }
  };

  const banVerdict = async (conn: ConnectionContext, signal: AbortSignal) => {
    const ip = accountable(conn);
    if (!ip) return pass();
    let status;
    try {
      const ledger = await ledgerOf();
      status = ledger ? await untilAborted(ledger.banStatus(ip), signal) : null;
    } catch (err) {
      conn.log.warn(`offenders: ledger unavailable, not checked: ${(err as Error).message}`, { rule: RULE_NAME });
      return pass({ ledger_error: (err as Error).message });
    }
    if (!status) return pass();
    return reject(
      `Client host [${ip}] banned until ${formatUntil(status.bannedUntil)} after repeated policy violations`,
      BANNED,
      {
        banned_until: new Date(status.bannedUntil).toISOString(),
        offences: status.count,
        ...(status.lastReason ? { last_offence: status.lastReason } : {}),
      },
    );
  };

  const handlers: PhaseHandlers = {};
  if (config.refuse_at === 'connect') handlers.connect = async ({ conn, signal }) => banVerdict(conn, signal);
  else handlers.envfrom = async ({ conn, signal }) => banVerdict(conn, signal);

  if (counts.has('expn')) {
    handlers.unknown = async ({ conn, command, signal }) => {
      const verb = (command ?? '').trim().split(/\s+/)[0]!.toUpperCase();
      const ip = accountable(conn);
      if (ip && PROBE_VERBS.has(verb)) await record(conn, ip, 'expn', `${verb} attempt`, signal);
      return pass();
    };
  }

  const needs: NonNullable<Rule['needs']> = { macros: { envfrom: ['{auth_authen}'] } };
  if (counts.has('mta_rejected_recipients')) {
    needs.protocol = ['refusedRecipients'];
    needs.macros = { ...needs.macros, envrcpt: ['{rcpt_mailer}'] };
    handlers.envrcpt = async ({ conn, rcpt, signal }) => {
      const ip = accountable(conn);
      if (ip && rcpt && conn.macros.get('rcpt_mailer') === MTA_REFUSED_MAILER) {
        await record(conn, ip, 'mta_rejected_recipient', `recipient <${rcpt.address.raw}> refused by the MTA`, signal);
      }
      return pass();
    };
  }

  return {
    name: RULE_NAME,
    mode: config.mode,
    needs,
    handlers,
    async onOutcome(event: OutcomeEvent) {
      // Only 5xx refusals count: a 4xx is often our own trouble (clamd down), and the ban
      // refusal itself must not feed the ban.
      if (event.action !== 'reject' || event.rule === RULE_NAME) return;
      if (!counts.has(COMMAND_PHASES.has(event.phase) ? 'rejections' : 'message_rejections')) return;
      const ip = accountable(event.conn);
      if (!ip) return;
      await record(event.conn, ip, 'rejection', `${event.rule ?? 'policy'}: ${event.reason ?? 'rejected'}`);
    },
  };
}
