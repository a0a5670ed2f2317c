// Sender authentication of one message (DKIM, SPF, DMARC, and the ARC chain it came with) on
// mailauth, through a DNS resolver we choose (the system's, or the servers in the policy) and
// under the phase deadline. This file turns mailauth's result into the small set of facts the
// rules read, and the lines of our Authentication-Results header (RFC 8601).
import { Resolver } from 'node:dns/promises';
import type { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import type * as MailAuth from 'mailauth';
import { untilAborted } from './until-aborted.js';

type Verifiers = Pick<typeof MailAuth, 'dkimVerify' | 'spf' | 'arc' | 'dmarc'>;
type Signers = Pick<typeof MailAuth, 'dkimSign' | 'sealMessage'>;
let verifiers: Verifiers | undefined;
let signers: Signers | undefined;

// mailauth is loaded on first use, and only the parts that run: its index also loads BIMI's
// certificate and HTTP code (which relayguard never runs), about as much again as DKIM, SPF,
// ARC and DMARC together (bench/RESULTS.md). These module paths are the ones mailauth's README
// names for its parts; test/unit/mail-auth-parts.test.ts holds the results to authenticate()'s.
const mailauthPart = <T>(path: string): T => createRequire(import.meta.url)(`mailauth/lib/${path}`) as T;

function verifyParts(): Verifiers {
  return (verifiers ??= {
    dkimVerify: mailauthPart<Verifiers>('dkim/verify').dkimVerify,
    spf: mailauthPart<Verifiers>('spf').spf,
    arc: mailauthPart<Verifiers>('arc').arc,
    dmarc: mailauthPart<Verifiers>('dmarc').dmarc,
  });
}

function signParts(): Signers {
  return (signers ??= {
    dkimSign: mailauthPart<Signers>('dkim/sign').dkimSign,
    sealMessage: mailauthPart<Signers>('arc').sealMessage,
  });
}

export type AuthResult = 'pass' | 'fail' | 'neutral' | 'none' | 'policy' | 'softfail' | 'temperror' | 'permerror';

export interface DkimFact {
  /** d= of the signature. */
  domain: string;
  selector: string;
  algorithm: string;
  result: AuthResult;
  /** Lower-case names of the headers the signature covers (h=), in order. */
  signedHeaders: string[];
  /** The signature's d= is aligned with the From domain (DMARC's relaxed or strict rule). */
  aligned: boolean;
}

export interface AuthFacts {
  /** The authserv-id the results were recorded under. */
  authservId: string;
  dkim: DkimFact[];
  spf: { result: AuthResult; domain: string };
  dmarc: {
    result: AuthResult;
    /** The From domain's published policy (p=, or sp= for a subdomain): "none" when it has none. */
    policy: 'none' | 'quarantine' | 'reject';
    domain: string;
  };
  /** The ARC chain the message came with: none, pass or fail. */
  arc: AuthResult;
  /** Result lines of Authentication-Results (without the authserv-id), one per method. */
  lines: string[];
  /** relayguard will ARC-seal the message if it changes it (rule authentication, arc_seal). */
  willSeal: boolean;
}

export interface AuthInput {
  message: Readable | Buffer;
  /** Client IP address; null for a local (unix socket) client, which gets spf=none. */
  ip: string | null;
  helo: string;
  /** MAIL FROM address, "" for the null sender. */
  sender: string;
  authservId: string;
  signal: AbortSignal;
  /** Recorded in the facts: the caller seals what relayguard changes. */
  willSeal?: boolean;
}

export interface MailAuthOptions {
  /** "host" or "host:port"; empty: the system's resolvers. */
  dnsServers: readonly string[];
  /** Per-query timeout, ms. */
  dnsTimeoutMs: number;
  /** Smallest RSA key (bits) a signature may use and still pass. */
  minKeyBits: number;
}

type DnsAnswer = string[][] | string[];

/** mailauth's resolver contract: (name, rrtype) => the answer dns.resolve gives. */
function makeResolver(opts: MailAuthOptions): {
  resolve: (name: string, type: string) => Promise<DnsAnswer>;
  cancel: () => void;
} {
  const resolver = new Resolver({ timeout: opts.dnsTimeoutMs, tries: 2 });
  if (opts.dnsServers.length > 0) resolver.setServers([...opts.dnsServers]);
  return {
    resolve: (name, type) => resolver.resolve(name, type) as Promise<DnsAnswer>,
    cancel: () => resolver.cancel(),
  };
}

const RESULTS = new Set<AuthResult>([
  'pass',
  'fail',
  'neutral',
  'none',
  'policy',
  'softfail',
  'temperror',
  'permerror',
]);
const asResult = (r: unknown): AuthResult =>
  typeof r === 'string' && RESULTS.has(r.toLowerCase() as AuthResult) ? (r.toLowerCase() as AuthResult) : 'none';
const asPolicy = (p: unknown): AuthFacts['dmarc']['policy'] => (p === 'reject' || p === 'quarantine' ? p : 'none');

/** A result line with its whitespace folded to single spaces (mailauth folds long lines itself). */
const oneLine = (s: string) => closedComments(s.replace(/\s+/g, ' ').trim());

/**
 * mailauth writes comments with ")" and "\" escaped but "(" as it is, and a comment quotes the
 * envelope sender: `(… domain of "a(b"@x …)` would open a nested comment that never closes and
 * hide every result after it from a reader. Inside a comment every "(" is escaped here (mailauth
 * never nests comments) and a comment still open at the end of the line is closed.
 */
export function closedComments(line: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\') {
      // A quoted-pair stays as it is; a lone "\" at the end would escape our closing ")".
      if (i + 1 < line.length) out += c + line[++i]!;
    } else if (depth > 0) {
      if (c === '(') out += '\\(';
      else {
        out += c;
        if (c === ')') depth--;
      }
    } else if (quoted) {
      out += c;
      if (c === '"') quoted = false;
    } else {
      out += c;
      if (c === '"') quoted = true;
      else if (c === '(') depth = 1;
    }
  }
  return out + ')'.repeat(depth);
}

interface MailauthDkimRow {
  signingDomain?: string;
  selector?: string;
  algo?: string;
  info?: string;
  status?: { result?: string; aligned?: string | false };
  signingHeaders?: { keys?: string };
}

export interface VerifyOptions {
  ip: string | null;
  helo: string;
  sender: string;
  /** The name SPF's result comments give for the receiving host (our authserv-id). */
  mta: string;
  resolver: (name: string, type: string) => Promise<DnsAnswer>;
  minBitLength: number;
}

export interface VerifyResults {
  dkim: Awaited<ReturnType<Verifiers['dkimVerify']>>;
  spf: Awaited<ReturnType<Verifiers['spf']>> | false;
  arc: Awaited<ReturnType<Verifiers['arc']>>;
  /** The strictest of `dmarcEach` (see dmarcForAuthors). */
  dmarc: Awaited<ReturnType<Verifiers['dmarc']>>;
  /** DMARC for each domain of the From header (one for one author; none without a From). */
  dmarcEach: Array<Awaited<ReturnType<Verifiers['dmarc']>>>;
}

type DmarcResult = Exclude<Awaited<ReturnType<Verifiers['dmarc']>>, false>;

/** How strict a DMARC result is: a failure under the strictest policy first, a pass last. */
function strictness(r: DmarcResult): number {
  const result = r.status?.result;
  const policy = (r as { policy?: string; p?: string }).policy ?? (r as { p?: string }).p;
  if (result === 'fail') return policy === 'reject' ? 0 : policy === 'quarantine' ? 1 : 2;
  const order = ['temperror', 'permerror', 'none', 'neutral', 'pass'];
  const i = order.indexOf(result ?? 'none');
  return 3 + (i < 0 ? 2 : i);
}

const domainOf = (address: string) =>
  address
    .slice(address.lastIndexOf('@') + 1)
    .trim()
    .toLowerCase();

/**
 * DMARC for a From header with one author or several. mailauth answers a From with several
 * addresses with no result at all (`false`, so dmarc=none), which let a sender put an outside
 * brand with p=reject next to an address of their own and have no policy apply. RFC 7489 section
 * 6.6.1 lets a receiver check each author domain and apply the strictest policy among those that
 * fail: each distinct domain is checked, and the strictest result stands for the message.
 */
async function dmarcForAuthors(
  headerFrom: string | string[] | undefined,
  check: (address: string) => Promise<Awaited<ReturnType<Verifiers['dmarc']>>>,
): Promise<Pick<VerifyResults, 'dmarc' | 'dmarcEach'>> {
  const authors = headerFrom === undefined ? [] : Array.isArray(headerFrom) ? headerFrom : [headerFrom];
  const oneEach = [...new Map(authors.filter(Boolean).map((a) => [domainOf(a), a])).values()];
  const each = await Promise.all(oneEach.map(check));
  const results = each.filter((r): r is DmarcResult => r !== false);
  if (results.length === 0) return { dmarc: false, dmarcEach: each };
  const strictest = results.reduce((a, b) => (strictness(b) < strictness(a) ? b : a));
  return { dmarc: strictest, dmarcEach: each };
}

/**
 * DKIM, SPF, the ARC chain, then DMARC over the first three: the checks mailauth's
 * authenticate() runs with BIMI off and no seal, in its order and with its inputs to each.
 */
export async function verifyMessage(message: Readable | Buffer, o: VerifyOptions): Promise<VerifyResults> {
  const parts = verifyParts();
  const dkim = await parts.dkimVerify(message, {
    resolver: o.resolver,
    sender: o.sender,
    minBitLength: o.minBitLength,
  });
  // The HELO name SPF checks: the address for a client that gave none, an address literal in brackets.
  const helo = o.helo || o.ip || '';
  const spf = await parts.spf({
    ...(o.ip ? { ip: o.ip } : {}),
    helo: helo && isIP(helo) ? `[${helo}]` : helo,
    sender: o.sender,
    mta: o.mta,
    resolver: o.resolver,
  } as Parameters<Verifiers['spf']>[0]);
  const arc = await parts.arc(dkim.arc as Parameters<Verifiers['arc']>[0], {
    resolver: o.resolver,
    minBitLength: o.minBitLength,
  });
  const spfDomains = spf && spf.status?.result === 'pass' && spf.domain ? [spf.domain] : [];
  const dkimDomains = (dkim.results ?? [])
    .filter((r) => r.status?.result === 'pass')
    .map((r) => ({
      id: (r as { id?: string }).id,
      domain: r.signingDomain,
      aligned: r.status.aligned,
      underSized: (r.status as { underSized?: boolean }).underSized,
    }));
  const { dmarc, dmarcEach } = await dmarcForAuthors(dkim.headerFrom, (headerFrom) =>
    parts.dmarc({ headerFrom, spfDomains, dkimDomains, arcResult: arc, resolver: o.resolver }),
  );
  return { dkim, spf, arc, dmarc, dmarcEach };
}

/** Checks the message. DNS trouble shows as temperror results, never as an exception. */
export async function checkAuthentication(input: AuthInput, opts: MailAuthOptions): Promise<AuthFacts> {
  const dns = makeResolver(opts);
  const onAbort = () => dns.cancel();
  input.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const r = await untilAborted(
      verifyMessage(input.message, {
        ip: input.ip,
        helo: input.helo,
        sender: input.sender,
        mta: input.authservId,
        resolver: dns.resolve,
        minBitLength: opts.minKeyBits,
      }),
      input.signal,
    );
    const rows = (r.dkim?.results ?? []) as MailauthDkimRow[];
    const dkim: DkimFact[] = rows
      .filter((row) => row.signingDomain)
      .map((row) => ({
        domain: row.signingDomain!.toLowerCase(),
        selector: row.selector ?? '',
        algorithm: row.algo ?? '',
        result: asResult(row.status?.result),
        signedHeaders: (row.signingHeaders?.keys ?? '')
          .split(':')
          .map((h) => h.trim().toLowerCase())
          .filter(Boolean),
        aligned: Boolean(row.status?.aligned),
      }));
    const lines: string[] = rows.map((row) => oneLine(row.info ?? ''));
    if (lines.length === 0) lines.push('dkim=none');
    const spf = r.spf as { status?: { result?: string }; domain?: string; info?: string } | false | undefined;
    if (spf && spf.info) lines.push(oneLine(spf.info));
    else lines.push('spf=none');
    const arc = r.arc as { status?: { result?: string }; info?: string } | false | undefined;
    if (arc && arc.info) lines.push(oneLine(arc.info));
    const dmarc = r.dmarc as
      { status?: { result?: string }; policy?: string; p?: string; domain?: string; info?: string } | false | undefined;
    // One line per author domain (RFC 8601 allows a method more than once).
    const dmarcLines = (r.dmarcEach as Array<{ info?: string } | false>).flatMap((d) =>
      d && d.info ? [oneLine(d.info)] : [],
    );
    lines.push(...(dmarcLines.length ? dmarcLines : ['dmarc=none']));
    return {
      authservId: input.authservId,
      dkim,
      spf: { result: spf ? asResult(spf.status?.result) : 'none', domain: spf ? (spf.domain ?? '') : '' },
      dmarc: {
        result: dmarc ? asResult(dmarc.status?.result) : 'none',
        policy: dmarc ? asPolicy(dmarc.policy ?? dmarc.p) : 'none',
        domain: dmarc ? (dmarc.domain ?? '') : '',
      },
      arc: arc ? asResult(arc.status?.result) : 'none',
      lines,
      willSeal: input.willSeal ?? false,
    };
  } finally {
    input.signal.removeEventListener('abort', onAbort);
  }
}

/** The value of our Authentication-Results header: authserv-id, then one folded line per result. */
export function authenticationResultsValue(facts: Pick<AuthFacts, 'authservId' | 'lines'>): string {
  return [`${facts.authservId};`, ...facts.lines.map((l, i) => `\t${l}${i < facts.lines.length - 1 ? ';' : ''}`)].join(
    '\n',
  );
}

/**
 * The authserv-id an Authentication-Results value claims (RFC 8601 section 2.2: the first token,
 * before any version and ";"), lower-case; "" when there is none.
 */
export function authservIdOf(value: string): string {
  const stripped = value.replace(/\([^()]*\)/g, ' ').trim();
  const m = /^([^\s;]+)/.exec(stripped);
  return m ? m[1]!.toLowerCase() : '';
}

export interface SealKey {
  domain: string;
  selector: string;
  /** PEM (PKCS#8 or PKCS#1 RSA, PKCS#8 Ed25519). */
  privateKey: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
}

// SIGN_TIME_NOTE: without `signTime`, mailauth 4.13 reads the clock twice for a signature's t=
// tag: once for the header it signs and once for the header it returns. When the rounded second
// changes between the two (the RSA signature is made in between), the returned header is not the
// one signed and the signature fails everywhere ("bad signature"), for DKIM signatures and ARC
// message signatures alike (test/unit/sign-time.test.ts). A time given once is used for both.

/**
 * An ARC set (RFC 8617) over the message as it will be delivered: ARC-Seal,
 * ARC-Message-Signature, ARC-Authentication-Results, top first, as header fields. The instance
 * follows the chain the message came with; `cv` is that chain's result ("none" for the first).
 */
export async function arcSet(
  message: Readable,
  key: SealKey,
  authResults: string,
  cv: AuthResult,
): Promise<Array<{ name: string; value: string }>> {
  const raw = await signParts().sealMessage(message, {
    // One time for the whole set (see SIGN_TIME_NOTE).
    signTime: new Date(),
    signingDomain: key.domain,
    selector: key.selector,
    privateKey: key.privateKey,
    algorithm: key.algorithm,
    authResults,
    cv: cv === 'pass' || cv === 'fail' ? cv : 'none',
  } as Parameters<typeof MailAuth.sealMessage>[1]);
  return headerFields(raw.toString('latin1'));
}

/** DKIM-Signature fields over the message as it will be delivered, one per key. */
export async function dkimSignatures(
  message: Readable,
  keys: readonly SealKey[],
): Promise<Array<{ name: string; value: string }>> {
  const r = await signParts().dkimSign(message, {
    // One time for every signature (see SIGN_TIME_NOTE).
    signTime: new Date(),
    canonicalization: 'relaxed/relaxed',
    signatureData: keys.map((k) => ({
      signingDomain: k.domain,
      selector: k.selector,
      privateKey: k.privateKey,
      algorithm: k.algorithm,
    })),
  } as Parameters<typeof MailAuth.dkimSign>[1]);
  if (r.errors?.length) {
    const why = (r.errors as unknown[]).map(
      (e) => (e as { error?: Error; message?: string }).error?.message ?? (e as Error).message ?? String(e),
    );
    throw new Error(`DKIM signing failed: ${why.join('; ')}`);
  }
  return headerFields(r.signatures);
}

/** "Name: value\r\n folded\r\n" lines -> fields with the value's folds as "\n" + whitespace. */
function headerFields(text: string): Array<{ name: string; value: string }> {
  return text
    .split(/\r?\n(?![ \t])/)
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const colon = l.indexOf(':');
      return {
        name: l.slice(0, colon),
        value: l
          .slice(colon + 1)
          .replace(/^ /, '')
          .replace(/\r\n/g, '\n'),
      };
    });
}
