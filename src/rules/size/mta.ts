// Rule 3 on the MTA side: the MTA's own size limit must never be the stricter one, so that
// relayguard decides, with its enhanced code and reference; and never unlimited.
import type { LintFinding, RuleMtaPart } from '../../policy/rule-parts.js';
import { pickDirection } from '../common.js';
import { DEFAULT_MAX_BYTES, type SizeConfig } from './schema.js';

/** Postfix refuses to start when mailbox_size_limit is below message_size_limit. */
const POSTFIX_MAILBOX_SIZE_LIMIT = 51_200_000;
/**
 * Postfix counts the queue file (envelope records and its own Received: header included), so
 * its limit sits a little above relayguard's: relayguard decides, with the same 552 5.3.4.
 */
export const SIZE_HEADROOM_BYTES = 64 * 1024;

/** The largest limit of the rule (either direction); null without an active size rule. */
function largestLimit(config: SizeConfig | null): number | null {
  if (!config) return null;
  return Math.max(pickDirection(config.max_bytes, 'inbound'), pickDirection(config.max_bytes, 'outbound'));
}

/** The policy's limit plus the headroom for what the MTA counts too (null: no size rule: Postfix's default). */
function sizeWithHeadroom(policyLimit: number | null): number {
  return policyLimit === null ? DEFAULT_MAX_BYTES : policyLimit + SIZE_HEADROOM_BYTES;
}

/**
 * The Postfix message_size_limit that goes with a policy limit: never below Postfix's default
 * (10240000), so that every message between the policy's limit and that is refused by relayguard,
 * with its enhanced code and reference, and an admin's default is never lowered; above it, the
 * policy's limit plus headroom.
 */
export function postfixSizeLimit(policyLimit: number | null): number {
  return Math.max(DEFAULT_MAX_BYTES, sizeWithHeadroom(policyLimit));
}

export const sizeMta: RuleMtaPart<SizeConfig> = {
  init({ messageSizeLimit: size }) {
    if (Number.isFinite(size) && size > 0) {
      return [
        '  size:',
        `    # From message_size_limit (${size}). enforce: SIZE= or a message above it gets 552 5.3.4.`,
        '    mode: monitor',
        `    max_bytes: ${size}`,
      ];
    }
    return [
      '  size:',
      "    # message_size_limit is 0 (unlimited) or unreadable: Postfix's default 10240000 here. enforce: 552 5.3.4 above it.",
      '    mode: monitor',
      `    max_bytes: ${DEFAULT_MAX_BYTES}`,
    ];
  },
  postfix(config) {
    const limit = largestLimit(config);
    const sizeLimit = postfixSizeLimit(limit);
    const lines = [
      {
        name: 'message_size_limit',
        value: String(sizeLimit),
        why:
          limit === null
            ? "rule 3: the policy has no size rule, so Postfix's own limit (its default) is the only one; never 0 (unlimited)"
            : `rule 3: above the policy's largest limit (${limit} bytes; Postfix counts envelope records too, and its default is never lowered) so relayguard decides, with its reference`,
      },
    ];
    if (sizeLimit > POSTFIX_MAILBOX_SIZE_LIMIT)
      lines.push({
        name: 'mailbox_size_limit',
        value: String(sizeLimit),
        why: 'rule 3: Postfix will not start with mailbox_size_limit below message_size_limit',
      });
    return lines;
  },
  lintPostfix(config, view) {
    const limit = largestLimit(config);
    const text = view.value('message_size_limit').trim();
    const have = Number(text);
    const fix = `message_size_limit = ${postfixSizeLimit(limit)}`;
    const finding = (message: string): LintFinding[] => [
      { severity: 'error', parameter: 'message_size_limit', message, fix },
    ];
    if (text === '' || !Number.isFinite(have)) return finding(`message_size_limit "${text}" is not a number`);
    if (have === 0) return finding('message_size_limit = 0: Postfix accepts messages of any size');
    if (limit !== null && have < limit)
      return finding(
        `message_size_limit ${have} is below the policy's limit of ${limit} bytes: Postfix refuses mail the policy allows`,
      );
    return [];
  },
  sendmail(config) {
    const limit = largestLimit(config);
    return [
      {
        why:
          limit === null
            ? "rule 3: no size rule in the policy: a finite limit anyway (Postfix's default)"
            : `rule 3: a little above the policy's largest limit (${limit} bytes) so relayguard decides`,
        text: `define(\`confMAX_MESSAGE_SIZE', \`${sizeWithHeadroom(limit)}')dnl`,
      },
    ];
  },
};
