// What the Postfix and the Sendmail sides of `relayguard quarantine` share: the error type that
// becomes "exit 1 with a message", the command context and the quarantine index access.
import type { PolicyConfig } from '../config/schema.js';
import { QuarantineStore } from '../deps/quarantine-store.js';

/** An expected failure (unknown ID, a queue tool refused): reported, exit status 1. */
export class CliError extends Error {}

export interface Ctx {
  config: PolicyConfig;
  /** Postfix: the configuration directory (postconf -c). */
  dir: string;
  json: boolean;
}

/**
 * Runs `fn` with relayguard's quarantine index, or with null when it cannot be opened: the MTA's
 * queue is the truth, the index only adds why a message was held, so a missing index is a warning.
 */
export function withStore<T>(ctx: Ctx, fn: (store: QuarantineStore | null) => T): T {
  let store: QuarantineStore | null = null;
  try {
    store = QuarantineStore.openExisting(ctx.config.server.state_dir);
  } catch (err) {
    process.stderr.write(`relayguard quarantine: warning: cannot open the quarantine index in ${ctx.config.server.state_dir}: ${(err as Error).message}\n`);
  }
  try {
    return fn(store);
  } finally {
    store?.close();
  }
}

export const fmtTime = (d: Date): string => d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
