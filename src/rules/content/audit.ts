// Rule 6 in the self-audit: an attachment with a blocked name (a harmless file called .exe) is
// refused at end of data, for its name alone.
import type { RuleAuditPart } from '../../policy/rule-parts.js';
import type { ContentConfig } from './schema.js';

export const contentAudit: RuleAuditPart<ContentConfig> = {
  probes: (_config, ctx) => [
    {
      name: 'blocked-attachment-refused',
      async run() {
        const s = await ctx.outsideIfPossible();
        const from = s.outside ? ctx.outsideFrom : ctx.rcpt;
        try {
          const msg = ctx.message('blocked-attachment-refused', from, 'blocked attachment type', {
            filename: 'relayguard-audit.exe',
            contentType: 'application/octet-stream',
            file: 'harmless-executable',
          });
          const { step, reply } = await s.transaction(from, msg);
          const r = ctx.formatReply(reply);
          if (step !== 'end of data')
            return {
              ok: false,
              detail: `not tested: refused at ${step} before the content was seen: ${r} (${s.as})`,
              step,
              reply: r,
            };
          if (reply.code >= 500)
            return { ok: true, detail: `relayguard-audit.exe from ${s.as} refused at end of data: ${r}`, reply: r };
          if (reply.code >= 400)
            return { ok: false, detail: `relayguard-audit.exe from ${s.as} only deferred: ${r}`, reply: r };
          const id = ctx.queueIdOf(reply);
          return {
            ok: false,
            detail: `.exe ATTACHMENT ACCEPTED from ${s.as}${id ? ` as ${id}` : ''} for <${ctx.rcpt}>: ${r}`,
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
