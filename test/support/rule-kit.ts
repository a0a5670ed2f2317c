// The rule test kit: build a policy, a connection and a message, run phases through the real
// engine (or a whole SMTP transaction through the real Conversation), read the verdicts, the
// modifications and the trace. Everything here is a real object of the contract types (no
// casts), so a test breaks when the contract changes, not when a fake drifts from it.
import { Readable } from 'node:stream';
import { after } from 'node:test';
import type { Logger } from 'winston';
import type { PolicySettings } from '../../src/config/settings.js';
import { policySchema, type PolicyConfig } from '../../src/rules/policy-schema.js';
import { silentLogger } from '../../src/ops/logging.js';
import { parseEnvelopeAddress } from '../../src/primitives/address.js';
import { CompiledPolicy } from '../../src/rules/compiled-policy.js';
import { PolicyEngine } from '../../src/engine/engine.js';
import type { Outcome, PhaseResult } from '../../src/policy/decision.js';
import type {
  ConnectionContext,
  Direction,
  MessageContext,
  Phase,
  PhaseInput,
  Recipient,
  Rule,
} from '../../src/policy/types.js';
import type { RuleEnv } from '../../src/policy/rule-env.js';
import { Conversation } from '../../src/session/conversation.js';
import { splitMessage } from '../../src/session/offline-message.js';

/** The policy around the rule under test, unless a test says otherwise (the reference gateway's). */
export const KIT_POLICY = {
  local_domains: ['example.test'],
  networks: { internal: ['127.0.0.0/8', '10.0.0.0/8'], groups: { partner: ['198.51.100.0/24'] } },
} as const;

/** A parsed policy: KIT_POLICY, then `over` (top-level keys replace), with `rules`. */
export function kitConfig(rules: Record<string, unknown>, over: Record<string, unknown> = {}): PolicyConfig {
  return policySchema.parse({ ...KIT_POLICY, ...over, rules });
}

/** The policy as `relayguard serve` compiles it (every rule created, the engine ready). */
export function kitPolicy(
  rules: Record<string, unknown>,
  over: Record<string, unknown> = {},
  { log, ...options }: NonNullable<ConstructorParameters<typeof CompiledPolicy>[3]> & { log?: Logger } = {},
): CompiledPolicy {
  return new CompiledPolicy(kitConfig(rules, over), 'test.yaml', log ?? silentLogger(), options);
}

/** What a rule factory gets: real settings, a silent logger, services made once per key. */
export function kitEnv(
  over: { settings?: PolicySettings; policy?: Record<string, unknown>; offline?: boolean; log?: Logger } = {},
): RuleEnv {
  const settings = over.settings ?? kitConfig({}, over.policy);
  const services = new Map<string, unknown>();
  return {
    policy: settings,
    log: over.log ?? silentLogger(),
    offline: over.offline ?? false,
    shared<T>(key: string, make: () => T): T {
      if (!services.has(key)) services.set(key, make());
      return services.get(key) as T;
    },
  };
}

export interface KitConnectionOptions {
  /** The connection reference (kit-1). */
  id?: string;
  ip?: string | null;
  hostname?: string;
  helo?: string;
  internal?: boolean;
  groups?: string[];
  authUser?: string;
  macros?: Record<string, string>;
  log?: Logger;
}

/** A connection context as the session builds it (the client outside unless `internal`). */
export function kitConnection(o: KitConnectionOptions = {}): ConnectionContext {
  const ip = o.ip === undefined ? '203.0.113.9' : o.ip;
  const macros = o.macros ?? {};
  return {
    id: o.id ?? 'kit-1',
    client: {
      ip,
      hostname: o.hostname ?? 'client.test',
      port: 40000,
      family: ip === null ? 'unknown' : ip.includes(':') ? 'inet6' : 'inet',
    },
    ...(o.helo ? { helo: o.helo } : {}),
    ...(o.authUser ? { authUser: o.authUser } : {}),
    macros: { get: (name) => macros[name] ?? macros[`{${name}}`] },
    internalNetwork: o.internal ?? false,
    networkGroups: o.groups ?? [],
    state: new Map(),
    log: o.log ?? silentLogger(),
  };
}

export interface KitMessageOptions {
  direction?: Direction;
  /** Envelope sender (MAIL FROM), without brackets. */
  from?: string;
  /** Envelope recipients. */
  to?: Array<string | Recipient>;
  queueId?: string;
  /** message() hands out the bytes in pieces of this size (the MTA's chunks end anywhere). */
  chunkSize?: number;
  /** The header block and the body are not kept in memory (a spilled body): no inMemory(). */
  spilled?: boolean;
  /**
   * message() gives the bytes exactly as passed instead of the reconstructed header block plus
   * the body (for malformed header blocks a test feeds as they are).
   */
  verbatim?: boolean;
  log?: Logger;
}

function pieces(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out.length ? out : [Buffer.alloc(0)];
}

/**
 * A message context over raw message bytes (CRLF line ends), as the session builds it at end
 * of message: headers parsed, the header block reconstructed, the body readable.
 */
export function kitMessage(raw: Buffer | string, o: KitMessageOptions = {}): MessageContext {
  const bytes = typeof raw === 'string' ? Buffer.from(raw.replace(/\r?\n/g, '\r\n'), 'utf8') : raw;
  const { headers, body } = splitMessage(bytes);
  const headerBlock = Buffer.from(
    headers.map((h) => `${h.name}:${h.value.replace(/\n/g, '\r\n')}\r\n`).join('') + '\r\n',
    'latin1',
  );
  const chunk = o.chunkSize ?? 65_535;
  return {
    ...(o.queueId ? { queueId: o.queueId } : {}),
    ...(o.from !== undefined ? { sender: parseEnvelopeAddress(o.from) } : {}),
    senderArgs: [],
    senderParams: {},
    recipients: (o.to ?? []).map((r) => (typeof r === 'string' ? { address: parseEnvelopeAddress(r), args: [] } : r)),
    headers: headers.map((h) => ({ name: h.name, value: h.value.startsWith(' ') ? h.value.slice(1) : h.value })),
    direction: o.direction ?? 'inbound',
    state: new Map(),
    log: o.log ?? silentLogger(),
    source: {
      bodySize: body.length,
      body: () => Readable.from(pieces(body, chunk)),
      message: () => Readable.from(pieces(o.verbatim ? bytes : Buffer.concat([headerBlock, body]), chunk)),
      headerBlock: () => headerBlock,
      ...(o.spilled ? {} : { inMemory: () => ({ header: headerBlock, body: [body] }) }),
    },
  };
}

/** The input of one phase (the deadline 30 s unless given). */
export function kitInput(
  conn: ConnectionContext,
  msg: MessageContext,
  extra?: Partial<Omit<PhaseInput, 'conn' | 'msg'>>,
): PhaseInput & { msg: MessageContext };
export function kitInput(
  conn: ConnectionContext,
  msg?: MessageContext,
  extra?: Partial<Omit<PhaseInput, 'conn' | 'msg'>>,
): PhaseInput;
export function kitInput(
  conn: ConnectionContext,
  msg?: MessageContext,
  extra: Partial<Omit<PhaseInput, 'conn' | 'msg'>> = {},
): PhaseInput {
  return { conn, ...(msg ? { msg } : {}), signal: AbortSignal.timeout(30_000), ...extra };
}

/** Runs `phase` of `rules` through the real engine: modes applied, verdicts merged, the trace kept. */
export function runPhase(rules: Rule | readonly Rule[], phase: Phase, input: PhaseInput): Promise<PhaseResult> {
  return new PolicyEngine(Array.isArray(rules) ? rules : [rules as Rule]).run(phase, input);
}

export interface KitClientOptions {
  /** The client's address (outside by default). */
  ip?: string;
  hostname?: string;
  /** HELO name; null: no HELO. */
  helo?: string | null;
  /** SASL login, sent as {auth_authen} with MAIL. */
  auth?: string;
  /** Macros the MTA sends with HELO (the TLS ones after STARTTLS). */
  heloMacros?: Array<[string, string]>;
}

/** The kit's conversations, closed as the MTA closes a session when the test file is done (their
 *  deadlines, their bodies and spill files), unless a test closed them itself. */
const openConversations = new Set<Conversation>();
after(async () => {
  for (const c of openConversations) await c.close();
  openConversations.clear();
});

/**
 * One SMTP client through the real Conversation (the session's protocol-free core): the
 * connect outcome, and the conversation to go on with (helo done unless `helo: null`).
 */
export async function kitClient(
  policy: CompiledPolicy,
  o: KitClientOptions = {},
): Promise<{ c: Conversation; connect: Outcome }> {
  const ip = o.ip ?? '203.0.113.9';
  const c = new Conversation({ policy, log: silentLogger() });
  openConversations.add(c);
  const connect = await c.connect({
    hostname: o.hostname ?? 'client.test',
    family: ip.includes(':') ? 'inet6' : 'inet',
    port: 40000,
    address: ip,
  });
  if (o.heloMacros) c.macros.set('H', o.heloMacros);
  if (o.helo !== null) await c.helo(o.helo ?? 'client.test');
  if (o.auth) c.macros.set('M', [['{auth_authen}', o.auth]]);
  return { c, connect };
}

/** kitClient, then MAIL FROM:<from> with `args`: the MAIL outcome. */
export async function kitMail(
  policy: CompiledPolicy,
  from: string,
  o: KitClientOptions & { args?: string[] } = {},
): Promise<{ c: Conversation; connect: Outcome; mail: Outcome }> {
  const { c, connect } = await kitClient(policy, o);
  const mail = await c.mail([from, ...(o.args ?? [])]);
  return { c, connect, mail };
}
