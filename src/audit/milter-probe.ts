// Is relayguard itself there? Connect to its milter address as the MTA would, offer what Postfix
// offers (protocol 6, every action and event) and expect an option negotiation reply; then QUIT.
// The project's one milter client (milter-client.ts) does the talking.
import type { ListenAddress } from '../session/server.js';
import { MilterClient } from './milter-client.js';

export interface OptnegAnswer {
  version: number;
  actions: number;
  protocol: number;
  ms: number;
}

export async function milterOptneg(
  address: ListenAddress,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<OptnegAnswer> {
  const started = performance.now();
  if (signal?.aborted) throw new Error('aborted');
  const client = await MilterClient.open(address, undefined, timeoutMs);
  const onAbort = () => client.close();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const left = Math.max(1, timeoutMs - (performance.now() - started));
    const n = await client.negotiate(undefined, undefined, left);
    client.quit();
    client.socket.end();
    return {
      version: n.version,
      actions: n.actions,
      protocol: n.protocol,
      ms: Math.round(performance.now() - started),
    };
  } catch (err) {
    client.close();
    throw signal?.aborted ? new Error('aborted') : err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
