// A policy of relayguard's rules, compiled to run: the engine's compiler bound to the registry.
import type { Logger } from 'winston';
import { CompiledPolicyBase, type CompileOptions } from '../engine/compile.js';
import { RULES } from './index.js';
import type { PolicyConfig } from './policy-schema.js';

export class CompiledPolicy extends CompiledPolicyBase<PolicyConfig> {
  constructor(config: PolicyConfig, file: string, log: Logger, options: CompileOptions = {}) {
    super(RULES, config, file, log, options);
  }
}
