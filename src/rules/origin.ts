// Seed rule 8, second half: accept mail only from where you expect it. The client address is
// placed (country, autonomous system) in MaxMind DB files when it connects; an inbound outside
// client from a country or network the policy does not expect is refused, deferred, scored
// (offences in the offender ledger, a field in the trace header) or only logged.
//
// Never judged: clients without an IP, internal networks, authenticated clients, and the
// networks in `exempt` (CIDR ranges or network groups such as `partner`).
//
// The lookup runs at connect; the verdict waits for MAIL FROM. Postfix shows a milter's refusal
// at connect only from MAIL on anyway (it greets with 554 and answers MAIL with our text), and
// only at MAIL is it known whether the client authenticated: a travelling user who logs in from
// a denied country must still be able to send.
import { cidr } from '../config/settings.js';
import type { OffenderLedger } from '../deps/offender-ledger.js';
import { untilAborted } from '../deps/until-aborted.js';
import { originVerdictsTotal, reportOriginDatabases } from '../ops/origin-metrics.js';
import { isValidCidr, NetworkSet } from '../primitives/networks.js';
import { pass, reject, tempfail, type ConnectionContext, type Rule, type Verdict } from '../policy/types.js';
import { addTraceField } from './common.js';
import { MmdbFile, OriginDatabases, type OriginFacts } from './origin/database.js';
import { describeOrigin, OriginJudge } from './origin/judge.js';
import { ORIGIN_STATE, type OriginState } from './origin/state.js';
import { AUTH_MACROS } from './relay.js';
import { originAudit } from './origin/audit.js';
import { originSchema, type OriginConfig } from './origin/schema.js';
import { defineRule, type RuleEnv } from '../policy/rule-env.js';

export { originSchema };

const ORIGIN_REFUSED = { code: 554, enhanced: '5.7.1' } as const;
const ORIGIN_DEFERRED = { code: 450, enhanced: '4.7.1' } as const;
const RULE_NAME = 'origin';
/** conn.state key: the score of this connection was recorded (once per connection, not per MAIL). */
const SCORED = 'origin.scored';
const TRACED = 'origin.traced';

export const originRule = defineRule({
  name: RULE_NAME,
  summary:
    'Refuses, defers or scores inbound clients from countries or autonomous systems the policy does not expect (MaxMind DB files).',
  schema: originSchema,
  audit: originAudit,
  crossCheck(config, policy) {
    const groups = config.exempt.flatMap((e, i) =>
      !cidr().safeParse(e).success && !(e in policy.networks.groups)
        ? [
            {
              path: ['exempt', i],
              message: `no network group "${e}" (networks.groups has: ${Object.keys(policy.networks.groups).join(', ') || 'none'})`,
            },
          ]
        : [],
    );
    // Enforcing, the rule cannot work without its data: `relayguard validate` says so before a
    // reload does. Monitoring, a missing file is only logged when the policy loads.
    const files =
      config.mode !== 'enforce'
        ? []
        : config.databases.flatMap((path, i) => {
            try {
              new MmdbFile(path, config.reload_check).load();
              return [];
            } catch (err) {
              return [{ path: ['databases', i], message: describeLoadError(path, err) }];
            }
          });
    return [...groups, ...files];
  },
  create(config, env) {
    return createOrigin(config, env, openDatabases(config, env));
  },
});

/**
 * Loads the files. Enforcing, a missing or broken file stops the policy from loading (validate
 * and serve say which file); monitoring, it is logged and the rule looks nothing up until the
 * file appears (the reload check picks it up).
 */
function openDatabases(config: OriginConfig, env: Pick<RuleEnv, 'log'>, now: () => number = Date.now): OriginDatabases {
  const warnIfOld = (path: string, builtAt: number | null) => {
    if (builtAt !== null && now() - builtAt > config.max_age) {
      env.log.warn(
        `origin: ${path} was built ${new Date(builtAt).toISOString().slice(0, 10)}, older than max_age (${Math.round(config.max_age / 86_400_000)} days): update it (geoipupdate)`,
        {
          rule: RULE_NAME,
        },
      );
    }
  };
  const files = config.databases.map(
    (path) =>
      new MmdbFile(
        path,
        config.reload_check,
        {
          loaded(p, status, reloaded) {
            if (reloaded)
              env.log.info(
                `origin: reloaded ${p} (${status.type ?? 'unknown type'}, built ${new Date(status.builtAt!).toISOString().slice(0, 10)})`,
                { rule: RULE_NAME },
              );
            warnIfOld(p, status.builtAt);
          },
          failed(p, error) {
            env.log.error(`origin: ${p}: ${error}`, { rule: RULE_NAME });
          },
        },
        now,
      ),
  );
  for (const f of files) {
    if (config.mode === 'enforce') {
      try {
        f.load();
      } catch (err) {
        throw new Error(`rule origin: database ${describeLoadError(f.path, err)}`, { cause: err });
      }
    } else if (!f.tryLoad()) {
      env.log.warn(
        `origin: database ${f.path} not loaded, its lookups are skipped until it appears: ${f.status().error}`,
        { rule: RULE_NAME },
      );
    }
  }
  return new OriginDatabases(files);
}

/** The reason a file could not be loaded, starting with its path. */
function describeLoadError(path: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return `${path}: file not found (download it first, see docs/rules/origin.md)`;
  if (e.code === 'EACCES') return `${path}: permission denied (relayguard must be able to read it)`;
  return e.message.startsWith(path) ? e.message : `${path}: ${e.message}`;
}

/** The offender ledger the offenders rule opened (it is created before this rule), or null. */
function ledgerOf(env: RuleEnv): OffenderLedger | null {
  if (env.offline) return null;
  // shared() returns the existing service; `null` is stored only when the offenders rule is
  // not configured, and then there is no ledger to feed.
  return env.shared<OffenderLedger | null>('offender-ledger', () => null);
}

function createOrigin(config: OriginConfig, env: RuleEnv, dbs: OriginDatabases): Rule {
  const judge = new OriginJudge(config.inbound);
  const action = config.inbound.action;
  const exemptCidrs = new NetworkSet(config.exempt.filter((e) => isValidCidr(e)));
  const exemptGroups = config.exempt.filter((e) => !isValidCidr(e));
  const ledger = action === 'score' ? ledgerOf(env) : null;
  if (action === 'score' && !ledger && !env.offline) {
    env.log.info('origin: action score without the offenders rule: the score goes to the trace header only', {
      rule: RULE_NAME,
    });
  }
  const unreport = env.offline
    ? () => {}
    : reportOriginDatabases(() => dbs.files.map((f) => ({ database: f.path, builtAt: f.status().builtAt })));

  /** Why this client is not judged, or null. */
  const exemption = (conn: ConnectionContext): string | null => {
    if (!conn.client.ip) return 'no client address';
    if (conn.internalNetwork) return 'internal network';
    if (conn.authUser || conn.macros.get('auth_authen')) return 'authenticated';
    if (exemptCidrs.contains(conn.client.ip)) return 'exempt network';
    const group = exemptGroups.find((g) => conn.networkGroups.includes(g));
    return group ? `network group ${group}` : null;
  };

  const place = (conn: ConnectionContext): OriginFacts => {
    const ip = conn.client.ip!;
    const known = conn.state.get(ORIGIN_STATE) as OriginState | undefined;
    if (known?.ip === ip) return known.facts;
    const facts = dbs.lookup(ip);
    conn.state.set(ORIGIN_STATE, { ip, facts } satisfies OriginState);
    return facts;
  };

  const factsDetails = (f: OriginFacts) => ({
    ...(f.country ? { country: f.country } : {}),
    ...(f.asn !== undefined ? { asn: f.asn } : {}),
    ...(f.org ? { as_org: f.org } : {}),
  });

  const replyText = (ip: string, f: OriginFacts): string => {
    const where =
      [f.country ? `country ${f.country}` : '', f.asn !== undefined ? `AS${f.asn}` : ''].filter(Boolean).join(', ') ||
      'an unknown network';
    if (config.inbound.reply) {
      return config.inbound.reply.replace(/\{(ip|country|asn)\}/g, (_, k: string) =>
        k === 'ip' ? ip : k === 'country' ? (f.country ?? '') : f.asn !== undefined ? `AS${f.asn}` : '',
      );
    }
    return `Client host [${ip}] refused: mail from ${where} is not accepted here`;
  };

  const score = async (conn: ConnectionContext, ip: string, f: OriginFacts, because: string, signal: AbortSignal) => {
    if (conn.state.get(SCORED)) return;
    conn.state.set(SCORED, true);
    // A monitored rule changes nothing: no header field, no offence.
    if (config.mode !== 'enforce') return;
    addTraceField(conn.state, `origin-score=${config.inbound.score}`);
    if (!ledger) return;
    try {
      for (let i = 0; i < config.inbound.score; i++) {
        const r = await untilAborted(
          ledger.record(ip, 'origin', `origin: ${describeOrigin(f)} (${because})`, f.country),
          signal,
        );
        if (r.newlyBanned) break;
      }
    } catch (err) {
      conn.log.warn(`origin: could not record the score of ${ip}: ${(err as Error).message}`, { rule: RULE_NAME });
    }
  };

  return {
    name: RULE_NAME,
    mode: config.mode,
    needs: { macros: { envfrom: AUTH_MACROS }, events: [] },
    handlers: {
      async connect({ conn }): Promise<Verdict> {
        const why = exemption(conn);
        if (why) return pass({ exempt: why });
        const f = place(conn);
        return pass({ origin: describeOrigin(f), ...factsDetails(f) });
      },
      async envfrom({ conn, signal }): Promise<Verdict> {
        const why = exemption(conn);
        if (why) return pass({ exempt: why });
        const ip = conn.client.ip!;
        const f = place(conn);
        const j = judge.judge(f);
        const details = { origin: describeOrigin(f), ...factsDetails(f), because: j.because };
        // For a downstream filter, once per connection; a monitored rule adds nothing.
        if (config.mode === 'enforce' && !conn.state.has(TRACED)) {
          conn.state.set(TRACED, true);
          addTraceField(conn.state, `origin=${f.country ?? '-'}/${f.asn !== undefined ? `AS${f.asn}` : '-'}`);
        }
        originVerdictsTotal.inc({
          result: j.outOfPlace ? 'out_of_place' : 'expected',
          action: j.outOfPlace ? action : 'none',
        });
        if (!j.outOfPlace) return pass(details);
        switch (action) {
          case 'reject':
            return reject(replyText(ip, f), ORIGIN_REFUSED, details);
          case 'tempfail':
            return tempfail(replyText(ip, f), 'policy', ORIGIN_DEFERRED, details);
          case 'score':
            await score(conn, ip, f, j.because, signal);
            return pass({ ...details, score: config.inbound.score });
          case 'monitor':
            conn.log.info(
              `origin: ${ip} from ${describeOrigin(f)} is out of place (${j.because}); action monitor, not refused`,
              { rule: RULE_NAME, client: ip },
            );
            return pass({ ...details, out_of_place: true });
        }
      },
    },
    close() {
      // The files are in memory (garbage once the policy is gone); only the metric must let go.
      unreport();
    },
  };
}
