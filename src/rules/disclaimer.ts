// Rule 7: a legal disclaimer at the end of every delivered message (outbound), an external-sender
// notice on inbound mail. The MIME work (which parts, charsets, transfer encodings, signed mail,
// the checks after rewriting) is in src/mime/disclaimer.ts; this file picks the text, applies
// the cheap reasons not to rewrite (marker header, our own DKIM signature) and turns the result
// into modifications and a logged, traceable verdict.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { byteSize } from '../primitives/units.js';
import { domainMatches, normalizeDomain } from '../primitives/address.js';
import {
  modify,
  pass,
  type Direction,
  type Header,
  type MessageContext,
  type Modification,
  type Verdict,
} from '../policy/types.js';
import { addDisclaimer } from '../mime/disclaimer/index.js';
import { htmlFromText, normalizeDisclaimerText, type DisclaimerTexts } from '../mime/disclaimer/texts.js';
import { disclaimerVerifyFailedTotal } from '../ops/mime-metrics.js';
import { messageInput } from '../mime/parse/shared.js';
import { modeField } from './common.js';
import { inboundNoticeFields, planInboundNotice } from './inbound-notice.js';
import { defineRule } from '../policy/rule-env.js';

/** mailsplit's own default; more parts than this is a MIME bomb, not a letter. */
const DEFAULT_MAX_PARTS = 1000;
const DEFAULT_MAX_PART_SIZE = 2 * 1024 * 1024;
/** Far above any sane line (RFC 5322 says 998): a text part with a longer one is not rewritten. */
const DEFAULT_MAX_LINE_LENGTH = 1024 * 1024;
/** Hex digits of the text hash carried in the marker header. */
const MARKER_ID_LENGTH = 12;

const textBlock = z
  .object({
    /** Plain text; line breaks are kept. */
    text: z
      .string()
      .trim()
      .min(1)
      .max(16 * 1024),
    /** HTML fragment for text/html parts; default: the text, escaped. */
    html: z
      .string()
      .trim()
      .min(1)
      .max(64 * 1024)
      .optional(),
  })
  .strict();

/** The inbound notice: a text block plus how it is shown (see inbound-notice.ts). */
const inboundBlock = z.object({ ...textBlock.shape, ...inboundNoticeFields }).strict();

const domainKey = z.string().regex(/^[A-Za-z0-9.-]+$/, 'not a domain name');

export const disclaimerSchema = z
  .object({
    mode: modeField(),
    /** Mail from internal or authenticated clients. */
    outbound: textBlock.optional(),
    /** Mail from everyone else: the external-sender notice. */
    inbound: inboundBlock.optional(),
    /** Outbound mail whose envelope sender is in this domain (or a subdomain) gets this text instead. */
    per_domain: z.record(domainKey, textBlock).default({}),
    /** Added to every rewritten message; a message carrying it with the same text id is left alone. */
    marker_header: z
      .string()
      .regex(/^[!-9;-~]+$/, 'not a header field name')
      .default('X-Relayguard-Disclaimer'),
    /** Leave outbound mail alone that already carries a DKIM signature of one of our local_domains. */
    skip_if_dkim_signed: z.boolean().default(true),
    /** Largest text part (decoded) that is rewritten; a larger one means no disclaimer. */
    max_part_size: byteSize().default(DEFAULT_MAX_PART_SIZE),
    /** A message with a longer line is not parsed at all (and gets no disclaimer). */
    max_line_length: byteSize().default(DEFAULT_MAX_LINE_LENGTH),
    /** A message with more MIME parts is not rewritten. */
    max_parts: z.number().int().positive().max(100_000).default(DEFAULT_MAX_PARTS),
  })
  .strict()
  .refine((c) => c.outbound || c.inbound || Object.keys(c.per_domain).length > 0, {
    message: 'give at least one of outbound, inbound or per_domain',
  });

export type DisclaimerConfig = z.infer<typeof disclaimerSchema>;

interface Prepared extends DisclaimerTexts {
  /** Which configured text: "outbound", "inbound" or "domain:<name>". */
  label: string;
  /** Short hash of the text, carried in the marker header. */
  id: string;
}

function prepare(label: string, block: { text: string; html?: string | undefined }): Prepared {
  const text = normalizeDisclaimerText(block.text);
  const html = block.html ? block.html.replace(/\r\n?|\n/g, '\r\n') : htmlFromText(text);
  const id = createHash('sha256').update(text).update('\0').update(html).digest('hex').slice(0, MARKER_ID_LENGTH);
  return { label, text, html, id };
}

/** The text for this message, or null when its direction has none. */
function chooseText(
  texts: { outbound?: Prepared; inbound?: Prepared; domains: Array<[string, Prepared]> },
  direction: Direction,
  senderDomain: string,
): Prepared | null {
  if (direction === 'inbound') return texts.inbound ?? null;
  if (senderDomain) {
    // Most specific domain first (the list is sorted longest first).
    const hit = texts.domains.find(([d]) => domainMatches(senderDomain, d));
    if (hit) return hit[1];
  }
  return texts.outbound ?? null;
}

/** d= of every DKIM-Signature header. */
export function dkimDomains(headers: readonly Header[]): string[] {
  const out: string[] = [];
  for (const h of headers) {
    if (h.name.toLowerCase() !== 'dkim-signature') continue;
    const m = /(?:^|;)\s*d\s*=\s*([^;\s]+)/i.exec(h.value.replace(/\s+/g, ' '));
    if (m) out.push(normalizeDomain(m[1]!));
  }
  return out;
}

function markerPresent(headers: readonly Header[], name: string, id: string): boolean {
  const lower = name.toLowerCase();
  return headers.some((h) => h.name.toLowerCase() === lower && new RegExp(`\\bid=${id}\\b`).test(h.value));
}

export const disclaimerRule = defineRule({
  name: 'disclaimer',
  summary: 'Appends the legal disclaimer (outbound) or the external-sender notice (inbound) to the text a reader sees.',
  schema: disclaimerSchema,
  mta: {
    init: () => [
      '  # A disclaimer needs your text (docs/rules/disclaimer.md). Example:',
      '  # disclaimer:',
      '  #   mode: monitor',
      '  #   outbound:',
      '  #     text: "This email is confidential."',
    ],
  },
  create(config, env) {
    const texts = {
      ...(config.outbound ? { outbound: prepare('outbound', config.outbound) } : {}),
      ...(config.inbound ? { inbound: prepare('inbound', config.inbound) } : {}),
      domains: Object.entries(config.per_domain)
        .map(([d, block]): [string, Prepared] => [normalizeDomain(d), prepare(`domain:${normalizeDomain(d)}`, block)])
        .sort((a, b) => b[0].length - a[0].length),
    };

    const skipped = (msg: MessageContext, reason: string, details: Record<string, unknown>): Verdict => {
      msg.log.info(`disclaimer skipped: ${reason}`, { rule: 'disclaimer', ...details });
      return pass({ skipped: reason, ...details });
    };

    return {
      name: 'disclaimer',
      mode: config.mode,
      needs: { actions: ['replaceBody', 'changeHeader', 'addHeader'] },
      handlers: {
        async eom({ msg: m, signal }) {
          const chosen = chooseText(texts, m.direction, m.sender?.domain ?? '');
          if (!chosen) return pass();
          const base = { disclaimer: chosen.label };
          // Our marker is trusted on outbound mail only: outside senders could forge it to hide
          // the external-sender notice. The text search below catches real copies either way.
          if (m.direction === 'outbound' && markerPresent(m.headers, config.marker_header, chosen.id)) {
            return skipped(m, `already carries ${config.marker_header}`, { ...base, code: 'already-present' });
          }
          // Outbound only: on inbound mail a forged signature must not hide the notice.
          if (config.skip_if_dkim_signed && m.direction === 'outbound') {
            const own = dkimDomains(m.headers).find((d) => env.policy.local_domains.some((l) => domainMatches(d, l)));
            if (own)
              return skipped(m, `already DKIM-signed by ${own} (relayguard must run before the signer)`, {
                ...base,
                code: 'dkim-signed',
                domain: own,
              });
          }

          // Inbound: the notice may go into the Subject or a banner header instead of the body.
          let notice: Record<string, unknown> = {};
          if (m.direction === 'inbound' && config.inbound) {
            const plan = await planInboundNotice(m, { ...config.inbound, text: chosen.text });
            if (plan.kind === 'skip') return skipped(m, plan.reason, { ...base, ...plan.details });
            if (plan.kind === 'headers') return modify(plan.mods, { ...base, ...plan.details });
            notice = plan.details;
          }

          let result: Awaited<ReturnType<typeof addDisclaimer>>;
          try {
            result = await addDisclaimer({
              texts: chosen,
              source: messageInput(m),
              headerBlock: m.source.headerBlock(),
              body: () => m.source.inMemory?.()?.body ?? m.source.body(),
              signal,
              maxPartBytes: config.max_part_size,
              maxLineLength: config.max_line_length,
              maxParts: config.max_parts,
            });
          } catch (err) {
            if (signal.aborted) throw err;
            // A disclaimer is not worth a bounce: deliver the message as it came.
            const error = (err as Error).message;
            m.log.error(`disclaimer NOT added, original delivered: ${error}`, { rule: 'disclaimer' });
            return pass({ ...base, code: 'error', error });
          }
          if (result.kind === 'unchanged') return pass({ ...base, unchanged: result.reason });
          if (result.kind === 'skipped') {
            if (result.code === 'invariants') {
              disclaimerVerifyFailedTotal.inc();
              m.log.error(`disclaimer NOT added, original delivered: ${result.reason}`, {
                rule: 'disclaimer',
                ...result.details,
              });
              return pass({ ...base, code: result.code, error: result.reason, ...result.details });
            }
            return skipped(m, result.reason, { ...base, code: result.code, ...result.details });
          }

          const mods: Modification[] = [
            ...result.headerMods,
            { type: 'addHeader', name: config.marker_header, value: `${m.direction}; id=${chosen.id}` },
            { type: 'replaceBody', body: result.body },
          ];
          const details: Record<string, unknown> = {
            ...base,
            ...notice,
            parts: result.parts,
            bytes: result.body.size,
            added: result.bytesAdded,
          };
          if (result.asciiForm.length) details.ascii_form = result.asciiForm;
          // The decision line's trace carries the same details; a second info line per message
          // would double the log volume of a busy gateway. In monitor mode the engine logs that the
          // rule would modify the message, with these details, and releases the new body.
          if (m.log.isLevelEnabled('debug'))
            m.log.debug(`disclaimer for part(s) ${result.parts.join(', ')}`, { rule: 'disclaimer', ...details });
          return modify(mods, details);
        },
      },
    };
  },
});
