// Envelope addresses as MAIL/RCPT carry them: "<local@domain>", "<>", sometimes without brackets.
import { domainToASCII } from 'node:url';

export interface Address {
  /** As given, without angle brackets ("" for the null sender). */
  raw: string;
  local: string;
  /** Lower-case domain, "" when none. */
  domain: string;
}

export function parseEnvelopeAddress(raw: string): Address {
  let s = raw.trim();
  if (s.startsWith('<') && s.endsWith('>')) s = s.slice(1, -1);
  // Drop a source route ("@a,@b:user@host"), which RFC 5321 says to ignore.
  const colon = s.indexOf(':');
  if (s.startsWith('@') && colon > 0) s = s.slice(colon + 1);
  const at = s.lastIndexOf('@');
  if (at < 0) return { raw: s, local: s, domain: '' };
  return { raw: s, local: s.slice(0, at), domain: normalizeDomain(s.slice(at + 1)) };
}

export function normalizeDomain(d: string): string {
  const lower = d.trim().toLowerCase().replace(/\.$/, '');
  if (/^[\x00-\x7f]*$/.test(lower)) return lower;
  return domainToASCII(lower) || lower;
}

/** True when `domain` is `base` or a subdomain of it. */
export function domainMatches(domain: string, base: string): boolean {
  const d = normalizeDomain(domain);
  const b = normalizeDomain(base);
  return d === b || d.endsWith(`.${b}`);
}

/** ESMTP parameters ("SIZE=123", "BODY=8BITMIME") to an upper-case keyed map. */
export function parseEsmtpParams(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq < 0) out[a.toUpperCase()] = '';
    else out[a.slice(0, eq).toUpperCase()] = a.slice(eq + 1);
  }
  return out;
}
