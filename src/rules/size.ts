// Rule 3: message size. A client that announces a size over the limit (MAIL FROM ... SIZE=N) is
// refused at MAIL; without SIZE= the bytes are counted as the body arrives and the message is
// refused as soon as it passes the limit, so relayguard stops keeping it.
//
// What counts: the header block as received (including the Received: line the MTA added) plus
// the body, with CRLF line ends. That is what the client transmitted and roughly what Postfix's
// message_size_limit measures (the queue file's content).
import { pass, reject, type MessageContext } from '../policy/types.js';
import { pickDirection } from './common.js';
import { sizeAudit } from './size/audit.js';
import { sizeMta } from './size/mta.js';
import { sizeSchema } from './size/schema.js';
import { defineRule } from '../policy/rule-env.js';

/** RFC 1870 / RFC 3463: message size exceeds fixed maximum message size. */
const SIZE_EXCEEDED = { code: 552, enhanced: '5.3.4' } as const;
const SIZE_EXCEEDED_TEXT = 'Message size exceeds fixed limit';

const STATE_KEY = 'size';

interface SizeCount {
  headerBytes: number;
  bodyBytes: number;
}

function countOf(msg: MessageContext): SizeCount {
  let c = msg.state.get(STATE_KEY) as SizeCount | undefined;
  if (!c) {
    // The header block is complete once the body starts (or at end of message for an empty body).
    c = { headerBytes: msg.source.headerBlock().length, bodyBytes: 0 };
    msg.state.set(STATE_KEY, c);
  }
  return c;
}

/** The SIZE= value of MAIL FROM as a number, or null when absent or not a number. */
export function declaredSize(params: Record<string, string>): number | null {
  const v = params.SIZE;
  if (v === undefined || !/^\d{1,20}$/.test(v)) return null;
  return Number(v);
}

export const sizeRule = defineRule({
  name: 'size',
  summary: 'Refuses messages over the size limit: at MAIL when SIZE= says so, else as soon as the data passes it.',
  schema: sizeSchema,
  mta: sizeMta,
  audit: sizeAudit,
  create(config) {
    const limitFor = (msg: MessageContext) => pickDirection(config.max_bytes, msg.direction);
    const tooBig = (size: number, limit: number, how: string) =>
      reject(SIZE_EXCEEDED_TEXT, SIZE_EXCEEDED, { size, limit, how });

    return {
      name: 'size',
      mode: config.mode,
      handlers: {
        async envfrom({ msg }) {
          if (!msg) return pass();
          const declared = declaredSize(msg.senderParams);
          const limit = limitFor(msg);
          if (declared !== null && declared > limit) return tooBig(declared, limit, 'declared');
          return pass();
        },
        async body({ msg, chunk }) {
          if (!msg || !chunk) return pass();
          const c = countOf(msg);
          c.bodyBytes += chunk.length;
          const limit = limitFor(msg);
          const total = c.headerBytes + c.bodyBytes;
          // "At least": the rest of the message is not read once it is refused.
          if (total > limit) return tooBig(total, limit, 'counted');
          return pass();
        },
        async eom({ msg }) {
          // Covers a message whose header block alone is over the limit (no body chunk).
          if (!msg) return pass();
          const c = countOf(msg);
          const limit = limitFor(msg);
          const total = c.headerBytes + c.bodyBytes;
          if (total > limit) return tooBig(total, limit, 'counted');
          return pass({ size: total });
        },
      },
    };
  },
});
