// Rule 3 in the self-audit: SIZE= exactly at the limit is accepted at MAIL, one byte over it
// gets 552 (the policy's limit for the direction the gateway sees, else Postfix's default).
import type { RuleAuditPart } from '../../policy/rule-parts.js';
import { pickDirection } from '../common.js';
import { DEFAULT_MAX_BYTES, type SizeConfig } from './schema.js';

export const sizeAudit: RuleAuditPart<SizeConfig> = {
  probes: (config, ctx) => [
    {
      name: 'size-limit-enforced',
      async run() {
        const s = await ctx.outsideIfPossible();
        const direction = s.outside ? 'inbound' : 'outbound';
        const limit = config ? pickDirection(config.max_bytes, direction) : DEFAULT_MAX_BYTES;
        const source = config
          ? `the policy's ${direction} limit`
          : "Postfix's default limit; the policy has no size rule";
        const from = s.outside ? ctx.outsideFrom : ctx.rcpt;
        const r = ctx.formatReply;
        try {
          const advertised = s.extensions.has('SIZE')
            ? `EHLO advertises SIZE ${s.extensions.get('SIZE') || '(no limit)'}`
            : 'EHLO does not advertise SIZE';
          const atLimit = await s.command(`MAIL FROM:<${from}> SIZE=${limit}`);
          await s.command('RSET');
          const over = await s.command(`MAIL FROM:<${from}> SIZE=${limit + 1}`);
          await s.command('RSET');
          const evidence = { limit, at_limit: r(atLimit), over_limit: r(over) };
          if (!(atLimit.code >= 200 && atLimit.code < 300))
            return {
              ok: false,
              detail: `SIZE=${limit} (exactly ${source}) refused: ${r(atLimit)}; ${advertised}`,
              ...evidence,
            };
          if (over.code !== 552)
            return {
              ok: false,
              detail: `SIZE=${limit + 1} (over ${source}) answered ${r(over)}, not 552; ${advertised}`,
              ...evidence,
            };
          return {
            ok: true,
            detail: `SIZE=${limit + 1} refused: ${r(over)}; SIZE=${limit} accepted (${source}, as ${s.as}); ${advertised}`,
            ...evidence,
          };
        } finally {
          await s.quit();
        }
      },
    },
  ],
};
