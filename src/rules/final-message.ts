// The message as the MTA will deliver it after relayguard's modifications, as a stream: the
// header block with every header change applied (src/session/offline-message.ts does what the
// MTA does), then the new body if a rule replaced it, else the original. Nothing is buffered
// beyond the header block. Signatures over the delivered message (ARC, DKIM) are made on this.
import { Readable } from 'node:stream';
import type { MessageContext, Modification } from '../policy/types.js';
import { applyModifications, splitMessage } from '../session/offline-message.js';

export async function finalMessage(msg: MessageContext, mods: readonly Modification[]): Promise<Readable> {
  const { headers } = splitMessage(msg.source.headerBlock());
  const headerMods = mods.filter((m) => m.type !== 'replaceBody');
  const head = await applyModifications(headers, Buffer.alloc(0), headerMods);
  const replaced = [...mods].reverse().find((m) => m.type === 'replaceBody');
  const body = replaced && replaced.type === 'replaceBody' ? replaced.body.stream() : msg.source.body();
  return Readable.from(
    (async function* () {
      yield head;
      for await (const chunk of body as AsyncIterable<Buffer | string>)
        yield typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    })(),
  );
}
