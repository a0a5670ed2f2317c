// Is relayguard itself there? Connect to its milter address as the MTA would, offer what Postfix
// offers (protocol 6, every action and event) and expect an option negotiation reply; then QUIT.
import { connect } from 'node:net';
import { ALL_ACTIONS, ALL_PROTOCOL_V6, Cmd, MILTER_VERSION, OPTNEG_PAYLOAD_BYTES, Reply } from '../protocol/constants.js';
import { encodeFrame, FrameDecoder } from '../protocol/frame.js';
import type { ListenAddress } from '../session/server.js';

/** A reply to OPTNEG is small; anything bigger is not a milter. */
const MAX_OPTNEG_FRAME = 64 * 1024;

export interface OptnegAnswer {
  version: number;
  actions: number;
  protocol: number;
  ms: number;
}

export function milterOptneg(address: ListenAddress, timeoutMs: number, signal?: AbortSignal): Promise<OptnegAnswer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = address.kind === 'unix' ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
    const decoder = new FrameDecoder(MAX_OPTNEG_FRAME);
    let settled = false;
    const finish = (err: Error | null, value?: OptnegAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (value) socket.end(encodeFrame(Cmd.QUIT));
      else socket.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const onAbort = () => finish(new Error('aborted'));
    const timer = setTimeout(() => finish(new Error(`no OPTNEG reply within ${Math.round(timeoutMs / 1000)}s`)), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('connect', () => {
      const offer = Buffer.alloc(OPTNEG_PAYLOAD_BYTES);
      offer.writeUInt32BE(MILTER_VERSION, 0);
      offer.writeUInt32BE(ALL_ACTIONS, 4);
      offer.writeUInt32BE(ALL_PROTOCOL_V6, 8);
      socket.write(encodeFrame(Cmd.OPTNEG, offer));
    });
    socket.on('data', (chunk) => {
      try {
        for (const f of decoder.push(chunk)) {
          if (f.command !== Reply.OPTNEG || f.payload.length < OPTNEG_PAYLOAD_BYTES) {
            return finish(new Error(`answered 0x${f.command.toString(16)} instead of OPTNEG`));
          }
          return finish(null, {
            version: f.payload.readUInt32BE(0),
            actions: f.payload.readUInt32BE(4),
            protocol: f.payload.readUInt32BE(8),
            ms: Math.round(performance.now() - started),
          });
        }
      } catch (err) {
        finish(new Error(`not a milter reply: ${(err as Error).message}`));
      }
    });
    socket.on('error', (err) => finish(new Error(err.message)));
    socket.on('close', () => finish(new Error('closed without an OPTNEG reply')));
  });
}
