// Which policy file a command uses: --config, else the shipped policies/default.yaml.
import { join, resolve } from 'node:path';
import { formatError } from '../config/load.js';
import { loadPolicyFile } from '../rules/policy-schema.js';
import type { PolicyConfig } from '../rules/policy-schema.js';
import { writeError } from '../ops/journal-stream.js';
import { resolveStateDir } from '../ops/state-dir.js';
import { CommandFailed, PACKAGE_ROOT } from './command.js';

export const DEFAULT_POLICY = join(PACKAGE_ROOT, 'policies', 'default.yaml');

export function policyPath(flag: string | undefined): string {
  return flag ? resolve(flag) : DEFAULT_POLICY;
}

/**
 * Load or exit 1 with every error as file:line:col. The default state_dir, when this user cannot
 * write it, is replaced by a fallback (src/ops/state-dir.ts); `stateNote` says so.
 */
export function loadPolicyOrExit(flag: string | undefined): { config: PolicyConfig; file: string; stateNote?: string } {
  const file = policyPath(flag);
  const r = loadPolicyFile(file);
  if (!r.ok) {
    for (const e of r.errors) writeError(formatError(e) + '\n');
    throw new CommandFailed(1);
  }
  const state = resolveStateDir(r.config.server.state_dir);
  r.config.server.state_dir = state.dir;
  return { config: r.config, file, ...(state.note ? { stateNote: state.note } : {}) };
}

/** The version in the installed package.json. */

/** Postfix's configuration directory: MAIL_CONFIG overrides the policy, as for Postfix's own tools. */
export function postfixConfigDir(config: PolicyConfig): string {
  return process.env.MAIL_CONFIG || config.mta.config_directory;
}
