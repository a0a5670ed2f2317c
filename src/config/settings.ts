// The global (non-rule) part of the policy: where things are, who is internal, limits and deadlines.
import { z } from 'zod';
import { DEFAULT_HEAP_PROFILE, HEAP_PROFILE_NAMES } from '../ops/heap-profile.js';
import { isValidCidr } from '../primitives/networks.js';
import { byteSize, duration } from '../primitives/units.js';

export const cidr = () => z.string().refine(isValidCidr, { message: 'not an IP address or CIDR range' });
export const cidrList = () => z.array(cidr());
export const domainList = () =>
  z.array(
    z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9.*_-]+$/, 'not a domain name'),
  );

/** "inet:HOST:PORT" or "unix:PATH", Postfix syntax. */
const listenAddress = () =>
  z
    .string()
    .regex(
      /^(inet:[^:]+(:\d+)?|inet:\[[0-9a-fA-F:.]+\]:\d+|inet6?:.+:\d+|unix:.+)$/,
      'use inet:HOST:PORT or unix:PATH',
    );

export const serverSchema = z
  .object({
    listen: listenAddress().default('inet:127.0.0.1:10025'),
    /** Mode of a unix socket, octal string. */
    socket_mode: z
      .string()
      .regex(/^0?[0-7]{3}$/)
      .default('0660'),
    /** Group of a unix socket (name or gid); default: postfix when that group exists. */
    socket_group: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'a group name or number')
      .optional(),
    /** Open milter connections in all. When the table is full a new connection takes the slot of the stalest idle one (see docs/security.md). */
    max_connections: z.number().int().positive().default(500),
    /** Open connections from one peer address (inet only; a unix socket is one local peer). Postfix's default_process_limit is 100. */
    max_connections_per_peer: z.number().int().positive().default(250),
    max_frame_bytes: byteSize().default(1024 * 1024),
    /** Macro names and values a connection may hold at once (all stages); Postfix sends a few hundred bytes. Beyond: the connection is closed. */
    max_macro_bytes: byteSize().default(64 * 1024),
    /** Bytes read from a connection but not handled yet; reading pauses beyond it (at least one whole frame is always allowed). */
    max_pending_bytes: byteSize().default(2 * 1024 * 1024),
    /** From accept to the MTA's option negotiation (Postfix sends it at once; milter_connect_timeout is 30s). */
    handshake_timeout: duration().default(30_000),
    /** Between two commands; longer than Postfix's smtpd_timeout (300s), which bounds a client's silence in an SMTP session. */
    idle_timeout: duration().default(600_000),
    /** In a transaction (after MAIL, RCPT or DATA) until the content starts: Postfix sends the content only once the client has sent all of it, which has no fixed bound. */
    data_idle_timeout: duration().default(3_600_000),
    /** V8's heap sizing: small keeps the least garbage between collections for some more CPU per message; large is V8's own sizing, for the most messages per second (docs/operations.md, "Memory"). */
    heap: z.enum(HEAP_PROFILE_NAMES).default(DEFAULT_HEAP_PROFILE),
    /** Body bytes kept in memory per message before spilling to a temporary file. */
    body_memory_bytes: byteSize().default(1024 * 1024),
    spool_dir: z.string().optional(),
    /** Header fields per message and total header bytes; beyond either the message is refused. */
    max_headers: z.number().int().positive().default(1000),
    max_header_bytes: byteSize().default(1024 * 1024),
    /** Per-phase deadlines; keep them under Postfix's milter_command_timeout (30s) and milter_content_timeout (300s). */
    deadlines: z
      .object({
        connect: duration().default(10_000),
        envelope: duration().default(20_000),
        content: duration().default(240_000),
      })
      .strict()
      .default({ connect: 10_000, envelope: 20_000, content: 240_000 }),
    /** While a phase is still working, send SMFIR_PROGRESS this often (end of message). */
    progress_interval: duration().default(10_000),
    /** Where SQLite state (offender ledger, quarantine index) lives. */
    state_dir: z.string().default('/var/lib/relayguard'),
    /** Shared state for several gateways, e.g. redis://127.0.0.1:6379/0; default: SQLite in state_dir. */
    state: z.string().optional(),
    metrics: z.string().default('127.0.0.1:9464'),
    /** Written by serve, read by `relayguard reload`. */
    pid_file: z.string().optional(),
  })
  .strict();

export const mtaSchema = z
  .object({
    kind: z.enum(['postfix', 'sendmail']).default('postfix'),
    /** Postfix: the configuration directory (postconf -c); MAIL_CONFIG in the environment overrides it. */
    config_directory: z.string().default('/etc/postfix'),
    /** Postfix's commands; override for a non-standard install. */
    postsuper: z.string().default('postsuper'),
    postqueue: z.string().default('postqueue'),
    postcat: z.string().default('postcat'),
    postconf: z.string().default('postconf'),
    /** Sendmail: the command, and the sendmail.cf of the instance relayguard protects (quarantine, lint). */
    sendmail: z.string().default('/usr/sbin/sendmail'),
    sendmail_cf: z.string().default('/etc/mail/sendmail.cf'),
  })
  .strict();

export const networksSchema = z
  .object({
    /** Clients in these ranges are internal: their mail is outbound and they may relay. */
    internal: cidrList().default(['127.0.0.0/8', '::1/128']),
    /** Named groups other rules can refer to, e.g. partner: [198.51.100.0/24]. */
    groups: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/), cidrList()).default({}),
  })
  .strict();

export const dnsSchema = z
  .object({
    /** Resolvers for blocklist queries, "host" or "host:port". Empty: the system's resolvers. */
    servers: z.array(z.string().min(1)).default([]),
    /** Per-query timeout. */
    timeout: duration().default(1500),
    /** Total time all lists of one phase may take together. */
    budget: duration().default(3000),
  })
  .strict();

export const loggingSchema = z
  .object({
    level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    /** auto: text (Postfix-style lines) on a terminal and under systemd's journal, JSON lines otherwise. */
    format: z.enum(['auto', 'json', 'text']).default('auto'),
  })
  .strict();

export type ServerSettings = z.infer<typeof serverSchema>;
export type MtaSettings = z.infer<typeof mtaSchema>;
export type NetworkSettings = z.infer<typeof networksSchema>;
export type DnsSettings = z.infer<typeof dnsSchema>;
export type LoggingSettings = z.infer<typeof loggingSchema>;

/** Everything but the rules: what rules may read through RuleEnv.policy. */
export interface PolicySettings {
  server: ServerSettings;
  mta: MtaSettings;
  networks: NetworkSettings;
  dns: DnsSettings;
  logging: LoggingSettings;
  local_domains: string[];
}
