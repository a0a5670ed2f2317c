// Rule 9 in the self-audit: the gateway offers STARTTLS and the handshake reaches at least the
// rule's min_version (never below TLSv1.2).
import type { RuleAuditPart } from '../../policy/rule-parts.js';
import { tlsRank } from '../../primitives/tls-version.js';
import { DEFAULT_MIN_VERSION, type TlsConfig } from './schema.js';

export const tlsAudit: RuleAuditPart<TlsConfig> = {
  probes: (config, ctx) => [
    {
      name: 'starttls',
      async run() {
        const s = await ctx.plain();
        try {
          if (!s.extensions.has('STARTTLS'))
            return { ok: false, detail: 'EHLO does not offer STARTTLS: mail crosses the network in clear' };
          const { reply, tls } = await s.startTls();
          if (!tls) return { ok: false, detail: `STARTTLS refused: ${ctx.formatReply(reply)}` };
          const min = config?.min_version ?? DEFAULT_MIN_VERSION;
          const minRank = Math.max(tlsRank(min) ?? 0, tlsRank('TLSv1.2')!);
          const rank = tls.protocol ? tlsRank(tls.protocol) : null;
          const cert = tls.authorized
            ? 'certificate verified'
            : `certificate not verified (${tls.authorizationError ?? 'unknown'})`;
          const desc = `${tls.protocol ?? 'unknown protocol'} ${tls.cipher ?? ''}, ${tls.subject ? `CN=${tls.subject}, ` : ''}${cert}`;
          const again = await s.ehlo();
          const evidence = { protocol: tls.protocol, cipher: tls.cipher };
          if (rank === null || rank < minRank)
            return { ok: false, detail: `handshake with ${desc}: below ${min}`, ...evidence };
          if (again.code !== 250)
            return {
              ok: false,
              detail: `after the handshake (${desc}) EHLO answered ${ctx.formatReply(again)}`,
              ...evidence,
            };
          return { ok: true, detail: `STARTTLS: ${desc}`, ...evidence };
        } finally {
          await s.quit();
        }
      },
    },
  ],
};
