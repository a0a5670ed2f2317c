// What the policy decided: per phase (the engine's merged result of the rules, PhaseResult) and
// per message or refused command (the outcome the session acts on, with the decision record that
// goes to the log, the metrics and the quarantine index).
import type { SmtpReply } from '../protocol/smtp-reply.js';
import type {
  ActionKind,
  Cause,
  ConnectionContext,
  MessageContext,
  Modification,
  Phase,
  SmtpOverride,
  TraceEntry,
} from './types.js';

export interface PhaseResult {
  action: ActionKind;
  reason?: string;
  cause?: Cause;
  smtp?: SmtpOverride;
  /** The rule whose verdict decided the phase. */
  rule?: string;
  mods: Modification[];
  trace: TraceEntry[];
}

export interface Outcome {
  action: ActionKind;
  reply?: SmtpReply;
  reason?: string;
  rule?: string;
  /** Modifications to apply (end of message only). */
  mods: Modification[];
  /** Set when the message must go to the hold queue (end of message). */
  quarantine?: string;
  ref?: string;
}

export interface Decision {
  conn: ConnectionContext;
  msg?: MessageContext;
  phase: Phase;
  outcome: Outcome;
  trace: TraceEntry[];
}
