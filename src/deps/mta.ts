// The MTA adapter: what relayguard asks of the mail server in front of it, in one interface with
// a Postfix and a Sendmail implementation. `relayguard quarantine` (list, show, release, delete)
// and the audit's held-message check use it; the MTA's own tools do the work (postqueue,
// postsuper, postcat; Sendmail's queue files and `sendmail -Q`), run through deps/exec.ts.
// The MTA's queue is the truth; relayguard's quarantine index only adds why a message was held.
// deps/open-mta.ts picks the implementation from the policy.
import type { Writable } from 'node:stream';

/** An expected failure (unknown ID, a message not held, a queue tool refused): shown, exit 1. */
export class MtaError extends Error {}

/** One held message as the MTA keeps it. */
export interface HeldMessage {
  queueId: string;
  /** The MTA's name for where it is: "hold" (Postfix), "quarantine" (Sendmail). */
  queue: string;
  arrivalTime: Date;
  size: number;
  sender: string;
  recipients: string[];
  /** The reason the MTA stored with it (Sendmail's `q` line), null when the MTA keeps none. */
  reason: string | null;
}

/** Where a message is: held, somewhere else in the MTA's queue (`where` names it), or gone (null). */
export type Whereabouts = { held: boolean; where: string } | null;

export interface ReleaseResult {
  /** What was done, for the administrator ("released from hold, delivery requested"). */
  how: string;
  /** Set when the message left the hold but asking for delivery now failed (a queue run sends it). */
  warning?: string;
  /** The message as it was held. */
  message: HeldMessage;
}

export interface Mta {
  readonly kind: 'postfix' | 'sendmail';
  /** "Postfix", "Sendmail". */
  readonly product: string;
  /** What the held messages are in, for people: "hold queue", "Sendmail quarantine". */
  readonly heldQueueName: string;
  /** Every held message, oldest first for Sendmail, in postqueue's order for Postfix. */
  listHeld(signal?: AbortSignal): Promise<HeldMessage[]>;
  /** The held message `id`; MtaError when `id` is no queue ID, not there, or not held. */
  held(id: string, signal?: AbortSignal): Promise<HeldMessage>;
  /** The held message's content, for JSON output (text as the MTA's tool prints it). */
  contentText(id: string): Promise<string>;
  /** Writes the held message's content to `out` (not ended); Postfix's is streamed. */
  writeContent(id: string, out: Writable): Promise<void>;
  /** Lets the held message `id` go to delivery. */
  release(id: string): Promise<ReleaseResult>;
  /** Deletes the held message `id` (and only a held one); returns it as it was held. */
  remove(id: string, signal?: AbortSignal): Promise<HeldMessage>;
  /** The held-queue check of the audit: where message `id` is now. */
  locate(id: string, signal?: AbortSignal): Promise<Whereabouts>;
  /** The command an administrator runs to remove message `id` by hand. */
  removeHint(id: string): string;
}
