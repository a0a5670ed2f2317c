// Picks the MTA adapter (deps/mta.ts) the policy's `mta` section names.
import type { Mta } from './mta.js';
import { PostfixMta } from './mta-postfix.js';
import { SendmailMta } from './mta-sendmail.js';

/** The policy's `mta` section, as far as the adapter needs it (field names as in the policy). */
export interface MtaSettings {
  kind: 'postfix' | 'sendmail';
  postqueue: string;
  postsuper: string;
  postcat: string;
  postconf: string;
  sendmail: string;
  sendmail_cf: string;
}

export interface MtaOptions {
  /** Postfix's configuration directory (postconf -c), already with MAIL_CONFIG applied. */
  configDir: string;
  /** Deadline for each run of an MTA tool. */
  timeoutMs?: number;
}

/** The adapter for the MTA the policy names. */
export function openMta(settings: MtaSettings, opts: MtaOptions): Mta {
  const timeoutMs = opts.timeoutMs;
  if (settings.kind === 'sendmail')
    return new SendmailMta({
      sendmail: settings.sendmail,
      cf: settings.sendmail_cf,
      ...(timeoutMs ? { timeoutMs } : {}),
    });
  return new PostfixMta({
    postqueue: settings.postqueue,
    postsuper: settings.postsuper,
    postcat: settings.postcat,
    postconf: settings.postconf,
    configDir: opts.configDir,
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}
