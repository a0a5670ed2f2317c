// Proves the pipeline end to end: adds a header that records relayguard's decision on every
// message it lets through (direction, the connection reference, the rules that ran). Copies of
// the header that arrived with the message are deleted first, so a sender cannot forge one.
import { z } from 'zod';
import { modify } from '../policy/types.js';
import { modeField, replaceHeaderMods, traceFields } from './common.js';
import { defineRule } from '../policy/rule-env.js';

export const traceHeaderRule = defineRule({
  name: 'trace_header',
  summary: 'Adds an X-Relayguard header with the direction and connection reference to every delivered message.',
  schema: z
    .object({
      mode: modeField(),
      header: z
        .string()
        .regex(/^[!-9;-~]+$/, 'not a header field name')
        .default('X-Relayguard'),
      /** Include the gateway's host name (the j macro) in the value. */
      include_host: z.boolean().default(true),
      /**
       * Delete copies of the header that came with the message. Off only when an earlier
       * relayguard (another hop of yours) writes the same header name and its line must stay.
       */
      remove_incoming: z.boolean().default(true),
    })
    .strict(),
  mta: {
    init: () => [
      '  trace_header:',
      '    # enforce: every delivered message carries X-Relayguard: direction=...',
      '    mode: monitor',
      '    header: X-Relayguard',
    ],
  },
  create(config) {
    return {
      name: 'trace_header',
      mode: config.mode,
      // Reads the connection, the envelope and the queue id, and the headers only to find
      // incoming copies of its own: no HELO, no body.
      needs: config.remove_incoming
        ? { actions: ['addHeader', 'changeHeader'], macros: { connect: ['j'] }, events: ['headers'] }
        : { actions: ['addHeader'], macros: { connect: ['j'] }, events: [] },
      handlers: {
        async eom({ conn, msg }) {
          const parts = [`direction=${msg.direction}`, `conn=${conn.id}`];
          if (msg.queueId) parts.push(`queue-id=${msg.queueId}`);
          const host = config.include_host ? conn.macros.get('j') : undefined;
          if (host) parts.push(`host=${host}`);
          // Facts other rules recorded for a downstream filter (origin=..., origin-score=...).
          parts.push(...traceFields(conn.state));
          const value = parts.join('; ');
          return modify(
            config.remove_incoming
              ? replaceHeaderMods(msg.headers, config.header, value)
              : [{ type: 'addHeader', name: config.header, value }],
          );
        },
      },
    };
  },
});
