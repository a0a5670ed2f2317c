// Encoders for milter -> MTA replies and modification requests. Pure functions.
import { FRAME_HEADER_BYTES, MAX_BODY_CHUNK, MILTER_VERSION, Reply, type MacroStageNumber } from './constants.js';
import { encodeFrame } from './frame.js';

const NUL = Buffer.from([0]);

function cstr(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  if (b.includes(0)) throw new RangeError('milter strings cannot contain NUL');
  return Buffer.concat([b, NUL]);
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** Header strings are UTF-8 text from our side; callers pass what must reach the queue file. */
function hstr(s: string): Buffer {
  return cstr(Buffer.from(s, 'utf8'));
}

export interface OptnegReply {
  version?: number;
  actions: number;
  protocol: number;
  macros?: Partial<Record<MacroStageNumber, string[]>>;
}

export function optneg(reply: OptnegReply): Buffer {
  const parts = [u32(reply.version ?? MILTER_VERSION), u32(reply.actions), u32(reply.protocol)];
  for (const [stage, names] of Object.entries(reply.macros ?? {})) {
    if (!names || names.length === 0) continue; // Postfix treats an empty list as "not specified"
    parts.push(u32(Number(stage)), cstr(names.join(' ')));
  }
  return encodeFrame(Reply.OPTNEG, Buffer.concat(parts));
}

export const continue_ = (): Buffer => encodeFrame(Reply.CONTINUE);
export const reject = (): Buffer => encodeFrame(Reply.REJECT);
export const tempfail = (): Buffer => encodeFrame(Reply.TEMPFAIL);
export const discard = (): Buffer => encodeFrame(Reply.DISCARD);
export const progress = (): Buffer => encodeFrame(Reply.PROGRESS);

/** SMFIR_REPLYCODE: the full, already formatted SMTP reply (see smtp-reply.ts). */
export function replyCode(text: string): Buffer {
  return encodeFrame(Reply.REPLYCODE, cstr(text));
}

export function quarantine(reason: string): Buffer {
  // Sendmail dislikes newlines in the reason; NUL cannot be represented.
  return encodeFrame(Reply.QUARANTINE, cstr(reason.replace(/[\r\n\0]+/g, ' ')));
}

export function addHeader(name: string, value: string): Buffer {
  return encodeFrame(Reply.ADDHEADER, Buffer.concat([hstr(name), hstr(value)]));
}

export function insertHeader(index: number, name: string, value: string): Buffer {
  return encodeFrame(Reply.INSHEADER, Buffer.concat([u32(index), hstr(name), hstr(value)]));
}

/** Change the index-th (1-based) header called `name`; an empty value deletes it. */
export function changeHeader(index: number, name: string, value: string): Buffer {
  return encodeFrame(Reply.CHGHEADER, Buffer.concat([u32(index), hstr(name), hstr(value)]));
}

export function addRcpt(rcpt: string): Buffer {
  return encodeFrame(Reply.ADDRCPT, cstr(rcpt));
}

/**
 * The first bytes of a REPLBODY frame whose payload (<= MAX_BODY_CHUNK bytes) follows separately:
 * the session sends a new body as these heads plus views of the body (session/body-frames.ts).
 */
export function replBodyHead(payloadBytes: number): Buffer {
  if (payloadBytes > MAX_BODY_CHUNK) throw new RangeError(`body chunk ${payloadBytes} > ${MAX_BODY_CHUNK}`);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 1);
  out.writeUInt32BE(payloadBytes + 1, 0);
  out[FRAME_HEADER_BYTES] = Reply.REPLBODY;
  return out;
}
