// The audit's probe of relayguard itself: does its milter address negotiate? (The probes of the
// services a rule uses, such as clamd or a DNS list, are the rule's: see its audit part.)
import type { PolicyConfig } from '../rules/policy-schema.js';
import { mtaRequirements } from '../mta/requirements.js';
import type { ProbeOutcome } from '../policy/rule-parts.js';
import { milterOptneg } from './milter-probe.js';

export type { ProbeOutcome };
export type ProbeFn = () => Promise<ProbeOutcome>;

/** Extra time the audit gives the gateway beyond relayguard's own deadlines. */
export const REPLY_MARGIN_MS = 10_000;

/** relayguard's own milter address accepts a connection and negotiates like a milter. */
export function milterProbe(config: PolicyConfig, signal?: AbortSignal): ProbeFn {
  return async () => {
    const req = mtaRequirements(config);
    const where = req.milter.kind === 'unix' ? `unix:${req.milter.path}` : `${req.milter.host}:${req.milter.port}`;
    const a = await milterOptneg(req.milter, config.server.deadlines.connect + REPLY_MARGIN_MS, signal);
    return {
      ok: true,
      detail: `relayguard at ${where} answered OPTNEG in ${a.ms}ms: version ${a.version}, actions 0x${a.actions.toString(16)}, protocol 0x${a.protocol.toString(16)}`,
    };
  };
}
