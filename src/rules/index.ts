// Every rule relayguard knows, in the order they appear in traces. Adding a rule: copy
// template.ts, give it a name and a schema, and add it here.
import type { RuleDefinition } from '../policy/rule-env.js';
import { traceHeaderRule } from './trace-header.js';
import { authenticationRule } from './authentication.js';
import { disclaimerRule } from './disclaimer.js';
import { relayRule } from './relay.js';
import { sizeRule } from './size.js';
import { accessRule } from './access.js';
import { tlsRule } from './tls.js';
import { antivirusRule } from './antivirus.js';
import { contentRule } from './content.js';
import { blocklistsRule } from './blocklists.js';
import { offendersRule } from './offenders.js';
import { originRule } from './origin.js';
import { dkimSignRule } from './dkim-sign.js';

export const RULES: readonly RuleDefinition[] = [
  traceHeaderRule,
  // Before every rule that changes the message: its check starts first (see auth-facts.ts).
  authenticationRule,
  relayRule,
  sizeRule,
  accessRule,
  tlsRule,
  antivirusRule,
  contentRule,
  disclaimerRule,
  blocklistsRule,
  offendersRule,
  // After offenders: its score feeds the ledger the offenders rule opened.
  originRule,
  // Signs in the finish step, over every rule's changes.
  dkimSignRule,
];
