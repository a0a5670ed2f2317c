// A loaded policy as the session runs it. The engine compiles one (engine/compile.ts) and sits
// above the session, so the session knows it only through this interface.
import type { Logger } from 'winston';
import type { PolicySettings } from '../config/settings.js';
import type { PhaseResult } from './decision.js';
import type { ConnectionContext, MessageContext, OutcomeEvent, Phase, PhaseInputs, Rule } from './types.js';

/** Runs the rules of a phase and tells them about outcomes (engine/engine.ts: PolicyEngine). */
export interface PhaseRunner {
  /** Does any active rule handle this phase? The session uses it to negotiate events. */
  handles(phase: Phase): boolean;
  activeRules(): Rule[];
  run<P extends Phase>(phase: P, input: PhaseInputs[P]): Promise<PhaseResult>;
  notify(event: OutcomeEvent): Promise<void>;
  messageEnded(conn: ConnectionContext, msg: MessageContext): void;
}

export interface RunningPolicy {
  readonly config: PolicySettings;
  readonly log: Logger;
  readonly engine: PhaseRunner;
  /** The policy's internal networks. */
  readonly internal: { contains(ip: string | null): boolean };
  /** Named network groups the address is in. */
  groupsOf(ip: string | null): string[];
  close(): Promise<void>;
}
