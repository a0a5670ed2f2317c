// `serve` with the shipped default policy (no --config): the rules that need site data say, one
// log line each, what they do without it. The antivirus rule stays in monitor mode only when a
// clamd answers at its address; otherwise it is turned off (a monitor rule whose every scan
// fails would only log failures).
import type { Logger } from 'winston';
import type { PolicyConfig } from '../rules/policy-schema.js';
import { ClamdClient } from '../deps/clamd.js';

/** How long the start-up PING of clamd may take. */
const CLAMD_PROBE_MS = 1_000;

export async function fitDefaultPolicy(
  config: PolicyConfig,
  log: Logger,
  ping: (address: string) => Promise<boolean> = pingClamd,
): Promise<void> {
  const rules = config.rules as Record<string, { mode?: string; clamd?: { address: string } } | undefined>;
  const av = rules.antivirus;
  if (av?.clamd && av.mode !== 'off') {
    let why = 'no PONG';
    const ok = await ping(av.clamd.address).catch((err: Error) => ((why = err.message), false));
    if (ok)
      log.info(
        `default policy: antivirus in ${av.mode} mode with clamd at ${av.clamd.address}: it logs what it would refuse; enforce it in your own policy`,
      );
    else {
      delete rules.antivirus;
      log.info(
        `default policy: antivirus off: no clamd answers at ${av.clamd.address} (${why}); install clamd (Debian: clamav-daemon) or name yours in your own policy`,
      );
    }
  }
  if (!rules.blocklists)
    log.info(
      'default policy: blocklists off: DNS lists need lists you may query and a resolver they answer (docs/rules/blocklists.md)',
    );
  if (!config.local_domains.length)
    log.info(
      'default policy: no local_domains: the relay rule refuses every recipient of an outside client; name your domains in your own policy (relayguard init)',
    );
}

async function pingClamd(address: string): Promise<boolean> {
  return new ClamdClient({ address, timeoutMs: CLAMD_PROBE_MS }).ping(AbortSignal.timeout(CLAMD_PROBE_MS));
}
