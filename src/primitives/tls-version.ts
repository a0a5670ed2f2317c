// TLS protocol names as Postfix, Sendmail and Node spell them, and their order.

const TLS_VERSION = /^TLSv(\d+)(?:\.(\d+))?$/;

/**
 * Orders protocol names: SSLv2 < SSLv3 < TLSv1 (= TLSv1.0) < TLSv1.1 < ... Returns null for a
 * name it does not know, which never meets a minimum (fail closed).
 */
export function tlsRank(version: string): number | null {
  const v = version.trim();
  if (/^SSLv[23]$/.test(v)) return Number(v[4]) - 4; // -2, -1
  const m = TLS_VERSION.exec(v);
  if (!m) return null;
  return Number(m[1]) * 100 + Number(m[2] ?? 0);
}

/** Protocol names from oldest to newest, as smtpd_tls_protocols spells them. */
export const TLS_PROTOCOLS = ['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
