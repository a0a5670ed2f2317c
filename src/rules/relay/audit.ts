// Rule 1 in the self-audit: as an outside client, RCPT to a domain that is nobody's is refused
// while the audit mailbox in the same transaction is accepted. Nothing is ever sent.
import type { RuleAuditPart } from '../../policy/rule-parts.js';
import type { RelayConfig } from './schema.js';

/** A recipient in a domain that is nobody's: the open-relay probe never sends to it. */
const RELAY_TEST_RCPT = 'relayguard-audit@relay-test.invalid';

const is2xx = (code: number) => code >= 200 && code < 300;

export const relayAudit: RuleAuditPart<RelayConfig> = {
  probes: (_config, ctx) => [
    {
      name: 'open-relay-refused',
      async run() {
        const s = await ctx.outside();
        const r = ctx.formatReply;
        try {
          const mail = await s.command(`MAIL FROM:<${ctx.outsideFrom}>`);
          if (!is2xx(mail.code))
            return {
              ok: false,
              detail: `not tested: MAIL FROM:<${ctx.outsideFrom}> was refused first (${r(mail)}) as ${s.as}`,
            };
          const foreign = await s.command(`RCPT TO:<${RELAY_TEST_RCPT}>`);
          const local = await s.command(`RCPT TO:<${ctx.rcpt}>`);
          await s.command('RSET');
          const evidence = { foreign: r(foreign), local: r(local) };
          if (is2xx(foreign.code))
            return {
              ok: false,
              detail: `OPEN RELAY: RCPT TO:<${RELAY_TEST_RCPT}> accepted from ${s.as}: ${r(foreign)} (nothing was sent)`,
              ...evidence,
            };
          if (!(foreign.code >= 500 && foreign.code < 600))
            return { ok: false, detail: `relaying only deferred, not refused: ${r(foreign)} as ${s.as}`, ...evidence };
          if (!is2xx(local.code))
            return {
              ok: false,
              detail: `inconclusive: the local recipient <${ctx.rcpt}> was refused too (${r(local)}) as ${s.as}`,
              ...evidence,
            };
          return {
            ok: true,
            detail: `refused for ${s.as}: ${r(foreign)}; <${ctx.rcpt}> in the same transaction accepted`,
            ...evidence,
          };
        } finally {
          await s.quit();
        }
      },
    },
  ],
};
