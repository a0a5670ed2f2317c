// The engine runs the rules of one phase in parallel under the phase deadline, applies their
// modes (monitor: record, change nothing), merges the verdicts and records the decision trace.
import type { PhaseResult } from '../policy/decision.js';
import type { PhaseRunner } from '../policy/running-policy.js';
import type {
  ActionKind,
  ConnectionContext,
  MessageContext,
  Phase,
  PhaseInput,
  PhaseInputs,
  Rule,
  TraceEntry,
  Verdict,
} from '../policy/types.js';

/** Strongest first: a 5xx beats a 4xx beats a silent drop beats a hold beats "no objection". */
const PRECEDENCE: readonly ActionKind[] = ['reject', 'tempfail', 'discard', 'quarantine', 'continue'];
const rank = (a: ActionKind) => PRECEDENCE.indexOf(a);

export interface EngineHooks {
  /** Called for every rule verdict (metrics). */
  onVerdict?(entry: TraceEntry): void;
}

export class PolicyEngine implements PhaseRunner {
  private readonly byPhase = new Map<Phase, Rule[]>();

  constructor(
    readonly rules: readonly Rule[],
    private readonly hooks: EngineHooks = {},
  ) {
    for (const rule of rules) {
      if (rule.mode === 'off') continue;
      for (const phase of Object.keys(rule.handlers) as Phase[]) {
        const list = this.byPhase.get(phase) ?? [];
        list.push(rule);
        this.byPhase.set(phase, list);
      }
    }
  }

  /** Does any active rule handle this phase? The session uses it to negotiate events. */
  handles(phase: Phase): boolean {
    return (this.byPhase.get(phase)?.length ?? 0) > 0;
  }

  activeRules(): Rule[] {
    return this.rules.filter((r) => r.mode !== 'off');
  }

  async run<P extends Phase>(phase: P, input: PhaseInputs[P]): Promise<PhaseResult> {
    const rules = this.byPhase.get(phase) ?? [];
    if (rules.length === 0) return { action: 'continue', mods: [], trace: [] };
    const deadline = new PhaseDeadline(input.signal);
    try {
      const entries = await Promise.all(rules.map((rule) => this.runRule(rule, phase, input, deadline)));
      const result = this.merge(entries, input, phase);
      if (phase === 'eom') await this.finish(result, input as PhaseInputs['eom'], deadline);
      return result;
    } finally {
      deadline.dispose();
    }
  }

  /**
   * Signatures over the message as it will be delivered (an ARC seal, a DKIM signature) can
   * only be made once every rule's changes are known: rules with a `finish` step get the merged
   * modifications of an accepted message, in rule order, and add their own. A failing step is
   * logged and adds nothing: a missing seal is not worth a bounce.
   */
  private async finish(result: PhaseResult, input: PhaseInputs['eom'], deadline: PhaseDeadline): Promise<void> {
    if (result.action !== 'continue' && result.action !== 'quarantine') return;
    for (const rule of this.byPhase.get('eom') ?? []) {
      if (!rule.finish || rule.mode !== 'enforce') continue;
      try {
        const added = await deadline.race(rule.finish(input, result.mods), rule.name);
        result.mods.push(...added.mods);
        if (added.details) {
          const entry = result.trace.find((t) => t.rule === rule.name);
          if (entry) entry.details = { ...entry.details, ...added.details };
        }
      } catch (err) {
        input.conn.log.error(`rule ${rule.name} could not finish the message: ${(err as Error).message}`, {
          rule: rule.name,
          phase: 'eom',
        });
      }
    }
  }

  private async runRule<P extends Phase>(
    rule: Rule,
    phase: P,
    input: PhaseInputs[P],
    deadline: PhaseDeadline,
  ): Promise<{ rule: Rule; verdict: Verdict; ms: number }> {
    const started = performance.now();
    const handler = rule.handlers[phase]!;
    let verdict: Verdict;
    try {
      verdict = await deadline.race(handler(input), rule.name);
    } catch (err) {
      const timedOut = input.signal.aborted;
      input.conn.log.error(`rule ${rule.name} failed in ${phase}: ${(err as Error).message}`, {
        rule: rule.name,
        phase,
      });
      verdict = {
        action: 'tempfail',
        cause: timedOut ? 'dependency' : 'internal',
        reason: timedOut ? `${rule.name}: deadline exceeded` : `${rule.name}: internal error`,
      };
    }
    return { rule, verdict, ms: performance.now() - started };
  }

  private merge(
    entries: Array<{ rule: Rule; verdict: Verdict; ms: number }>,
    input: PhaseInput,
    phase: Phase,
  ): PhaseResult {
    const result: PhaseResult = { action: 'continue', mods: [], trace: [] };
    for (const { rule, verdict, ms } of entries) {
      const monitor = rule.mode === 'monitor';
      const entry: TraceEntry = {
        rule: rule.name,
        phase,
        action: verdict.action,
        ms: Math.round(ms * 10) / 10,
        ...(verdict.reason ? { reason: verdict.reason } : {}),
        ...(monitor ? { monitor: true } : {}),
        ...(verdict.details ? { details: verdict.details } : {}),
        ...(input.rcpt ? { recipient: input.rcpt.address.raw } : {}),
      };
      result.trace.push(entry);
      this.hooks.onVerdict?.(entry);
      if (monitor) {
        if (verdict.action !== 'continue' || verdict.mods?.length) {
          const would =
            verdict.action === 'continue'
              ? 'modify the message'
              : `${verdict.action}${verdict.mods?.length ? ' and modify' : ''}`;
          input.conn.log.info(`monitor: ${rule.name} would ${would}: ${verdict.reason ?? ''}`, {
            rule: rule.name,
            monitor: true,
            would: verdict.action,
            ...(verdict.details ? { details: verdict.details } : {}),
          });
        }
        // Nothing of a monitored rule's changes is applied: release what they hold now.
        for (const m of verdict.mods ?? []) if (m.type === 'replaceBody') m.body.dispose?.();
        continue;
      }
      if (verdict.mods) result.mods.push(...verdict.mods);
      if (rank(verdict.action) < rank(result.action)) {
        result.action = verdict.action;
        result.rule = rule.name;
        if (verdict.reason !== undefined) result.reason = verdict.reason;
        else delete result.reason;
        if (verdict.cause !== undefined) result.cause = verdict.cause;
        if (verdict.smtp !== undefined) result.smtp = verdict.smtp;
        else delete result.smtp;
      }
    }
    // A refusal throws the modifications away; a hold keeps them (Postfix applies them).
    if (result.action === 'reject' || result.action === 'tempfail' || result.action === 'discard') result.mods = [];
    return result;
  }

  async notify(event: Parameters<NonNullable<Rule['onOutcome']>>[0]): Promise<void> {
    for (const rule of this.activeRules()) {
      if (!rule.onOutcome) continue;
      try {
        await rule.onOutcome(event);
      } catch (err) {
        event.conn.log.warn(`rule ${rule.name} outcome hook failed: ${(err as Error).message}`);
      }
    }
  }

  /** Tells every active rule that the message is over (see Rule.onMessageEnd). */
  messageEnded(conn: ConnectionContext, msg: MessageContext): void {
    for (const rule of this.activeRules()) {
      if (!rule.onMessageEnd) continue;
      try {
        rule.onMessageEnd(conn, msg);
      } catch (err) {
        conn.log.warn(`rule ${rule.name} message-end hook failed: ${(err as Error).message}`);
      }
    }
  }

  async close(): Promise<void> {
    // async: a close() that throws synchronously must not keep the other rules from closing.
    await Promise.allSettled(this.rules.map(async (r) => r.close?.()));
  }
}

/**
 * A rule that ignores its AbortSignal must not hold the phase past the deadline. One abort
 * listener per phase serves all its rules (listeners on an AbortSignal are not cheap, and a
 * phase runs several rules per command).
 */
class PhaseDeadline {
  private readonly waiting = new Set<(err: Error) => void>();
  private readonly onAbort = () => {
    for (const fail of this.waiting) fail(new Error('deadline exceeded'));
    this.waiting.clear();
  };

  constructor(private readonly signal: AbortSignal) {
    if (!signal.aborted) signal.addEventListener('abort', this.onAbort, { once: true });
  }

  race<T>(work: Promise<T>, name: string): Promise<T> {
    if (this.signal.aborted) return Promise.reject(new Error(`${name}: deadline already passed`));
    return new Promise<T>((resolve, reject) => {
      const fail = (err: Error) => reject(new Error(`${name}: ${err.message}`));
      this.waiting.add(fail);
      work.then(
        (v) => {
          this.waiting.delete(fail);
          resolve(v);
        },
        (e: unknown) => {
          this.waiting.delete(fail);
          reject(e);
        },
      );
    });
  }

  dispose(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.waiting.clear();
  }
}
