// Counters of the MIME work: structures readers disagree on, and disclaimer rewrites that
// failed their check (the original was delivered).
import client from './prom.js';
import { registry } from './metrics.js';

export const mimeAmbiguousTotal = new client.Counter({
  name: 'relayguard_mime_ambiguous_total',
  help: 'Messages whose MIME structure readers could read differently (every reading was inspected, or the message refused), by kind',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const disclaimerVerifyFailedTotal = new client.Counter({
  name: 'relayguard_disclaimer_verify_failed_total',
  help: 'Messages whose rewritten version failed its check, so the original was delivered without the disclaimer',
  registers: [registry],
});
