// Rule 9 on the MTA side: the MTA offers STARTTLS to everyone, accepts no protocol below the
// rule's floor, and reaches partners that must send over TLS over TLS too.
import { normalizeDomain } from '../../primitives/address.js';
import type { LintFinding, RuleMtaPart } from '../../policy/rule-parts.js';
import { TLS_PROTOCOLS, tlsRank } from '../../primitives/tls-version.js';
import { DEFAULT_MIN_VERSION, type TlsConfig } from './schema.js';

/** Where certificates are configured in main.cf: one of them set means Postfix can offer STARTTLS. */
const CERTIFICATE_PARAMETERS = [
  'smtpd_tls_chain_files',
  'smtpd_tls_cert_file',
  'smtpd_tls_eccert_file',
  'smtpd_tls_dcert_file',
];

/** OpenSSL options that switch off every protocol below `min` (Sendmail). */
const SSL_OP_NO: Array<[string, string]> = [
  ['SSLv2', '+SSL_OP_NO_SSLv2'],
  ['SSLv3', '+SSL_OP_NO_SSLv3'],
  ['TLSv1', '+SSL_OP_NO_TLSv1'],
  ['TLSv1.1', '+SSL_OP_NO_TLSv1_1'],
  ['TLSv1.2', '+SSL_OP_NO_TLSv1_2'],
];

/** "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1": every protocol below `min` excluded (works on every Postfix 3.x). */
export function excludedProtocols(min: string): string {
  const minRank = tlsRank(min) ?? tlsRank('TLSv1.2')!;
  return TLS_PROTOCOLS.filter((p) => tlsRank(p)! < minRank)
    .map((p) => `!${p}`)
    .join(', ');
}

const minVersion = (config: TlsConfig | null) => config?.min_version ?? DEFAULT_MIN_VERSION;
/** Partners that must send to us encrypted are reached encrypted too. */
const encryptDomains = (config: TlsConfig | null) => (config?.require.sender_domains ?? []).map(normalizeDomain);
const policyMap = (domains: readonly string[]) =>
  `inline:{ ${domains.flatMap((d) => [`${d}=encrypt`, `.${d}=encrypt`]).join(', ')} }`;

export const tlsMta: RuleMtaPart<TlsConfig> = {
  init({ tlsLevel: level, tlsCertificate: hasCert, tlsFloor: floor }) {
    const offered =
      level === 'none' || !hasCert
        ? `to nobody (smtpd_tls_security_level = ${level}${hasCert ? '' : ', no certificate'}): no client can meet a TLS requirement until it does`
        : `(smtpd_tls_security_level = ${level})`;
    return [
      '  tls:',
      `    # From smtpd_tls_*: Postfix offers STARTTLS ${offered}.`,
      '    # enforce: clients from require.networks (or senders in require.sender_domains) without TLS',
      `    # get 530 5.7.0 at MAIL; min_version ${floor} is the floor where TLS is required.`,
      '    mode: monitor',
      '    require:',
      '      networks: []',
      '      sender_domains: []',
      `    min_version: ${floor}`,
    ];
  },
  postfix(config) {
    const min = minVersion(config);
    const excluded = excludedProtocols(min);
    const why = config ? `rule 9: nothing below its min_version ${min}` : `no protocol below ${min}`;
    const partners = encryptDomains(config);
    return [
      {
        name: 'smtpd_tls_security_level',
        value: 'may',
        why: 'rule 9: offer STARTTLS to everyone; relayguard refuses plain text where the policy requires TLS (a public MX may not require it of all)',
      },
      { name: 'smtpd_tls_protocols', value: excluded, why },
      { name: 'smtpd_tls_mandatory_protocols', value: excluded, why },
      {
        name: 'smtpd_tls_chain_files',
        value: '/etc/postfix/key.pem, /etc/postfix/cert.pem',
        why: 'set to your key and certificate: without one Postfix offers no STARTTLS',
        suggestion: true,
      },
      ...(partners.length
        ? [
            {
              name: 'smtp_tls_policy_maps',
              value: policyMap(partners),
              why: 'rule 9: partners that must send to us over TLS are reached over TLS too (no plain-text fallback)',
            },
          ]
        : []),
    ];
  },
  lintPostfix(config, view) {
    const findings: LintFinding[] = [];
    const add = (severity: LintFinding['severity'], parameter: string, message: string, fix: string) =>
      findings.push({ severity, parameter, message, fix });
    const min = minVersion(config);
    const required = (config?.require.networks.length ?? 0) + (config?.require.sender_domains.length ?? 0) > 0;
    const level = view.tlsLevel();
    if (level === 'none') {
      if (required) {
        add(
          'error',
          'smtpd_tls_security_level',
          'Postfix offers no STARTTLS, but rule 9 requires TLS from some clients: they can never send',
          'smtpd_tls_security_level = may',
        );
      } else {
        add(
          'warning',
          'smtpd_tls_security_level',
          'Postfix offers no STARTTLS: mail from outside crosses the network in clear',
          'smtpd_tls_security_level = may',
        );
      }
    } else {
      if (!CERTIFICATE_PARAMETERS.some((c) => view.raw(c).trim() !== '')) {
        add(
          'warning',
          'smtpd_tls_chain_files',
          `smtpd_tls_security_level = ${level} but no certificate is configured: Postfix offers no STARTTLS`,
          'smtpd_tls_chain_files = /etc/postfix/key.pem, /etc/postfix/cert.pem',
        );
      }
      if (level === 'encrypt' || level === 'secure' || level === 'verify') {
        add(
          'warning',
          'smtpd_tls_security_level',
          `smtpd_tls_security_level = ${level} refuses every client without TLS; a public MX should offer TLS (may) and let relayguard require it where the policy says`,
          'smtpd_tls_security_level = may',
        );
      }
      if (config) {
        const minRank = tlsRank(min) ?? 0;
        for (const p of ['smtpd_tls_protocols', 'smtpd_tls_mandatory_protocols']) {
          const lowest = view.lowestProtocol(p);
          if ((tlsRank(lowest) ?? 0) < minRank)
            add(
              'warning',
              p,
              `${p} allows ${lowest}, below rule 9's min_version ${min}`,
              `${p} = ${excludedProtocols(min)}`,
            );
        }
      }
    }
    const partners = encryptDomains(config);
    if (partners.length && view.raw('smtp_tls_policy_maps').trim() === '') {
      add(
        'warning',
        'smtp_tls_policy_maps',
        `partner domains ${partners.join(', ')} must send over TLS, but mail to them may go out in clear`,
        `smtp_tls_policy_maps = ${policyMap(partners)}`,
      );
    }
    return findings;
  },
  sendmail(config) {
    const min = minVersion(config);
    const minRank = tlsRank(min) ?? tlsRank('TLSv1.2')!;
    const noOps = SSL_OP_NO.filter(([p]) => tlsRank(p)! < minRank).map(([, op]) => op);
    return [
      {
        why: config ? `rule 9: no protocol below its min_version ${min}` : `no TLS protocol below ${min}`,
        text: `define(\`confSERVER_SSL_OPTIONS', \`${noOps.join(' ')}')dnl`,
      },
      {
        why: 'rule 9: offer STARTTLS (set to your certificate and key; without them Sendmail offers no STARTTLS)',
        text: "dnl define(`confSERVER_CERT', `/etc/mail/tls/cert.pem')dnl define(`confSERVER_KEY', `/etc/mail/tls/key.pem')dnl",
      },
    ];
  },
};
