// Rule 5: every message, inbound and outbound, is scanned by clamd. The message is streamed to
// clamd while the MTA hands it over (header block at end of headers, then each body chunk), so
// end of message only waits for the verdict. Infected: reject inbound, hold outbound (a
// compromised internal sender should be looked at, not bounced). Not scanned - clamd down, slow,
// confused - is never "clean": the message is refused with a 4xx by default (fail closed), and a
// circuit breaker turns a dead clamd into an immediate 4xx at MAIL instead of one timeout per message.
import promClient from '../ops/prom.js';
import { z } from 'zod';
import { CircuitBreaker } from '../deps/circuit-breaker.js';
import { sessionPoolOptions } from '../deps/clamd-sessions.js';
import {
  ClamdClient,
  ClamdService,
  failedSession,
  parseClamdAddress,
  type ScanResult,
  type ScanSession,
  type Scanner,
} from '../deps/clamd.js';
import { dependencyUp, registry } from '../ops/metrics.js';
import type { MessageContext, Modification, Rule, Verdict } from '../policy/types.js';
import { discard, modify, pass, quarantine, reject, tempfail } from '../policy/types.js';
import { pickDirection, replaceHeaderMods } from './common.js';
import { antivirusAudit } from './antivirus/audit.js';
import { antivirusSchema, DEFAULT_HEADER, failureAction, type AntivirusConfig } from './antivirus/schema.js';
import { antivirusMta } from './antivirus/mta.js';
import { defineRule } from '../policy/rule-env.js';

export { antivirusSchema };

const RULE_NAME = 'antivirus';
/** The reply for an infected message that is refused. */
export const VIRUS_REJECT = { code: 554, enhanced: '5.7.1' } as const;
/** The reply when on_failure is "reject": security policy, message not scanned. */
const UNSCANNED_REJECT = { code: 554, enhanced: '5.7.0' } as const;
/** The reply when clamd cannot scan: mail system not accepting messages, retry. */
export const UNSCANNED_TEMPFAIL = { code: 451, enhanced: '4.3.0' } as const;
/** Scan errors caused by a lost connection rather than a dead clamd: worth one retry from the spool. */
const RETRY_FROM_SPOOL: ReadonlySet<string> = new Set(['aborted', 'io', 'empty-reply']);
const MSG_STATE = 'antivirus.scan';
const CONN_STATE = 'antivirus.session';

/** Per-message scan state (msg.state). */
interface ScanState {
  session: ScanSession;
  started: number;
}

type FailureAction = z.infer<typeof failureAction>;

export function createAntivirusRule(config: AntivirusConfig, scanner: Scanner): Rule {
  const tagName = config.header === false ? null : config.header;

  const failureVerdict = (
    msg: MessageContext,
    r: Extract<ScanResult, { status: 'error' }>,
    details: Record<string, unknown>,
  ): Verdict => {
    const oversize = r.reason === 'too-large' || r.reason === 'size-limit';
    const action: FailureAction = pickDirection(
      oversize && config.on_oversize ? config.on_oversize : config.on_failure,
      msg.direction,
    );
    const why = `virus scan failed (${r.reason})`;
    switch (action) {
      case 'tempfail':
        return tempfail('Virus scanner unavailable, try again later', 'dependency', UNSCANNED_TEMPFAIL, {
          ...details,
          failure: why,
        });
      case 'reject':
        return reject('Message could not be scanned for viruses', UNSCANNED_REJECT, { ...details, failure: why });
      case 'accept-with-header':
        return modify(tagMods(msg, `unscanned (${r.reason})`), { ...details, failure: why, accepted: true });
    }
  };

  /** Remove copies of our header that came with the message, then add ours. */
  const tagMods = (msg: MessageContext, value: string): Modification[] =>
    replaceHeaderMods(msg.headers, tagName ?? DEFAULT_HEADER, value);

  const infectedVerdict = (msg: MessageContext, signature: string, details: Record<string, unknown>): Verdict => {
    const action = pickDirection(config.actions, msg.direction);
    const name = printable(signature);
    switch (action) {
      case 'reject':
        return reject(`Virus found: ${name}`, VIRUS_REJECT, details);
      case 'tempfail':
        return tempfail(`Virus found: ${name}`, 'policy', undefined, details);
      case 'discard':
        return discard(`virus ${name}`, details);
      case 'quarantine': {
        const v = quarantine(`virus ${name}`, details);
        if (tagName) v.mods = tagMods(msg, `infected (${name})`);
        return v;
      }
    }
  };

  /** At MAIL and DATA: while clamd is known to be down, refuse now rather than after the upload. */
  const earlyCheck = async (msg: MessageContext, signal: AbortSignal): Promise<Verdict> => {
    const action = pickDirection(config.on_failure, msg.direction);
    if (action === 'accept-with-header') return pass();
    if (await scanner.available(signal)) return pass();
    return failureVerdict(msg, { status: 'error', reason: 'circuit-open' }, { scanner: scanner.name, early: true });
  };

  const startScan = (msg: MessageContext, conn: { state: Map<string, unknown> }): ScanState => {
    // A scan left over from a message that ended without end-of-message (ABORT, RSET).
    (conn.state.get(CONN_STATE) as ScanSession | undefined)?.abort('aborted');
    const declared = Number(msg.senderParams.SIZE);
    const max = config.clamd.max_size;
    const session =
      max !== undefined && Number.isFinite(declared) && declared > max
        ? failedSession({
            status: 'error',
            reason: 'too-large',
            message: `declared SIZE ${declared} above max_size ${max}`,
          })
        : scanner.instream();
    const state: ScanState = { session, started: performance.now() };
    msg.state.set(MSG_STATE, state);
    conn.state.set(CONN_STATE, session);
    return state;
  };

  /** Scan the stored message from the start (no streaming state, or a retry). */
  const scanFromSpool = async (msg: MessageContext, signal: AbortSignal): Promise<ScanResult> => {
    const session = scanner.instream();
    const input = msg.source.message();
    try {
      for await (const chunk of input) {
        await session.write(chunk as Buffer, signal);
        if (session.settled) break;
      }
    } catch (err) {
      session.abort('io');
      return { status: 'error', reason: 'io', message: `reading the message: ${(err as Error).message}` };
    } finally {
      input.destroy();
    }
    return session.end(signal);
  };

  return {
    name: RULE_NAME,
    mode: config.mode,
    needs: {
      actions: tagName || hasAcceptWithHeader(config) ? ['quarantine', 'addHeader', 'changeHeader'] : ['quarantine'],
    },
    // A message refused by another rule (e.g. the size limit during the body) never reaches
    // end of message here: close its clamd connection now instead of holding a clamd thread.
    onOutcome({ msg, phase, action }) {
      if (!msg || phase === 'envrcpt' || (action !== 'reject' && action !== 'tempfail' && action !== 'discard')) return;
      (msg.state.get(MSG_STATE) as ScanState | undefined)?.session.abort('aborted');
    },
    // ABORT, RSET, QUIT or a dropped connection: the message never reaches end of message.
    onMessageEnd(conn, msg) {
      const session = (msg.state.get(MSG_STATE) as ScanState | undefined)?.session;
      if (!session) return;
      session.abort('aborted'); // a no-op once the scan has settled
      if (conn.state.get(CONN_STATE) === session) conn.state.delete(CONN_STATE);
    },
    handlers: {
      async envfrom({ conn, msg, signal }) {
        (conn.state.get(CONN_STATE) as ScanSession | undefined)?.abort('aborted');
        conn.state.delete(CONN_STATE);
        return earlyCheck(msg, signal);
      },
      async data({ msg, signal }) {
        return earlyCheck(msg, signal);
      },
      async eoh({ conn, msg, signal }) {
        const state = startScan(msg, conn);
        await state.session.write(msg.source.headerBlock(), signal);
        return pass();
      },
      async body({ msg, chunk, signal }) {
        const state = msg.state.get(MSG_STATE) as ScanState | undefined;
        if (state && chunk) await state.session.write(chunk, signal);
        return pass();
      },
      async eom({ conn, msg: m, signal }) {
        const state = m.state.get(MSG_STATE) as ScanState | undefined;
        const started = state?.started ?? performance.now();
        let result: ScanResult;
        let bytes: number;
        if (state) {
          result = await state.session.end(signal);
          bytes = state.session.bytes;
          if (result.status === 'error' && RETRY_FROM_SPOOL.has(result.reason) && !signal.aborted) {
            m.log.warn(
              `antivirus: streaming scan failed (${result.reason}${result.message ? `: ${result.message}` : ''}), scanning again from the spool`,
            );
            result = await scanFromSpool(m, signal);
          }
        } else {
          result = await scanFromSpool(m, signal);
          bytes = m.source.bodySize;
        }
        m.state.delete(MSG_STATE);
        if (conn.state.get(CONN_STATE) === state?.session) conn.state.delete(CONN_STATE);
        const details: Record<string, unknown> = {
          scanner: scanner.name,
          bytes,
          ms: Math.round(performance.now() - started),
        };
        if (result.status === 'clean') return tagName ? modify(tagMods(m, 'clean'), details) : pass(details);
        if (result.status === 'infected') {
          m.log.warn(`antivirus: ${m.direction} message infected: ${result.signature}`, {
            signature: result.signature,
          });
          return infectedVerdict(m, result.signature, { ...details, signature: result.signature });
        }
        m.log.warn(`antivirus: not scanned: ${result.reason}${result.message ? ` (${result.message})` : ''}`, {
          reason: result.reason,
          ...(result.raw !== undefined ? { raw: result.raw } : {}),
        });
        return failureVerdict(m, result, { ...details, reason: result.reason });
      },
    },
  };
}

function hasAcceptWithHeader(config: AntivirusConfig): boolean {
  const values = [config.on_failure, config.on_oversize].flatMap((v) =>
    v === undefined ? [] : typeof v === 'string' ? [v] : [v.inbound, v.outbound],
  );
  return values.includes('accept-with-header');
}

/** Signature names go into an SMTP reply and a header: printable ASCII only. */
function printable(s: string): string {
  return s.replace(/[^\x21-\x7e]+/g, '_').slice(0, 200);
}

/** The clamd services of the loaded policies, for the gauges below (read when scraped). */
const liveServices = new Set<ClamdService>();

new promClient.Gauge({
  name: 'relayguard_clamd_scans_in_progress',
  help: 'clamd scans started and not finished, per clamd (a growing backlog means clamd is slower than the mail)',
  labelNames: ['clamd'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const s of liveServices) this.inc({ clamd: s.name }, s.scansInProgress);
  },
});

new promClient.Gauge({
  name: 'relayguard_clamd_circuit_open',
  help: '1 while the circuit breaker holds clamd for down (mail gets 4xx without a scan), else 0',
  labelNames: ['clamd'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const s of liveServices) this.set({ clamd: s.name }, s.breakerState === 'closed' ? 0 : 1);
  },
});

export const antivirusRule = defineRule({
  name: RULE_NAME,
  summary:
    'Scans every message with clamd (streamed while it arrives); infected inbound is refused, infected outbound is held; clamd down means 4xx.',
  schema: antivirusSchema,
  mta: antivirusMta,
  audit: antivirusAudit,
  create(config, env) {
    const address = parseClamdAddress(config.clamd.address);
    const key = `clamd:${JSON.stringify(address)}:${config.clamd.timeout}:${config.clamd.max_size ?? ''}:${config.clamd.sessions}`;
    const service = env.shared(
      key,
      () => {
        const client = new ClamdClient({
          address,
          timeoutMs: config.clamd.timeout,
          ...(config.clamd.max_size !== undefined ? { maxSize: config.clamd.max_size } : {}),
          ...(config.clamd.sessions > 0
            ? {
                sessions: sessionPoolOptions(
                  config.clamd.sessions,
                  Math.min(config.clamd.timeout, config.breaker.probe_timeout),
                ),
              }
            : {}),
        });
        const breaker = new CircuitBreaker({
          failures: config.breaker.failures,
          cooldownMs: config.breaker.cooldown,
          onStateChange: (to, from) => {
            dependencyUp.set({ dependency: `clamd:${client.name}` }, to === 'closed' ? 1 : 0);
            const line = `antivirus: clamd ${client.name} circuit ${from} -> ${to}`;
            if (to === 'open') env.log.error(`${line}: refusing mail with 4xx without trying clamd`);
            else env.log.warn(line);
          },
        });
        const service = new ClamdService({
          client,
          breaker,
          probeIntervalMs: config.breaker.probe_interval,
          probeTimeoutMs: config.breaker.probe_timeout,
        });
        if (!env.offline) liveServices.add(service);
        return service;
      },
      (s) => {
        liveServices.delete(s);
        s.close();
      },
    );
    return createAntivirusRule(config, service);
  },
});
