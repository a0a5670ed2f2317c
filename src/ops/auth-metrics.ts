// Counters of the sender authentication check (rule `authentication`): one per method and
// result for each checked message, forged Authentication-Results headers removed, failed checks.
import client from './prom.js';
import { registry } from './metrics.js';

export const authResultsTotal = new client.Counter({
  name: 'relayguard_auth_results_total',
  help: 'Inbound messages checked, by method (dkim, spf, dmarc, arc) and result; dkim counts the best signature',
  labelNames: ['method', 'result'] as const,
  registers: [registry],
});

export const authForgedHeadersTotal = new client.Counter({
  name: 'relayguard_auth_forged_headers_removed_total',
  help: 'Incoming Authentication-Results headers that claimed our authserv-id and were removed',
  registers: [registry],
});

export const authCheckErrorsTotal = new client.Counter({
  name: 'relayguard_auth_check_errors_total',
  help: 'Messages whose authentication check failed (deadline, internal error); they got no Authentication-Results',
  registers: [registry],
});

export const arcSealsTotal = new client.Counter({
  name: 'relayguard_arc_seals_total',
  help: 'Inbound messages relayguard changed and ARC-sealed',
  registers: [registry],
});

export const dkimSignaturesTotal = new client.Counter({
  name: 'relayguard_dkim_signatures_total',
  help: 'DKIM signatures relayguard added to outbound mail, by algorithm',
  labelNames: ['algorithm'] as const,
  registers: [registry],
});
