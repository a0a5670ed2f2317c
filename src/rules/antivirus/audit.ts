// Rule 5 in the self-audit: EICAR from outside is refused at end of data, EICAR from inside is
// treated as the rule's outbound action says (held by default), and clamd answers with fresh
// signatures. The EICAR probes run without an antivirus rule too: the gateway must do it.
import { ClamdClient } from '../../deps/clamd.js';
import type { AuditProbe, ProbeOutcome, RuleAuditPart } from '../../policy/rule-parts.js';
import type { AntivirusConfig } from './schema.js';
import { pickDirection } from '../common.js';

/** A signature database older than this means updates have stopped. */
const MAX_SIGNATURE_AGE_S = 7 * 24 * 3600;

const EICAR = {
  filename: 'relayguard-audit-eicar.txt',
  contentType: 'application/octet-stream',
  file: 'eicar' as const,
};
const is4xx = (code: number) => code >= 400 && code < 500;
const is5xx = (code: number) => code >= 500 && code < 600;

export const antivirusAudit: RuleAuditPart<AntivirusConfig> = {
  probes(config, ctx) {
    const inbound: AuditProbe = {
      name: 'virus-refused-inbound',
      async run() {
        const s = await ctx.outside();
        try {
          const msg = ctx.message('virus-refused-inbound', ctx.outsideFrom, 'anti-virus test file (inbound)', EICAR);
          const { step, reply } = await s.transaction(ctx.outsideFrom, msg);
          const r = ctx.formatReply(reply);
          if (step !== 'end of data')
            return {
              ok: false,
              detail: `not tested: refused at ${step} before the content was seen: ${r} (${s.as})`,
              step,
              reply: r,
            };
          if (is5xx(reply.code))
            return { ok: true, detail: `EICAR from ${s.as} refused at end of data: ${r}`, reply: r };
          if (is4xx(reply.code))
            return {
              ok: false,
              detail: `EICAR from ${s.as} only deferred: ${r} (could the gateway scan? clamd down?)`,
              reply: r,
            };
          const id = ctx.queueIdOf(reply);
          return {
            ok: false,
            detail: `EICAR ACCEPTED from ${s.as}${id ? ` as ${id}` : ''} for <${ctx.rcpt}>: ${r}`,
            reply: r,
            ...(id ? { queue_id: id } : {}),
          };
        } finally {
          await s.quit();
        }
      },
    };
    const outbound: AuditProbe = {
      name: 'virus-held-outbound',
      async run(): Promise<ProbeOutcome> {
        const expected = config ? pickDirection(config.actions, 'outbound') : 'quarantine';
        const s = await ctx.inside();
        let result: Awaited<ReturnType<typeof s.transaction>>;
        try {
          result = await s.transaction(
            ctx.rcpt,
            ctx.message('virus-held-outbound', ctx.rcpt, 'anti-virus test file (outbound)', EICAR),
          );
        } finally {
          await s.quit();
        }
        const { step, reply } = result;
        const r = ctx.formatReply(reply);
        if (step !== 'end of data')
          return {
            ok: false,
            detail: `not tested: refused at ${step} before the content was seen: ${r} (${s.as})`,
            step,
            reply: r,
          };
        if (expected === 'reject' || expected === 'tempfail') {
          const ok = expected === 'reject' ? is5xx(reply.code) : is4xx(reply.code);
          return { ok, detail: `EICAR from ${s.as}: ${r} (policy: ${expected} outbound)`, reply: r };
        }
        if (is4xx(reply.code))
          return {
            ok: false,
            detail: `EICAR from ${s.as} only deferred: ${r} (could the gateway scan? clamd down?)`,
            reply: r,
          };
        if (is5xx(reply.code))
          return {
            ok: false,
            detail: `EICAR from ${s.as} refused (${r}) instead of held for review (policy: ${expected} outbound)`,
            reply: r,
          };
        const id = ctx.queueIdOf(reply);
        if (expected === 'discard')
          return { ok: true, detail: `EICAR from ${s.as} accepted (${r}); the policy discards it`, reply: r };
        if (!id)
          return { ok: false, detail: `EICAR from ${s.as} accepted, but no queue id in the reply: ${r}`, reply: r };
        return ctx.checkHeld(id, s.as, r);
      },
    };
    if (!config) return [inbound, outbound];
    // clamd answers PING and has fresh signatures.
    const clamd: AuditProbe = {
      name: 'clamd',
      async run() {
        const client = new ClamdClient({ address: config.clamd.address, timeoutMs: config.clamd.timeout });
        const h = await client.health(ctx.signal, ctx.now);
        if (!h.ok) return { ok: false, detail: `clamd ${client.name}: ${h.error ?? 'no answer'}` };
        const v = h.version?.raw ?? 'no VERSION';
        if (h.databaseAgeSeconds === undefined) {
          return {
            ok: true,
            detail: `clamd ${client.name}: PONG in ${h.latencyMs}ms; ${v}; no official signature database date (custom signatures only?)`,
            version: v,
          };
        }
        const days = Math.round((h.databaseAgeSeconds / 86400) * 10) / 10;
        const ok = h.databaseAgeSeconds <= MAX_SIGNATURE_AGE_S;
        return {
          ok,
          detail: `clamd ${client.name}: PONG in ${h.latencyMs}ms; ${v}; signatures ${days} day(s) old${ok ? '' : ` (older than ${MAX_SIGNATURE_AGE_S / 86400} days: are updates running?)`}`,
          version: v,
          signature_age_s: h.databaseAgeSeconds,
        };
      },
    };
    return [inbound, outbound, clamd];
  },
};
