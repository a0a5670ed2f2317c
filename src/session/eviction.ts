// Which open connection gives up its slot when the connection table is full: one of the peer
// address that holds the most connections (so a flood from one place evicts its own, not the
// MTA's), and of that peer the one that has never negotiated, else the one silent the longest.
// A connection in the middle of handling a command is never chosen: the MTA is waiting on it.
export interface EvictionCandidate {
  readonly working: boolean;
  readonly negotiatedYet: boolean;
  readonly lastActive: number;
}

export function pickEviction<S extends EvictionCandidate>(
  sessions: ReadonlyMap<S, string>,
  perPeer: ReadonlyMap<string, number>,
): S | undefined {
  let best: S | undefined;
  let bestPeerCount = -1;
  for (const [s, peer] of sessions) {
    if (s.working) continue;
    const count = perPeer.get(peer) ?? 0;
    if (best === undefined || count > bestPeerCount || (count === bestPeerCount && staler(s, best))) {
      best = s;
      bestPeerCount = count;
    }
  }
  return best;
}

/** a is a better victim than b: not negotiated beats negotiated, then the older last activity. */
function staler(a: EvictionCandidate, b: EvictionCandidate): boolean {
  if (a.negotiatedYet !== b.negotiatedYet) return !a.negotiatedYet;
  return a.lastActive < b.lastActive;
}
