// Rule 4 in the self-audit: an outside client using one of our own domains as envelope sender
// is refused (5xx), not only deferred, and nothing is delivered.
import type { RuleAuditPart } from '../../policy/rule-parts.js';
import type { AccessConfig } from './schema.js';

export const accessAudit: RuleAuditPart<AccessConfig> = {
  probes: (_config, ctx) => [
    {
      name: 'spoofed-sender-refused',
      async run() {
        const domain = ctx.policy.local_domains[0];
        if (!domain) return { ok: false, detail: 'not tested: the policy names no local_domains' };
        const spoofed = `relayguard-audit@${domain.replace(/^\*?\./, '')}`;
        const s = await ctx.outside();
        try {
          const { step, reply } = await s.transaction(
            spoofed,
            ctx.message('spoofed-sender-refused', spoofed, 'spoofed internal sender'),
          );
          const r = ctx.formatReply(reply);
          if (reply.code >= 500 && reply.code < 600)
            return { ok: true, detail: `MAIL FROM:<${spoofed}> from ${s.as} refused at ${step}: ${r}`, step, reply: r };
          if (reply.code >= 400 && reply.code < 500)
            return { ok: false, detail: `only deferred at ${step}, not refused: ${r} (${s.as})`, step, reply: r };
          const id = ctx.queueIdOf(reply);
          return {
            ok: false,
            detail: `SPOOFED SENDER ACCEPTED: MAIL FROM:<${spoofed}> from ${s.as} delivered to <${ctx.rcpt}>${id ? ` as ${id}` : ''}: ${r}`,
            step,
            reply: r,
            ...(id ? { queue_id: id } : {}),
          };
        } finally {
          await s.quit();
        }
      },
    },
  ],
};
