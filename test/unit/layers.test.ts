// The layer order of docs/design.md holds in the code: no import goes upwards or sideways, every
// source file sits in a layer folder, and no files import each other round about. The table is
// LAYERS in test/support/layers.ts.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { importsOf, layerViolations, readSources } from '../support/layers.js';

const SRC = join(new URL('../../../', import.meta.url).pathname, 'src');

test('every import in src/ keeps to the layer order, and no files import each other in a cycle', () => {
  const sources = readSources(SRC);
  assert.ok(sources.size > 100, `found only ${sources.size} source files under ${SRC}`);
  const problems = layerViolations(sources);
  assert.equal(problems.length, 0, `layer check:\n  ${problems.join('\n  ')}`);
});

describe('the layer check itself', () => {
  const clean = new Map([
    ['primitives/address.ts', 'export interface Address { raw: string }'],
    ['policy/types.ts', "import type { Address } from '../primitives/address.js';\nexport type A = Address;"],
    ['rules/size.ts', "import { pass } from '../policy/types.js';"],
    ['audit/probes.ts', "import { x } from '../mta/requirements.js';"],
    ['mta/requirements.ts', "import { RULES } from '../rules/index.js';"],
  ]);

  test('a tree that keeps to the order passes', () => {
    assert.deepEqual(layerViolations(clean), []);
  });

  test('reads import type, export from, side-effect and dynamic imports', () => {
    const text = [
      "import type { A } from './a.js';",
      "export { b } from '../policy/b.js';",
      "export * from '../policy/c.js';",
      "import '../ops/d.js';",
      "const e = await import('../deps/e.js');",
      "import { z } from 'zod';",
      "import { readFileSync } from 'node:fs';",
    ].join('\n');
    assert.deepEqual(importsOf('session/x.ts', text), [
      'session/a.ts',
      'policy/b.ts',
      'policy/c.ts',
      'ops/d.ts',
      'deps/e.ts',
    ]);
  });

  test('an upward type import is reported with both files and both layers', () => {
    const tree = new Map(clean);
    tree.set('deps/quarantine-store.ts', "import type { Decision } from '../session/conversation.js';");
    tree.set('session/conversation.ts', 'export interface Decision {}');
    assert.deepEqual(layerViolations(tree), [
      'deps/quarantine-store.ts imports session/conversation.ts: deps may not import session (a higher layer)',
    ]);
  });

  test('an upward re-export is reported', () => {
    const tree = new Map(clean);
    tree.set('primitives/units.ts', "export { policySchema } from '../rules/policy-schema.js';");
    assert.deepEqual(layerViolations(tree), [
      'primitives/units.ts imports rules/policy-schema.ts: primitives may not import rules (a higher layer)',
    ]);
  });

  test('a sibling import is reported unless it is listed', () => {
    const tree = new Map(clean);
    tree.set('mta/lint.ts', "import { probe } from '../audit/probes.js';");
    assert.deepEqual(layerViolations(tree), [
      'mta/lint.ts imports audit/probes.ts: mta may not import audit (same layer)',
    ]);
  });

  test('a file outside every layer folder is reported', () => {
    const tree = new Map(clean);
    tree.set('helpers.ts', 'export const x = 1;');
    tree.set('misc/y.ts', 'export const y = 1;');
    assert.deepEqual(layerViolations(tree), [
      'helpers.ts: not in a layer folder (add its folder to LAYERS in test/support/layers.ts, or move it)',
      'misc/y.ts: not in a layer folder (add its folder to LAYERS in test/support/layers.ts, or move it)',
    ]);
  });

  test('files of one folder that import each other round about are reported, with one way round', () => {
    const tree = new Map(clean);
    tree.set(
      'deps/offender-ledger.ts',
      "import { RedisLedger } from './offender-ledger-redis.js';\nimport { s } from './state-file.js';",
    );
    tree.set('deps/offender-ledger-redis.ts', "import { shortReason, type Ledger } from './offender-ledger.js';");
    tree.set('deps/state-file.ts', 'export const s = 1;');
    tree.set('deps/a.ts', "import { b } from './b.js';");
    tree.set('deps/b.ts', "import { c } from './c.js';");
    tree.set('deps/c.ts', "import { a } from './a.js';");
    tree.set('deps/self.ts', "import { me } from './self.js';");
    assert.deepEqual(layerViolations(tree), [
      'import cycle between 3 files (deps/a.ts, deps/b.ts, deps/c.ts): deps/a.ts -> deps/b.ts -> deps/c.ts -> deps/a.ts',
      'import cycle between 2 files (deps/offender-ledger-redis.ts, deps/offender-ledger.ts): deps/offender-ledger-redis.ts -> deps/offender-ledger.ts -> deps/offender-ledger-redis.ts',
      'import cycle between 1 files (deps/self.ts): deps/self.ts -> deps/self.ts',
    ]);
  });

  test("a part that only names its unit's types is no cycle: type imports are erased; a value import back is one", () => {
    const tree = new Map(clean);
    tree.set(
      'rules/size.ts',
      "import { sizeAudit } from './size/audit.js';\nexport type SizeConfig = { max: number };",
    );
    tree.set(
      'rules/size/audit.ts',
      "import type { SizeConfig } from '../size.js';\nimport { type SizeConfig as S } from '../size.js';\nexport type { SizeConfig } from '../size.js';",
    );
    assert.deepEqual(layerViolations(tree), []);
    tree.set('rules/size/audit.ts', "import { DEFAULT_MAX_BYTES, type SizeConfig } from '../size.js';");
    assert.deepEqual(layerViolations(tree), [
      'import cycle between 2 files (rules/size.ts, rules/size/audit.ts): rules/size.ts -> rules/size/audit.ts -> rules/size.ts',
    ]);
  });
});
