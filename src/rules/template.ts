// Template for a new rule. Copy this file to src/rules/<name>.ts, rename, and register the
// definition in src/rules/index.ts. It is not registered itself: it documents the shape.
//
// A rule is a set of async phase handlers that return typed verdicts:
//   pass()                              no objection
//   reject(reason, {code, enhanced})    policy refusal -> 5xx (per recipient at envrcpt)
//   tempfail(reason, 'dependency')      a dependency failed -> 4xx, the sender retries
//   quarantine(reason)                  hold the message (Postfix hold queue) at end of message
//   modify([...])                       header or body changes, end of message only
// Every handler gets the phase deadline as input.signal: pass it to every I/O; never add a
// timeout of your own deep inside a helper. In `monitor` mode the engine records the verdict
// and changes nothing, so rules never check their own mode.
//
// Besides its handlers a rule may declare an `mta` part (the main.cf/sendmail.mc settings it
// requires, its lint checks, its block in `relayguard init`) and an `audit` part (its probes in
// `relayguard audit`); see src/policy/rule-parts.ts and src/rules/size/ for an example. Test it
// with test/support/rule-kit.ts. docs/design.md ("Adding a rule") lists every file a new rule
// touches.
import { z } from 'zod';
import { pass, reject } from '../policy/types.js';
import { modeField } from './common.js';
import { defineRule } from '../policy/rule-env.js';

export const exampleRule = defineRule({
  name: 'example',
  summary: 'Refuses mail whose HELO name is on a configured list (an illustration).',
  schema: z
    .object({
      mode: modeField(),
      helo_names: z.array(z.string().min(1)).default([]),
    })
    .strict(),
  create(config) {
    const names = new Set(config.helo_names.map((n) => n.toLowerCase()));
    return {
      name: 'example',
      mode: config.mode,
      // What the session must negotiate for this rule: actions and macros per stage.
      needs: { actions: ['addHeader'], macros: { helo: ['{tls_version}'] } },
      handlers: {
        // HELO is known from the helo phase on; refuse at MAIL so an authenticated client,
        // whose login is only known at MAIL, could be exempted.
        async envfrom({ conn }) {
          const helo = conn.helo?.toLowerCase();
          if (helo && names.has(helo) && !conn.authUser)
            return reject(`HELO ${helo} refused`, { code: 550, enhanced: '5.7.1' }, { helo });
          return pass();
        },
      },
    };
  },
});
