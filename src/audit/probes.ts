// Rule 10: the self-audit. Each probe does what a client (or the MTA) would do against the live
// gateway and states whether the gateway behaved as the policy says, with the evidence: the
// SMTP reply, the queue id, the protocol. A probe that cannot be carried out (no XCLIENT, the
// Postfix queue out of reach) says so; it never passes by guessing.
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { PolicyConfig } from '../config/schema.js';
import type { z } from 'zod';
import { activeRule } from '../mta/requirements.js';
import { normalizeIp, NetworkSet, parseCidr } from '../policy/networks.js';
import type { AntivirusConfig } from '../rules/antivirus.js';
import { pickDirection } from '../rules/common.js';
import { AUDIT_CLIENT_NAME } from '../rules/offenders.js';
import { DEFAULT_MAX_BYTES, type sizeRule } from '../rules/size.js';
import { DEFAULT_MIN_VERSION, tlsRank, type tlsRule } from '../rules/tls.js';
import { auditMessage, eicarTestFile, harmlessExecutable, type Attachment } from './messages.js';
import { clamdProbe, dnsblProbes, milterProbe, REPLY_MARGIN_MS, type ProbeFn, type ProbeOutcome } from './service-probes.js';
import { originProbes } from './origin-probe.js';
import type { HeldQueue } from './held-queue.js';
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
 * AUDIT_CLIENT_NAME, which the offenders rule exempts: the audit leaves no trace in the offender
 * ledger, however often it runs. One address per probe all the same, for a gateway whose
 * relayguard predates the exemption.
 */
export const DEFAULT_OUTSIDE_IPS = ['203.0.113.9', '203.0.113.10', '203.0.113.11', '203.0.113.12', '203.0.113.13'] as const;
/** An external envelope sender for the outside probes. */
const DEFAULT_OUTSIDE_FROM = 'relayguard-audit@outside.invalid';
/** A recipient in a domain that is nobody's: the open-relay probe never sends to it. */
const RELAY_TEST_RCPT = 'relayguard-audit@relay-test.invalid';
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
  held: HeldQueue | null;
  signal?: AbortSignal;
  /** Test seams. */
  timeouts?: SmtpTimeouts;
  now?: () => number;
}

type SizeConfig = z.infer<typeof sizeRule.schema>;
type TlsConfig = z.infer<typeof tlsRule.schema>;

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
const is4xx = (r: SmtpReply) => r.code >= 400 && r.code < 500;
const is5xx = (r: SmtpReply) => r.code >= 500 && r.code < 600;

class Auditor {
  private readonly internal: NetworkSet;
  private readonly timeouts: SmtpTimeouts;
  private readonly helo: string;
  private readonly outsideFrom: string;
  private outsideIndex = 0;
  private bindIndex = 0;

  constructor(private readonly o: AuditOptions) {
    this.internal = new NetworkSet(o.config.networks.internal);
    const d = o.config.server.deadlines;
    this.timeouts = o.timeouts ?? { replyMs: Math.max(d.connect, d.envelope) + REPLY_MARGIN_MS, dataMs: d.content + REPLY_MARGIN_MS };
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
    const parts = Object.entries(attrs).filter(([k]) => offered.has(k)).map(([k, v]) => `${k}=${v}`);
    const r = await c.command(`XCLIENT ${parts.join(' ')}`);
    if (r.code !== 220) {
      await c.quit();
      throw new ProbeFailure(`XCLIENT ${parts.join(' ')} refused: ${formatReply(r)} (the address may be banned: relayguard unban ${attrs.ADDR ?? ''})`);
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
      if (this.internal.contains(bind)) throw new NotTested(`not tested: --bind ${bind} is inside the policy's internal networks, so the gateway sees an internal client`);
      return { c: await this.open(bind), as: `this host's address ${bind} (--bind, outside the internal networks)`, outside: true };
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
    if (this.internal.contains(local)) return { c, as: `this host ${normalizeIp(local) ?? local} (internal)`, outside: false };
    const ip = internalAddress(this.o.config);
    if (c.extensions.has('XCLIENT') && ip) {
      await this.xclient(c, { ADDR: ip, NAME: AUDIT_CLIENT_NAME, REVERSE_NAME: '[UNAVAILABLE]' });
      return { c, as: `internal client ${ip} (XCLIENT)`, outside: false };
    }
    await c.quit();
    throw new NotTested(`not tested: this host (${local}) is not internal and the gateway offers no XCLIENT to pose as an internal client`);
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
  private async transaction(c: SmtpConnection, from: string, message: Buffer): Promise<{ step: 'MAIL' | 'RCPT' | 'DATA' | 'end of data'; reply: SmtpReply }> {
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
      for (const name of ['banner', 'ehlo', 'vrfy-refused', 'expn-refused']) results.push({ name, ok: false, detail, ms: 0 });
      return;
    }
    try {
      const banner = c.banner;
      results.push({ name: 'banner', ok: banner.code === 220, detail: formatReply(banner), ms: ms(t0) });
      let t = performance.now();
      const ehlo = await c.ehlo(this.helo);
      const keywords = [...c.extensions.entries()].map(([k, v]) => (v ? `${k} ${v}` : k)).join(', ');
      results.push({ name: 'ehlo', ok: ehlo.code === 250, detail: ehlo.code === 250 ? `250; offers ${keywords || 'no extensions'}` : formatReply(ehlo), ms: ms(t) });

      t = performance.now();
      const vrfy = await c.command(`VRFY <${this.o.rcpt}>`);
      // Sendmail's goaway answers a non-committal 252 2.5.2 "Cannot VRFY user": nothing is disclosed.
      const vrfyOk = is5xx(vrfy) || (vrfy.code === 252 && /cannot vrfy/i.test(vrfy.text));
      results.push({ name: 'vrfy-refused', ok: vrfyOk, detail: `${vrfyOk ? 'refused' : 'VRFY answered'}: ${formatReply(vrfy)}`, ms: ms(t), reply: formatReply(vrfy) });

      t = performance.now();
      const expn = await c.command(`EXPN <${this.o.rcpt}>`);
      results.push({ name: 'expn-refused', ok: is5xx(expn), detail: `${is5xx(expn) ? 'refused' : 'EXPN answered'}: ${formatReply(expn)}`, ms: ms(t), reply: formatReply(expn) });
    } catch (err) {
      for (const name of ['banner', 'ehlo', 'vrfy-refused', 'expn-refused']) {
        if (!results.some((r) => r.name === name)) results.push({ name, ok: false, detail: (err as Error).message, ms: ms(t0) });
      }
    } finally {
      await c.quit();
    }
  }

  private openRelay: ProbeFn = async () => {
    const { c, as } = await this.outside();
    try {
      const mail = await c.command(`MAIL FROM:<${this.outsideFrom}>`);
      if (!is2xx(mail)) return { ok: false, detail: `not tested: MAIL FROM:<${this.outsideFrom}> was refused first (${formatReply(mail)}) as ${as}` };
      const foreign = await c.command(`RCPT TO:<${RELAY_TEST_RCPT}>`);
      const local = await c.command(`RCPT TO:<${this.o.rcpt}>`);
      await c.command('RSET');
      const evidence = { foreign: formatReply(foreign), local: formatReply(local) };
      if (is2xx(foreign)) return { ok: false, detail: `OPEN RELAY: RCPT TO:<${RELAY_TEST_RCPT}> accepted from ${as}: ${formatReply(foreign)} (nothing was sent)`, ...evidence };
      if (!is5xx(foreign)) return { ok: false, detail: `relaying only deferred, not refused: ${formatReply(foreign)} as ${as}`, ...evidence };
      if (!is2xx(local)) return { ok: false, detail: `inconclusive: the local recipient <${this.o.rcpt}> was refused too (${formatReply(local)}) as ${as}`, ...evidence };
      return { ok: true, detail: `refused for ${as}: ${formatReply(foreign)}; <${this.o.rcpt}> in the same transaction accepted`, ...evidence };
    } finally {
      await c.quit();
    }
  };

  private spoofedSender: ProbeFn = async () => {
    const domain = this.o.config.local_domains[0];
    if (!domain) return { ok: false, detail: 'not tested: the policy names no local_domains' };
    const spoofed = `relayguard-audit@${domain.replace(/^\*?\./, '')}`;
    const { c, as } = await this.outside();
    try {
      const { step, reply } = await this.transaction(c, spoofed, this.message('spoofed-sender-refused', spoofed, 'spoofed internal sender'));
      const r = formatReply(reply);
      if (is5xx(reply)) return { ok: true, detail: `MAIL FROM:<${spoofed}> from ${as} refused at ${step}: ${r}`, step, reply: r };
      if (is4xx(reply)) return { ok: false, detail: `only deferred at ${step}, not refused: ${r} (${as})`, step, reply: r };
      const id = queueIdOf(reply);
      return { ok: false, detail: `SPOOFED SENDER ACCEPTED: MAIL FROM:<${spoofed}> from ${as} delivered to <${this.o.rcpt}>${id ? ` as ${id}` : ''}: ${r}`, step, reply: r, ...(id ? { queue_id: id } : {}) };
    } finally {
      await c.quit();
    }
  };

  private sizeLimit: ProbeFn = async () => {
    const { c, as, outside } = await this.outsideIfPossible();
    const direction = outside ? 'inbound' : 'outbound';
    const size = activeRule<SizeConfig>(this.o.config, 'size');
    const active = size !== null;
    const limit = size ? pickDirection(size.max_bytes, direction) : DEFAULT_MAX_BYTES;
    const source = active ? `the policy's ${direction} limit` : "Postfix's default limit; the policy has no size rule";
    const from = outside ? this.outsideFrom : this.o.rcpt;
    try {
      const advertised = c.extensions.has('SIZE') ? `EHLO advertises SIZE ${c.extensions.get('SIZE') || '(no limit)'}` : 'EHLO does not advertise SIZE';
      const atLimit = await c.command(`MAIL FROM:<${from}> SIZE=${limit}`);
      await c.command('RSET');
      const over = await c.command(`MAIL FROM:<${from}> SIZE=${limit + 1}`);
      await c.command('RSET');
      const evidence = { limit, at_limit: formatReply(atLimit), over_limit: formatReply(over) };
      if (!is2xx(atLimit)) return { ok: false, detail: `SIZE=${limit} (exactly ${source}) refused: ${formatReply(atLimit)}; ${advertised}`, ...evidence };
      if (over.code !== 552) return { ok: false, detail: `SIZE=${limit + 1} (over ${source}) answered ${formatReply(over)}, not 552; ${advertised}`, ...evidence };
      return { ok: true, detail: `SIZE=${limit + 1} refused: ${formatReply(over)}; SIZE=${limit} accepted (${source}, as ${as}); ${advertised}`, ...evidence };
    } finally {
      await c.quit();
    }
  };

  private virusInbound: ProbeFn = async () => {
    const { c, as } = await this.outside();
    try {
      const msg = this.message('virus-refused-inbound', this.outsideFrom, 'anti-virus test file (inbound)', {
        filename: 'relayguard-audit-eicar.txt',
        contentType: 'application/octet-stream',
        content: eicarTestFile(),
      });
      const { step, reply } = await this.transaction(c, this.outsideFrom, msg);
      const r = formatReply(reply);
      if (step !== 'end of data') return { ok: false, detail: `not tested: refused at ${step} before the content was seen: ${r} (${as})`, step, reply: r };
      if (is5xx(reply)) return { ok: true, detail: `EICAR from ${as} refused at end of data: ${r}`, reply: r };
      if (is4xx(reply)) return { ok: false, detail: `EICAR from ${as} only deferred: ${r} (could the gateway scan? clamd down?)`, reply: r };
      const id = queueIdOf(reply);
      return { ok: false, detail: `EICAR ACCEPTED from ${as}${id ? ` as ${id}` : ''} for <${this.o.rcpt}>: ${r}`, reply: r, ...(id ? { queue_id: id } : {}) };
    } finally {
      await c.quit();
    }
  };

  private virusOutbound: ProbeFn = async () => {
    const av = activeRule<AntivirusConfig>(this.o.config, 'antivirus');
    const expected = av ? pickDirection(av.actions, 'outbound') : 'quarantine';
    const { c, as } = await this.inside();
    let reply: SmtpReply;
    let step: string;
    try {
      const msg = this.message('virus-held-outbound', this.o.rcpt, 'anti-virus test file (outbound)', {
        filename: 'relayguard-audit-eicar.txt',
        contentType: 'application/octet-stream',
        content: eicarTestFile(),
      });
      ({ step, reply } = await this.transaction(c, this.o.rcpt, msg));
    } finally {
      await c.quit();
    }
    const r = formatReply(reply);
    if (step !== 'end of data') return { ok: false, detail: `not tested: refused at ${step} before the content was seen: ${r} (${as})`, step, reply: r };
    if (expected === 'reject' || expected === 'tempfail') {
      const ok = expected === 'reject' ? is5xx(reply) : is4xx(reply);
      return { ok, detail: `EICAR from ${as}: ${r} (policy: ${expected} outbound)`, reply: r };
    }
    if (is4xx(reply)) return { ok: false, detail: `EICAR from ${as} only deferred: ${r} (could the gateway scan? clamd down?)`, reply: r };
    if (is5xx(reply)) return { ok: false, detail: `EICAR from ${as} refused (${r}) instead of held for review (policy: ${expected} outbound)`, reply: r };
    const id = queueIdOf(reply);
    if (expected === 'discard') return { ok: true, detail: `EICAR from ${as} accepted (${r}); the policy discards it`, reply: r };
    if (!id) return { ok: false, detail: `EICAR from ${as} accepted, but no queue id in the reply: ${r}`, reply: r };
    return this.checkHeld(id, as, r);
  };

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
        detail: `EICAR from ${as} accepted as ${id}; could not look into the ${held.name} (${(err as Error).message}), so "held" is not verified: remove it with ${held.removeHint(id)}`,
        ...evidence,
      };
    }
    if (!where?.held) {
      return { ok: false, detail: `EICAR from ${as} accepted as ${id} but NOT HELD: ${where ? `it is in ${where.where}` : 'it left the queue (delivered?)'}`, ...evidence };
    }
    try {
      await held.remove(id, this.o.signal);
      return { ok: true, verified: true, detail: `EICAR from ${as} held as ${id} (${held.name}); removed: ${held.removeHint(id)}`, ...evidence };
    } catch (err) {
      return { ok: true, verified: true, detail: `EICAR from ${as} held as ${id} (${held.name}); removing it failed (${(err as Error).message}): ${held.removeHint(id)}`, ...evidence };
    }
  }

  private blockedAttachment: ProbeFn = async () => {
    const { c, as, outside } = await this.outsideIfPossible();
    const from = outside ? this.outsideFrom : this.o.rcpt;
    try {
      const msg = this.message('blocked-attachment-refused', from, 'blocked attachment type', {
        filename: 'relayguard-audit.exe',
        contentType: 'application/octet-stream',
        content: harmlessExecutable(),
      });
      const { step, reply } = await this.transaction(c, from, msg);
      const r = formatReply(reply);
      if (step !== 'end of data') return { ok: false, detail: `not tested: refused at ${step} before the content was seen: ${r} (${as})`, step, reply: r };
      if (is5xx(reply)) return { ok: true, detail: `relayguard-audit.exe from ${as} refused at end of data: ${r}`, reply: r };
      if (is4xx(reply)) return { ok: false, detail: `relayguard-audit.exe from ${as} only deferred: ${r}`, reply: r };
      const id = queueIdOf(reply);
      return { ok: false, detail: `.exe ATTACHMENT ACCEPTED from ${as}${id ? ` as ${id}` : ''} for <${this.o.rcpt}>: ${r}`, reply: r, ...(id ? { queue_id: id } : {}) };
    } finally {
      await c.quit();
    }
  };

  private starttls: ProbeFn = async () => {
    const c = await this.open();
    try {
      if (!c.extensions.has('STARTTLS')) return { ok: false, detail: 'EHLO does not offer STARTTLS: mail crosses the network in clear' };
      const { reply, tls } = await c.startTls(this.o.host);
      if (!tls) return { ok: false, detail: `STARTTLS refused: ${formatReply(reply)}` };
      const min = activeRule<TlsConfig>(this.o.config, 'tls')?.min_version ?? DEFAULT_MIN_VERSION;
      const minRank = Math.max(tlsRank(min) ?? 0, tlsRank('TLSv1.2')!);
      const rank = tls.protocol ? tlsRank(tls.protocol) : null;
      const cert = tls.authorized ? 'certificate verified' : `certificate not verified (${tls.authorizationError ?? 'unknown'})`;
      const desc = `${tls.protocol ?? 'unknown protocol'} ${tls.cipher ?? ''}, ${tls.subject ? `CN=${tls.subject}, ` : ''}${cert}`;
      const again = await c.ehlo(this.helo);
      const evidence = { protocol: tls.protocol, cipher: tls.cipher };
      if (rank === null || rank < minRank) return { ok: false, detail: `handshake with ${desc}: below ${min}`, ...evidence };
      if (again.code !== 250) return { ok: false, detail: `after the handshake (${desc}) EHLO answered ${formatReply(again)}`, ...evidence };
      return { ok: true, detail: `STARTTLS: ${desc}`, ...evidence };
    } finally {
      await c.quit();
    }
  };

  async run(): Promise<AuditReport> {
    const started = new Date(this.o.now?.() ?? Date.now()).toISOString();
    const results: ProbeResult[] = [];
    await this.greetingProbes(results);
    const probes: Array<[string, ProbeFn]> = [
      ['open-relay-refused', this.openRelay],
      ['spoofed-sender-refused', this.spoofedSender],
      ['size-limit-enforced', this.sizeLimit],
      ['virus-refused-inbound', this.virusInbound],
      ['virus-held-outbound', this.virusOutbound],
      ['blocked-attachment-refused', this.blockedAttachment],
      ['starttls', this.starttls],
      ...dnsblProbes(this.o.config, this.o.signal),
    ];
    probes.push(...originProbes(this.o.config, this.o.now));
    const clamd = clamdProbe(this.o.config, this.o.signal, this.o.now);
    if (clamd) probes.push(['clamd', clamd]);
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
    return { ok: results.every((r) => r.ok), id: this.o.id, smtp: `${this.o.host}:${this.o.port}`, started, probes: results };
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
