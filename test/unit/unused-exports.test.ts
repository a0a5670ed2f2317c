// Keeps src/ free of dead exports (issue 19): an export that nothing outside its file uses is
// removed, or loses its `export` when its file uses it (a type used only in its file may stay
// exported: it often names a parameter or result of an exported function).
// test/support/unused-exports.ts finds them; `node dist/test/support/unused-exports.js --fix`
// drops the needless `export` keywords.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isNeedless, unusedExports } from '../support/unused-exports.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');

test('every export of src/ is used outside its file (by src, test or bench)', () => {
  const found = unusedExports(ROOT, join(ROOT, 'tsconfig.json')).filter(isNeedless);
  const lines = found.map(
    (u) => `${u.file}: ${u.name} (${u.usedLocally ? 'used in its file only: drop `export`' : 'unused: remove it'})`,
  );
  assert.deepEqual(lines, [], `exports nothing outside their file uses:\n${lines.join('\n')}`);
});

test('the checker tells dead, local-only and used exports apart, whatever way they are imported', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rg-unused-exports-'));
  try {
    mkdirSync(join(dir, 'src'));
    mkdirSync(join(dir, 'test'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'es2023', module: 'nodenext', strict: true, noEmit: true, types: [] },
        include: ['src/*.ts', 'test/*.ts'],
      }),
    );
    writeFileSync(
      join(dir, 'src', 'a.ts'),
      [
        'export const dead = 1;',
        'export const localOnly = 2;',
        'export const byAlias = 3;',
        'export const byNamespace = 4;',
        'export const byDynamic = 5;',
        'export const byTest = 6;',
        'export function reExported(): number { return localOnly; }',
        'export interface LocalType { n: number }',
        'export interface DeadType { n: number }',
        'export const viaLocalType: LocalType = { n: 7 };',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'src', 'b.ts'),
      "export { reExported } from './a.js';\nimport { byAlias as other } from './a.js';\nimport * as a from './a.js';\nexport const sum = other + a.byNamespace + a.viaLocalType.n;\nexport const later = () => import('./a.js').then((m) => m.byDynamic);\n",
    );
    writeFileSync(
      join(dir, 'test', 't.ts'),
      "import { byTest } from '../src/a.js';\nimport { reExported } from '../src/b.js';\nimport { later, sum } from '../src/b.js';\nexport const all = [byTest, reExported(), sum, later];\n",
    );
    const found = unusedExports(dir, join(dir, 'tsconfig.json')).map(
      (u) => `${u.file}:${u.name}:${u.usedLocally ? 'local' : 'dead'}:${u.typeOnly ? 'type' : 'value'}`,
    );
    assert.deepEqual(found, [
      'src/a.ts:dead:dead:value',
      'src/a.ts:DeadType:dead:type',
      'src/a.ts:localOnly:local:value',
      'src/a.ts:LocalType:local:type',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
