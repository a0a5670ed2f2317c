// Runs the disclaimer rule on one .eml the way the session would at end of message (a message
// context over the file, the rule's eom handler) and applies its modifications the way the MTA
// would (offline-message.ts). Shared by the golden and the rule unit tests.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPolicyFile } from '../../../src/rules/policy-schema.js';
import type { Direction, MessageContext, Verdict } from '../../../src/policy/types.js';
import type { PolicySettings } from '../../../src/config/settings.js';
import { disclaimerRule, type DisclaimerConfig } from '../../../src/rules/disclaimer.js';
import type { RuleEnv } from '../../../src/policy/rule-env.js';
import { applyModifications, splitMessage } from '../../../src/session/offline-message.js';
import { kitConnection, kitEnv, kitInput, kitMessage } from '../../support/rule-kit.js';

export interface CaseEnvelope {
  client_ip: string;
  from: string;
  rcpt: string[];
  expect: 'rewritten' | 'unchanged';
  /** For unchanged cases: the skip code the verdict must report. */
  skip?: string;
  note: string;
}

/** The repository: the nearest directory above this (compiled) file with a package.json. */
export function repoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  return process.cwd();
}

/** The corpus sources (not the compiled copy). */
export const CORPUS = join(repoRoot(), 'test/golden/disclaimer');

export function loadCorpusPolicy(): { settings: PolicySettings; rule: DisclaimerConfig } {
  const r = loadPolicyFile(join(CORPUS, 'policy.yaml'));
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  const { rules, ...settings } = r.config;
  const rule = (rules as Record<string, unknown>).disclaimer as DisclaimerConfig;
  return { settings, rule };
}

export function fakeEnv(settings: PolicySettings): RuleEnv {
  return kitEnv({ settings });
}

/** A message context over raw message bytes, as the session builds it at end of message (a spilled body). */
export function fakeMessage(raw: Buffer, direction: Direction, from: string, chunkSize = 65_535): MessageContext {
  return kitMessage(raw, { direction, from, chunkSize, spilled: true });
}

export interface RunResult {
  verdict: Verdict;
  output: Buffer;
}

/** Runs the rule's eom handler on `raw` and returns the verdict and the delivered message. */
export async function runDisclaimer(
  config: DisclaimerConfig,
  settings: PolicySettings,
  raw: Buffer,
  direction: Direction,
  from: string,
  chunkSize?: number,
): Promise<RunResult> {
  const rule = disclaimerRule.create(config, fakeEnv(settings));
  const msg = fakeMessage(raw, direction, from, chunkSize);
  const verdict = await rule.handlers.eom!(kitInput(kitConnection(), msg));
  const { headers, body } = splitMessage(raw);
  const output = await applyModifications(headers, body, verdict.mods ?? []);
  return { verdict, output };
}

export function readCase(name: string, suffix: '.in.eml' | '.out.eml'): Buffer {
  return readFileSync(join(CORPUS, `${name}${suffix}`));
}
