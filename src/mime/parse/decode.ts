// A part's content as a reader sees it: its body bytes with the transfer encoding undone.
import { transferDecoder } from '../transfer-decode.js';
import type { MimePart } from './types.js';

export function decodedBody(message: Buffer, part: Pick<MimePart, 'bodyStart' | 'bodyEnd' | 'encoding'>): Buffer {
  const d = transferDecoder(part.encoding);
  const head = d.write(message.subarray(part.bodyStart, part.bodyEnd));
  const tail = d.end();
  return tail.length ? Buffer.concat([head, tail]) : head;
}
