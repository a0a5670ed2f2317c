// The self-audit. Each probe does what a client (or the MTA) would do against the live gateway
// and states whether the gateway behaved as the policy says, with the evidence: the SMTP reply,
// the queue id, the protocol. A probe that cannot be carried out (no XCLIENT, the Postfix queue
// out of reach) says so; it never passes by guessing. The greeting, VRFY/EXPN and milter probes
// are the gateway's; every other probe comes from a rule's audit part (the registry's order).
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { PolicyConfig } from '../rules/policy-schema.js';
import { configuredRules } from '../mta/requirements.js';
import { normalizeIp, NetworkSet, parseCidr } from '../primitives/networks.js';
import {
  AUDIT_CLIENT_NAME,
  type AuditContext,
  type AuditProbe,
  type AuditTestFile,
  type ProbeSession,
} from '../policy/rule-parts.js';
import { auditMessage, eicarTestFile, harmlessExecutable, type Attachment } from './messages.js';
import { milterProbe, REPLY_MARGIN_MS, type ProbeFn, type ProbeOutcome } from './service-probes.js';
import type { Mta } from '../deps/mta.js';
import { formatReply, queueIdOf, SmtpConnection, type SmtpReply, type SmtpTimeouts } from './smtp-client.js';

export interface ProbeResult {
  name: string;
  ok: boolean;
  detail: string;
  /** How long the probe took. */
  ms: number;
  /** Evidence beyond the detail text (queue id, replies, TLS protocol...). */
  [extra: string]: unknown;
}

export interface AuditReport {
  ok: boolean;
  id: string;
  smtp: string;
  started: string;
  probes: ProbeResult[];
}

/**
 * Outside addresses the probes pretend to come from (TEST-NET-3, RFC 5737), with the client name
 * AUDIT_CLIENT_NAME, which rules that count offences exempt: the audit leaves no trace in the offender
 * ledger, however often it runs. One address per probe all the same, for a gateway whose
 * relayguard predates the exemption.
 */
export const DEFAULT_OUTSIDE_IPS = [
  '203.0.113.9',
  '203.0.113.10',
  '203.0.113.11',
  '203.0.113.12',
  '203.0.113.13',
] as const;
/** An external envelope sender for the outside probes. */
const DEFAULT_OUTSIDE_FROM = 'relayguard-audit@outside.invalid';
/** How long an accepted message may take to show up in the MTA's queue, and how often to look. */
const HOLD_WAIT_MS = 5_000;
const HOLD_POLL_MS = 200;

export interface AuditOptions {
  host: string;
  port: number;
  config: PolicyConfig;
  /** Audit mailbox: every test message that gets through lands here. */
  rcpt: string;
  outsideFrom?: string;
  /** One address for every outside probe instead of DEFAULT_OUTSIDE_IPS. */
  outsideIp?: string;
  /**
   * Outside probes connect from these local addresses, one after the other, instead of posing
   * with XCLIENT (a gateway without XCLIENT, such as Sendmail). They must be addresses of this
   * host outside the internal networks; several spread the refusals over the offender ledger.
   */
  bindIps?: readonly string[];
  helo?: string;
  id: string;
  /** The MTA's queue, to find and remove the held test message (null: not reachable). */
  held: Mta | null;
  signal?: AbortSignal;
  /** Test seams. */
  timeouts?: SmtpTimeouts;
  now?: () => number;
}

/** The test payloads by name (AuditTestFile). */
const TEST_FILES: Record<AuditTestFile, () => Buffer> = {
  eicar: eicarTestFile,
  'harmless-executable': harmlessExecutable,
};

class ProbeFailure extends Error {}
/** The probe could not be carried out from here (no way to pose as the client it needs). */
class NotTested extends ProbeFailure {}

interface Session {
  c: SmtpConnection;
  /** Who the gateway sees, for the detail text. */
  as: string;
  /** The gateway sees an outside client (else an internal one). */
  outside: boolean;
}

function isLoopbackOrLocal(host: string): boolean {
  const ip = normalizeIp(host);
  if (host === 'localhost') return true;
  if (!ip) return false;
  if (new NetworkSet(['127.0.0.0/8', '::1/128']).contains(ip)) return true;
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((i) => normalizeIp(i.address) === ip));
}

/** The first usable address of the first IPv4 internal network (to pose as an internal client). */
function internalAddress(config: PolicyConfig): string | null {
  for (const c of config.networks.internal) {
    const [addr, bits] = parseCidr(c);
    if (addr.kind() !== 'ipv4') continue;
    const octets = addr.toByteArray();
    const n = ((octets[0]! << 24) >>> 0) + (octets[1]! << 16) + (octets[2]! << 8) + octets[3]!;
    const size = 2 ** (32 - bits);
    const base = Math.floor(n / size) * size;
    const host = size > 2 ? base + 1 : base;
    return [host >>> 24, (host >>> 16) & 255, (host >>> 8) & 255, host & 255].join('.');
  }
  return null;
}

const is2xx = (r: SmtpReply) => r.code >= 200 && r.code < 300;
const is5xx = (r: SmtpReply) => r.code >= 500 && r.code < 600;

export class Auditor {
  private readonly internal: NetworkSet;
  private readonly timeouts: SmtpTimeouts;
  private readonly helo: string;
  private readonly outsideFrom: string;
  private outsideIndex = 0;
  private bindIndex = 0;

  constructor(private readonly o: AuditOptions) {
    this.internal = new NetworkSet(o.config.networks.internal);
    const d = o.config.server.deadlines;
    this.timeouts = o.timeouts ?? {
      replyMs: Math.max(d.connect, d.envelope) + REPLY_MARGIN_MS,
      dataMs: d.content + REPLY_MARGIN_MS,
    };
    this.helo = o.helo ?? 'relayguard-audit.invalid';
    this.outsideFrom = o.outsideFrom ?? DEFAULT_OUTSIDE_FROM;
  }

  private nextOutsideIp(): string {
    if (this.o.outsideIp) return this.o.outsideIp;
    return DEFAULT_OUTSIDE_IPS[this.outsideIndex++ % DEFAULT_OUTSIDE_IPS.length]!;
  }

  private async open(localAddress?: string): Promise<SmtpConnection> {
    const c = await SmtpConnection.open(this.o.host, this.o.port, this.timeouts, this.o.signal, localAddress);
    if (c.banner.code !== 220) {
      await c.quit();
      throw new ProbeFailure(`greeting: ${formatReply(c.banner)}`);
    }
    const r = await c.ehlo(this.helo);
    if (r.code !== 250) {
      await c.quit();
      throw new ProbeFailure(`EHLO: ${formatReply(r)}`);
    }
    return c;
  }

  private async xclient(c: SmtpConnection, attrs: Record<string, string>): Promise<void> {
    const offered = new Set((c.extensions.get('XCLIENT') ?? '').toUpperCase().split(/\s+/));
    const parts = Object.entries(attrs)
      .filter(([k]) => offered.has(k))
      .map(([k, v]) => `${k}=${v}`);
    const r = await c.command(`XCLIENT ${parts.join(' ')}`);
    if (r.code !== 220) {
      await c.quit();
      throw new ProbeFailure(
        `XCLIENT ${parts.join(' ')} refused: ${formatReply(r)} (the address may be banned: relayguard unban ${attrs.ADDR ?? ''})`,
      );
    }
    const e = await c.ehlo(this.helo);
    if (e.code !== 250) {
      await c.quit();
      throw new ProbeFailure(`EHLO after XCLIENT: ${formatReply(e)}`);
    }
  }

  /** A session in which the gateway sees an outside client; `as` says who we are. */
  private async outside(): Promise<Session> {
    const binds = this.o.bindIps ?? [];
    if (binds.length) {
      const bind = binds[this.bindIndex++ % binds.length]!;
      if (this.internal.contains(bind))
        throw new NotTested(
          `not tested: --bind ${bind} is inside the policy's internal networks, so the gateway sees an internal client`,
        );
      return {
        c: await this.open(bind),
        as: `this host's address ${bind} (--bind, outside the internal networks)`,
        outside: true,
      };
    }
    const c = await this.open();
    const local = c.localAddress ?? '';
    if (c.extensions.has('XCLIENT')) {
      const ip = this.nextOutsideIp();
      await this.xclient(c, { ADDR: ip, NAME: AUDIT_CLIENT_NAME, REVERSE_NAME: '[UNAVAILABLE]' });
      return { c, as: `outside client ${ip} (XCLIENT)`, outside: true };
    }
    if (this.internal.contains(local)) {
      await c.quit();
      throw new NotTested(
        `not tested: the gateway offers no XCLIENT to us and this host (${normalizeIp(local) ?? local}) is internal to the policy, so it cannot pose as an outside client; allow XCLIENT (smtpd_authorized_xclient_hosts) or run the audit from outside`,
      );
    }
    return { c, as: `this host ${normalizeIp(local) ?? local} (outside the internal networks)`, outside: true };
  }

  /** A session in which the gateway sees an internal client. */
  private async inside(): Promise<Session> {
    const c = await this.open();
    const local = c.localAddress ?? '';
    if (this.internal.contains(local))
      return { c, as: `this host ${normalizeIp(local) ?? local} (internal)`, outside: false };
    const ip = internalAddress(this.o.config);
    if (c.extensions.has('XCLIENT') && ip) {
      await this.xclient(c, { ADDR: ip, NAME: AUDIT_CLIENT_NAME, REVERSE_NAME: '[UNAVAILABLE]' });
      return { c, as: `internal client ${ip} (XCLIENT)`, outside: false };
    }
    await c.quit();
    throw new NotTested(
      `not tested: this host (${local}) is not internal and the gateway offers no XCLIENT to pose as an internal client`,
    );
  }

  /** An outside client when the audit can pose as one, else an internal one (for probes that hold both ways). */
  private async outsideIfPossible(): Promise<Session> {
    try {
      return await this.outside();
    } catch (err) {
      if (!(err instanceof NotTested)) throw err;
      return this.inside();
    }
  }

  private message(probe: string, from: string, subject: string, attachment?: Attachment): Buffer {
    return auditMessage({
      id: this.o.id,
      probe,
      from,
      to: this.o.rcpt,
      subject: `relayguard audit ${this.o.id}: ${subject}`,
      text: `relayguard audit ${this.o.id}, probe ${probe}. If this message was delivered, the probe failed.`,
      host: this.helo,
      ...(attachment ? { attachment } : {}),
    });
  }

  /** MAIL, RCPT, DATA: the first refusal or the final reply, and at which step. */
  private async transaction(
    c: SmtpConnection,
    from: string,
    message: Buffer,
  ): Promise<{ step: 'MAIL' | 'RCPT' | 'DATA' | 'end of data'; reply: SmtpReply }> {
    const mail = await c.command(`MAIL FROM:<${from}>`);
    if (!is2xx(mail)) return { step: 'MAIL', reply: mail };
    const rcpt = await c.command(`RCPT TO:<${this.o.rcpt}>`);
    if (!is2xx(rcpt)) return { step: 'RCPT', reply: rcpt };
    const d = await c.data(message);
    if (!d.end) return { step: 'DATA', reply: d.start };
    return { step: 'end of data', reply: d.end };
  }

  // ------------------------------------------------------------------ probes

  /** banner, ehlo, vrfy-refused, expn-refused share one plain session. */
  private async greetingProbes(results: ProbeResult[]): Promise<void> {
    const t0 = performance.now();
    let c: SmtpConnection;
    try {
      c = await SmtpConnection.open(this.o.host, this.o.port, this.timeouts, this.o.signal);
    } catch (err) {
      const detail = (err as Error).message;
      for (const name of ['banner', 'ehlo', 'vrfy-refused', 'expn-refused'])
        results.push({ name, ok: false, detail, ms: 0 });
      return;
    }
    try {
      const banner = c.banner;
      results.push({ name: 'banner', ok: banner.code === 220, detail: formatReply(banner), ms: ms(t0) });
      let t = performance.now();
      const ehlo = await c.ehlo(this.helo);
      const keywords = [...c.extensions.entries()].map(([k, v]) => (v ? `${k} ${v}` : k)).join(', ');
      results.push({
        name: 'ehlo',
        ok: ehlo.code === 250,
        detail: ehlo.code === 250 ? `250; offers ${keywords || 'no extensions'}` : formatReply(ehlo),
        ms: ms(t),
      });

      t = performance.now();
      const vrfy = await c.command(`VRFY <${this.o.rcpt}>`);
      // Sendmail's goaway answers a non-committal 252 2.5.2 "Cannot VRFY user": nothing is disclosed.
      const vrfyOk = is5xx(vrfy) || (vrfy.code === 252 && /cannot vrfy/i.test(vrfy.text));
      results.push({
        name: 'vrfy-refused',
        ok: vrfyOk,
        detail: `${vrfyOk ? 'refused' : 'VRFY answered'}: ${formatReply(vrfy)}`,
        ms: ms(t),
        reply: formatReply(vrfy),
      });

      t = performance.now();
      const expn = await c.command(`EXPN <${this.o.rcpt}>`);
      results.push({
        name: 'expn-refused',
        ok: is5xx(expn),
        detail: `${is5xx(expn) ? 'refused' : 'EXPN answered'}: ${formatReply(expn)}`,
        ms: ms(t),
        reply: formatReply(expn),
      });
    } catch (err) {
      for (const name of ['banner', 'ehlo', 'vrfy-refused', 'expn-refused']) {
        if (!results.some((r) => r.name === name))
          results.push({ name, ok: false, detail: (err as Error).message, ms: ms(t0) });
      }
    } finally {
      await c.quit();
    }
  }

  /** Was the accepted test message held for review (Postfix hold queue, Sendmail quarantine)? Then remove it. */
  private async checkHeld(id: string, as: string, reply: string): Promise<ProbeOutcome> {
    const evidence = { queue_id: id, reply };
    const held = this.o.held;
    if (!held || !isLoopbackOrLocal(this.o.host)) {
      return {
        ok: true,
        verified: false,
        detail: `EICAR from ${as} accepted as ${id}; the queue of ${this.o.host} is not reachable from here, so "held" is not verified: check it and remove it there`,
        ...evidence,
      };
    }
    const deadline = Date.now() + HOLD_WAIT_MS;
    let where: { held: boolean; where: string } | null;
    try {
      for (;;) {
        where = await held.locate(id, this.o.signal);
        // Postfix files a held message straight into the hold queue before it answers 250, and
        // Sendmail writes its quarantined control file before it does; only "not found yet" is
        // worth another look.
        if (where !== null || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, HOLD_POLL_MS));
      }
    } catch (err) {
      return {
        ok: true,
        verified: false,
        detail: `EICAR from ${as} accepted as ${id}; could not look into the ${held.heldQueueName} (${(err as Error).message}), so "held" is not verified: remove it with ${held.removeHint(id)}`,
        ...evidence,
      };
    }
    if (!where?.held) {
      return {
        ok: false,
        detail: `EICAR from ${as} accepted as ${id} but NOT HELD: ${where ? `it is in ${where.where}` : 'it left the queue (delivered?)'}`,
        ...evidence,
      };
    }
    try {
      await held.remove(id, this.o.signal);
      return {
        ok: true,
        verified: true,
        detail: `EICAR from ${as} held as ${id} (${held.heldQueueName}); removed: ${held.removeHint(id)}`,
        ...evidence,
      };
    } catch (err) {
      return {
        ok: true,
        verified: true,
        detail: `EICAR from ${as} held as ${id} (${held.heldQueueName}); removing it failed (${(err as Error).message}): ${held.removeHint(id)}`,
        ...evidence,
      };
    }
  }

  /** A session as a rule's probe sees it. */
  private probeSession({ c, as, outside }: Session): ProbeSession {
    return {
      as,
      outside,
      extensions: c.extensions,
      command: (line) => c.command(line),
      ehlo: () => c.ehlo(this.helo),
      startTls: () => c.startTls(this.o.host),
      transaction: (from, message) => this.transaction(c, from, message),
      quit: () => c.quit(),
    };
  }

  /** What the rules' probes get from the audit. */
  private context(): AuditContext {
    const session = async (open: Promise<Session>) => this.probeSession(await open);
    return {
      policy: this.o.config,
      rcpt: this.o.rcpt,
      outsideFrom: this.outsideFrom,
      ...(this.o.signal ? { signal: this.o.signal } : {}),
      now: this.o.now ?? Date.now,
      outside: () => session(this.outside()),
      inside: () => session(this.inside()),
      outsideIfPossible: () => session(this.outsideIfPossible()),
      plain: () => session(this.open().then((c) => ({ c, as: 'this host', outside: false }))),
      message: (probe, from, subject, a) =>
        this.message(
          probe,
          from,
          subject,
          a && { filename: a.filename, contentType: a.contentType, content: TEST_FILES[a.file]() },
        ),
      formatReply,
      queueIdOf,
      checkHeld: (id, as, reply) => this.checkHeld(id, as, reply),
    };
  }

  /** The probes of every registered rule's audit part, in the registry's order. */
  ruleProbes(): AuditProbe[] {
    const ctx = this.context();
    return configuredRules(this.o.config).flatMap(({ def, config }) => def.audit?.probes(config, ctx) ?? []);
  }

  async run(): Promise<AuditReport> {
    const started = new Date(this.o.now?.() ?? Date.now()).toISOString();
    const results: ProbeResult[] = [];
    await this.greetingProbes(results);
    const probes: Array<[string, ProbeFn]> = this.ruleProbes().map((p) => [p.name, () => p.run()]);
    probes.push(['milter', milterProbe(this.o.config, this.o.signal)]);
    for (const [name, fn] of probes) {
      const t = performance.now();
      try {
        const r = await fn();
        results.push({ ...r, name, ok: r.ok, detail: r.detail, ms: ms(t) });
      } catch (err) {
        results.push({ name, ok: false, detail: (err as Error).message, ms: ms(t) });
      }
    }
    return {
      ok: results.every((r) => r.ok),
      id: this.o.id,
      smtp: `${this.o.host}:${this.o.port}`,
      started,
      probes: results,
    };
  }
}

function ms(t0: number): number {
  return Math.round(performance.now() - t0);
}

/** "host:port", "[v6]:port"; the port defaults to 25. */
export function parseHostPort(s: string): { host: string; port: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  const m = v6 ?? /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m || (v6 && isIP(m[1]!) !== 6)) throw new Error(`not HOST:PORT: "${s}"`);
  const port = m[2] ? Number(m[2]) : 25;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port in "${s}"`);
  return { host: m[1]!, port };
}

export function runAudit(o: AuditOptions): Promise<AuditReport> {
  return new Auditor(o).run();
}
