// Where the origin rule keeps what it found for a connection, so other rules (the offender
// ledger records the country of the addresses it bans) can read it without a lookup of their own.
import type { ConnectionContext } from '../../policy/types.js';
import type { OriginFacts } from './database.js';

export const ORIGIN_STATE = 'origin.facts';

export interface OriginState {
  ip: string;
  facts: OriginFacts;
}

/** The country and AS of the connection's client, when the origin rule placed it. */
export function originOf(conn: Pick<ConnectionContext, 'state' | 'client'>): OriginFacts | undefined {
  const s = conn.state.get(ORIGIN_STATE) as OriginState | undefined;
  return s && s.ip === conn.client.ip ? s.facts : undefined;
}
