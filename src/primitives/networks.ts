// CIDR sets for IPv4 and IPv6 (ipaddr.js). IPv4-mapped IPv6 and Sendmail's "IPv6:" prefix are
// normalised first, and v4 and v6 ranges are kept apart (matching across kinds throws in ipaddr.js).
import ipaddr from 'ipaddr.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Normalise an address as the MTA sent it; null when it is not an IP address. */
export function normalizeIp(raw: string): string | null {
  let s = raw.trim();
  if (/^ipv6:/i.test(s)) s = s.slice(5);
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (!ipaddr.isValid(s)) return null;
  return ipaddr.process(s).toString();
}

export function parseCidr(text: string): Range {
  const s = text.trim();
  if (s.includes('/')) {
    const [addr, bits] = ipaddr.parseCIDR(s);
    return [
      addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()
        ? (addr as ipaddr.IPv6).toIPv4Address()
        : addr,
      addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() ? bits - 96 : bits,
    ];
  }
  const addr = ipaddr.process(s);
  return [addr, addr.kind() === 'ipv4' ? 32 : 128];
}

export function isValidCidr(text: string): boolean {
  try {
    parseCidr(text);
    return true;
  } catch {
    return false;
  }
}

export class NetworkSet {
  private readonly v4: Range[] = [];
  private readonly v6: Range[] = [];

  constructor(readonly cidrs: readonly string[]) {
    for (const c of cidrs) {
      const r = parseCidr(c);
      (r[0].kind() === 'ipv4' ? this.v4 : this.v6).push(r);
    }
  }

  contains(ip: string | null | undefined): boolean {
    if (!ip) return false;
    const norm = normalizeIp(ip);
    if (!norm) return false;
    const addr = ipaddr.parse(norm);
    const list = addr.kind() === 'ipv4' ? this.v4 : this.v6;
    return list.some((range) => addr.match(range));
  }

  get size(): number {
    return this.v4.length + this.v6.length;
  }
}
