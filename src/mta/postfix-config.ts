// `relayguard postfix-config`: the main.cf lines that go with a policy, each with the reason:
// no VRFY, relayguard wired in fail-closed, and what each rule's `mta` part requires. The same
// requirements drive `lint-mta`, so the output always passes the lint.
import type { MtaSetting } from '../policy/rule-parts.js';
import { paramValue, splitList } from './postconf.js';
import {
  postfixMilterAddress,
  suggestedCommandTimeoutMs,
  suggestedContentTimeoutMs,
  type MacroStage,
  type MtaRequirements,
} from './requirements.js';

/** The Postfix milter protocol that carries everything relayguard negotiates (SETSYMLIST). */
const MILTER_PROTOCOL = 6;

export const MACRO_PARAMETER: Record<MacroStage, string> = {
  connect: 'milter_connect_macros',
  helo: 'milter_helo_macros',
  envfrom: 'milter_mail_macros',
  envrcpt: 'milter_rcpt_macros',
  data: 'milter_data_macros',
  eoh: 'milter_end_of_header_macros',
  eom: 'milter_end_of_data_macros',
};

export type ConfigLine = MtaSetting;

function seconds(ms: number): string {
  return `${Math.ceil(ms / 1000)}s`;
}

export function postfixConfigLines(req: MtaRequirements): ConfigLine[] {
  const lines: ConfigLine[] = [];
  const add = (name: string, value: string, why: string, suggestion = false) =>
    lines.push({ name, value, why, ...(suggestion ? { suggestion } : {}) });

  // Nothing that tells outsiders which addresses exist.
  add(
    'disable_vrfy_command',
    'yes',
    'no VRFY: it would let anyone test which addresses exist (Postfix has no EXPN at all)',
  );

  // What the rules need of Postfix, in the registry's order.
  for (const { def, config } of req.rules) lines.push(...(def.mta?.postfix?.(config, req.ctx) ?? []));

  // The milter itself: first in line, fail closed, patient enough.
  const address = postfixMilterAddress(req.milter);
  add(
    'smtpd_milters',
    `{ ${address}, default_action=tempfail }`,
    'every rule: relayguard first (server.listen), before any DKIM signer, so what it adds gets signed; append other milters after it',
  );
  add(
    'non_smtpd_milters',
    '$smtpd_milters',
    'every rule: mail submitted with the sendmail command is checked the same way',
  );
  add(
    'milter_protocol',
    String(MILTER_PROTOCOL),
    'every rule: protocol 6 lets relayguard ask for exactly the macros and events it needs',
  );
  add(
    'milter_default_action',
    'tempfail',
    'every rule, fail closed: when a milter is down or times out the client is told to retry (4xx), nothing passes unchecked',
  );
  const commandMs = suggestedCommandTimeoutMs(req);
  const contentMs = suggestedContentTimeoutMs(req);
  add(
    'milter_command_timeout',
    seconds(commandMs),
    `every rule: longer than relayguard's connect/envelope deadline (${seconds(req.commandDeadlineMs)}), so its answer arrives`,
  );
  add(
    'milter_content_timeout',
    seconds(contentMs),
    `every rule: longer than relayguard's content deadline (${seconds(req.contentDeadlineMs)}), so its answer arrives`,
  );
  for (const [stage, param] of Object.entries(MACRO_PARAMETER) as Array<[MacroStage, string]>) {
    // Postfix's defaults are kept: other milters may rely on them.
    const merged = [...new Set([...splitList(paramValue(new Map(), param)), ...req.macros[stage]])];
    add(
      param,
      merged.join(' '),
      `every rule: macros relayguard reads at ${stage} (it also asks for them itself; listed for MTAs that ignore that)`,
    );
  }

  add(
    'smtpd_authorized_xclient_hosts',
    '127.0.0.1',
    'lets `relayguard audit` on this host act as an outside client (XCLIENT); loopback clients are internal anyway',
    true,
  );
  return lines;
}

export function formatConfigLines(lines: readonly ConfigLine[], header: readonly string[]): string {
  const out = header.map((h) => `# ${h}`);
  for (const l of lines) {
    out.push(`# ${l.why}`);
    out.push(`${l.suggestion ? '#' : ''}${l.name} = ${l.value}`);
  }
  return out.join('\n') + '\n';
}
