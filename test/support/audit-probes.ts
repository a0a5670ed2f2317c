// The probes `relayguard audit` runs against the reference gateway, in the order it reports them:
// the gateway's own probes, then each rule's in the registry's order (relay, size, access, tls,
// antivirus, content, blocklists), then relayguard's milter. One list for the audit's unit test
// (a scripted gateway) and its e2e tests against the real Postfix and Sendmail.
export const REFERENCE_PROBES: readonly string[] = [
  'banner',
  'ehlo',
  'vrfy-refused',
  'expn-refused',
  'open-relay-refused',
  'size-limit-enforced',
  'spoofed-sender-refused',
  'starttls',
  'virus-refused-inbound',
  'virus-held-outbound',
  'clamd',
  'blocked-attachment-refused',
  'dnsbl:bl.test',
  'milter',
];
