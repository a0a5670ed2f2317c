// What a rule means beyond its handlers, declared next to them (defineRule's `mta` and `audit`
// parts): the MTA settings it requires and their lint checks, and the self-audit's probes of
// it. mta/ and audit/ iterate the rule registry and call these; they never name a rule. The
// types live here, in the contract layer, because rules must not import mta/ or audit/: what
// those give a part (Postfix's defaults, an SMTP session posing as an outside client) comes
// in through the context objects below.
import type { PolicySettings } from '../config/settings.js';

// ------------------------------------------------------------------ MTA

/** One main.cf setting a rule needs, with the reason printed beside it. */
export interface MtaSetting {
  name: string;
  value: string;
  /** One line: why the policy needs this. */
  why: string;
  /** Printed commented out: the value depends on the site (e.g. certificate paths). */
  suggestion?: boolean;
}

/** One sendmail.mc line (m4), with the reason printed as a dnl comment. */
export interface SendmailSetting {
  why: string;
  text: string;
}

export type LintSeverity = 'error' | 'warning';

/** A deviation of the MTA's configuration from what the policy needs. */
export interface LintFinding {
  severity: LintSeverity;
  /** The main.cf parameter concerned. */
  parameter: string;
  /** What is wrong and why it matters. */
  message: string;
  /** The main.cf line that fixes it. */
  fix: string;
}

/** What the MTA side tells a rule's part besides the rule's own configuration. */
export interface MtaContext {
  /** The policy outside `rules:` (local_domains, networks...). */
  policy: PolicySettings;
  /** A policy CIDR in Postfix's mynetworks syntax (IPv6 in brackets). */
  postfixCidr(cidr: string): string;
}

/** For Sendmail lines: where the access map lives, and how a network is keyed in it. */
export interface SendmailContext extends MtaContext {
  /** The access map's source file (the .db beside it is what Sendmail reads). */
  accessMap: string;
  /** A CIDR as an access-map "Connect:" key, or null when Sendmail cannot express it. */
  accessMapKey(cidr: string): string | null;
}

/** Postfix's effective main.cf (postconf -n plus Postfix's defaults), read-only, for lint checks. */
export interface PostfixView {
  /** True when main.cf sets the parameter. */
  has(name: string): boolean;
  /** The value as written (else Postfix's default), $references left alone. */
  raw(name: string): string;
  /** The value with $references expanded (else Postfix's default). */
  value(name: string): string;
  /** A list parameter, expanded and split as Postfix splits it (commas, blanks). */
  list(name: string): string[];
  /** A network list (mynetworks) as plain CIDR; null for an entry that is a table or a file. */
  networks(name: string): Array<{ entry: string; cidr: string | null }>;
  /** The effective smtpd TLS level (may, encrypt, none...), old switches included. */
  tlsLevel(): string;
  /** The lowest protocol a protocol-list parameter lets through (smtpd_tls_protocols). */
  lowestProtocol(name: string): string;
}

/** What `relayguard init` read from the running Postfix (postconf -x) and clamd.conf. */
export interface InitFacts {
  /** message_size_limit (0: unlimited; NaN when unreadable). */
  messageSizeLimit: number;
  /** smtpd_tls_security_level ("none" when empty). */
  tlsLevel: string;
  /** A certificate is configured (smtpd_tls_chain_files or smtpd_tls_cert_file). */
  tlsCertificate: boolean;
  /** The lowest protocol mandatory TLS allows, never below TLSv1.2. */
  tlsFloor: string;
  /** The clamd.conf read. */
  clamdConf: string;
  /** clamd's address from it, or null with the reason. */
  clamd: { address: string; streamMaxLength?: string } | null;
  clamdMissing?: string;
}

/**
 * A rule's MTA side. `config` is the rule's configuration, or null when the rule is off or not
 * in the policy: some settings are needed all the same (a finite size limit, no open relay).
 */
export interface RuleMtaPart<C> {
  /** main.cf settings, in the order they are printed. */
  postfix?(config: C | null, ctx: MtaContext): MtaSetting[];
  /** Postfix's main.cf checked against what this rule needs. */
  lintPostfix?(config: C | null, view: PostfixView, ctx: MtaContext): LintFinding[];
  /** sendmail.mc lines. */
  sendmail?(config: C | null, ctx: SendmailContext): SendmailSetting[];
  /** Lines of Sendmail's access map (/etc/mail/access). */
  sendmailAccess?(config: C | null, ctx: SendmailContext): string[];
  /**
   * The rule's block under `rules:` in the starting policy `relayguard init` writes (YAML lines
   * indented by two, in monitor mode, with a comment saying what enforce would do); a commented
   * example for a rule that needs the admin's input first. Left out: the rule is not written.
   */
  init?(facts: InitFacts): string[];
}

// ------------------------------------------------------------------ audit

/**
 * The client name `relayguard audit` gives its outside probes (XCLIENT NAME=). Its clients are
 * exempt from the ledger: a daily audit must not ban its own probe addresses. Nobody else can
 * come with this name: Postfix only sets a client name from DNS when the name resolves back to
 * the client's address, and .invalid never resolves (RFC 2606); XCLIENT is for the hosts in
 * smtpd_authorized_xclient_hosts.
 */
export const AUDIT_CLIENT_NAME = 'probe.relayguard-audit.invalid';

/** What a probe found: `ok`, a detail line, and evidence (queue id, replies...). */
export interface ProbeOutcome {
  ok: boolean;
  detail: string;
  [extra: string]: unknown;
}

export interface AuditProbe {
  /** Name in the report, e.g. "size-limit-enforced". */
  name: string;
  run(): Promise<ProbeOutcome>;
}

export interface ProbeReply {
  code: number;
  text: string;
}

export interface ProbeTls {
  protocol: string | null;
  cipher: string | null;
  subject?: string;
  authorized: boolean;
  authorizationError?: string;
}

/** An SMTP session with the gateway that the audit opened for a probe (EHLO done). */
export interface ProbeSession {
  /** Who the gateway sees, for the detail text ("outside client 203.0.113.9 (XCLIENT)"). */
  as: string;
  /** The gateway sees an outside client (else an internal one). */
  outside: boolean;
  /** EHLO keywords and their parameters. */
  extensions: ReadonlyMap<string, string>;
  command(line: string): Promise<ProbeReply>;
  ehlo(): Promise<ProbeReply>;
  startTls(): Promise<{ reply: ProbeReply; tls?: ProbeTls }>;
  /** MAIL, RCPT (the audit mailbox), DATA: the first refusal or the final reply, and at which step. */
  transaction(
    from: string,
    message: Buffer,
  ): Promise<{ step: 'MAIL' | 'RCPT' | 'DATA' | 'end of data'; reply: ProbeReply }>;
  quit(): Promise<void>;
}

/** Test payloads the audit can attach (built at run time; see audit/messages.ts). */
export type AuditTestFile = 'eicar' | 'harmless-executable';

/** What the audit gives a rule's probes. */
export interface AuditContext {
  policy: PolicySettings;
  /** The audit mailbox: every test message that gets through lands here. */
  rcpt: string;
  /** The envelope sender of the outside probes. */
  outsideFrom: string;
  signal?: AbortSignal;
  now: () => number;
  /** A session in which the gateway sees an outside client; throws "not tested" when it cannot pose as one. */
  outside(): Promise<ProbeSession>;
  /** A session in which the gateway sees an internal client; throws "not tested" when it cannot. */
  inside(): Promise<ProbeSession>;
  /** An outside client when the audit can pose as one, else an internal one. */
  outsideIfPossible(): Promise<ProbeSession>;
  /** A session as whoever this host is (no posing). */
  plain(): Promise<ProbeSession>;
  /** A test message from `from` to the audit mailbox, marked with the audit id and probe name. */
  message(
    probe: string,
    from: string,
    subject: string,
    attachment?: { filename: string; contentType: string; file: AuditTestFile },
  ): Buffer;
  /** "250 2.0.0 Ok: queued as 4Xyz" */
  formatReply: (r: ProbeReply) => string;
  queueIdOf(r: ProbeReply): string | undefined;
  /** Was the accepted test message `id` held for review? Then remove it (the outcome says). */
  checkHeld(id: string, as: string, reply: string): Promise<ProbeOutcome>;
}

/**
 * A rule's probes in `relayguard audit`. `config` is null when the rule is off or absent: a probe
 * of what the gateway must do anyway (no open relay, a size limit) still runs and says so.
 */
export interface RuleAuditPart<C> {
  probes(config: C | null, ctx: AuditContext): AuditProbe[];
}
