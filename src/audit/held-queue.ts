// Where the audit looks for the outbound EICAR message it expects to be held for review, and how
// it removes it afterwards: Postfix's hold queue (postqueue -j, postsuper -d) or Sendmail's
// quarantine (hf control files, src/mta/sendmail-queue.ts). Chosen by the policy's mta.kind.
import { deleteQuarantined, jobState, type SendmailQueueOptions } from '../mta/sendmail-queue.js';
import { deleteHeld, queueOf, type PostfixTools } from './postfix-queue.js';

export interface HeldQueue {
  /** For the report: "hold queue", "Sendmail quarantine". */
  name: string;
  /**
   * Where message `id` is: held (true) or somewhere else in the MTA's queue (`where` names it);
   * null when the MTA no longer has it (delivered?).
   */
  locate(id: string, signal?: AbortSignal): Promise<{ held: boolean; where: string } | null>;
  remove(id: string, signal?: AbortSignal): Promise<void>;
  /** The command an administrator runs to remove it by hand. */
  removeHint(id: string): string;
}

export function postfixHeldQueue(tools: PostfixTools): HeldQueue {
  return {
    name: 'hold queue',
    async locate(id, signal) {
      const queue = await queueOf(tools, id, signal);
      return queue === null ? null : { held: queue === 'hold', where: `the ${queue} queue` };
    },
    remove: (id, signal) => deleteHeld(tools, id, signal),
    removeHint: (id) => `postsuper -d ${id} hold`,
  };
}

export function sendmailHeldQueue(opts: SendmailQueueOptions): HeldQueue {
  return {
    name: 'Sendmail quarantine',
    async locate(id) {
      const state = await jobState(opts, id);
      return state === null ? null : { held: state === 'quarantined', where: state === 'queued' ? 'the mail queue, not quarantined' : 'the quarantine' };
    },
    async remove(id) {
      await deleteQuarantined(opts, id);
    },
    removeHint: (id) => `relayguard quarantine delete ${id}`,
  };
}
