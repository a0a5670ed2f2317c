// A rule is one unit: what it means for the MTA and the audit sits in the rule's own files
// (defineRule's `mta` and `audit` parts), and src/mta and src/audit iterate the registry. This
// test fails when either folder names a rule again (the names come from the registry) or
// refers to one by the reference gateway's number ("rule 3").
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/cli/command.js';
import { RULES } from '../../src/rules/index.js';

const FOLDERS = ['src/mta', 'src/audit'];
/** The modules of rules/ that mta/ and audit/ may import: the registry and the policy schema composed from it. */
const ALLOWED_RULE_IMPORTS = new Set(['index.js', 'policy-schema.js']);
/** Text that looks like a rule name and is something else. Each entry says what it is. */
const NOT_A_RULE: ReadonlyArray<{ file: string; text: string; why: string }> = [
  {
    file: 'src/mta/sendmail-config.ts',
    text: "const ACCESS_MAP_NAME = 'access';",
    why: "the file name of Sendmail's access map",
  },
];

function sources(dir: string): string[] {
  return readdirSync(join(PACKAGE_ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every way a file can name `rule`: a string literal, "the X rule", "rule X", a YAML key, an import. */
function mentions(text: string, rule: string): string[] {
  const n = rule.replace(/[-_]/g, '[-_]');
  const patterns = [
    new RegExp(`['"\`]${n}['"\`]`, 'g'),
    new RegExp(`\\b${n} rules?\\b`, 'gi'),
    new RegExp(`\\brules? ${n}\\b`, 'gi'),
    new RegExp(`['"\`#]\\s*${n}:`, 'g'),
    new RegExp(`rules[./]${n}\\b`, 'g'),
  ];
  return patterns.flatMap((re) => [...text.matchAll(re)].map((m) => m[0]));
}

function lineOf(text: string, index: number): string {
  return text
    .slice(text.lastIndexOf('\n', index) + 1, text.indexOf('\n', index) === -1 ? undefined : text.indexOf('\n', index))
    .trim();
}

describe('a rule is one unit: src/mta and src/audit name no rule', () => {
  const files = FOLDERS.flatMap(sources);

  it('finds the files and the registry it checks against', () => {
    assert.ok(files.length >= 15, `only ${files.length} files under ${FOLDERS.join(', ')}`);
    assert.ok(RULES.length >= 10);
  });

  for (const file of FOLDERS.flatMap(sources)) {
    it(relative('.', file), () => {
      let text = readFileSync(join(PACKAGE_ROOT, file), 'utf8');
      for (const x of NOT_A_RULE) if (x.file === file) text = text.replace(x.text, `/* ${x.why} */`);
      const problems: string[] = [];
      for (const m of text.matchAll(/\brules? \d+\b/gi)) problems.push(`"${m[0]}": ${lineOf(text, m.index)}`);
      for (const m of text.matchAll(/from '(?:\.\.\/)+rules\/([^']+)'/g)) {
        if (!ALLOWED_RULE_IMPORTS.has(m[1]!)) problems.push(`imports rules/${m[1]}`);
      }
      for (const rule of RULES)
        for (const m of mentions(text, rule.name)) problems.push(`names the ${rule.name} rule: ${m}`);
      assert.deepEqual(problems, [], `${file}: move this into the rule's own mta or audit part`);
    });
  }

  it('the check catches what it is for', () => {
    const size = RULES.find((r) => r.name === 'size')!;
    assert.ok(mentions("activeRule(config, 'size')", size.name).length);
    assert.ok(mentions('the size rule is off', size.name).length);
    assert.ok(mentions("'  size:',", size.name).length);
    assert.ok(mentions("import { x } from '../rules/size.js';", size.name).length);
    assert.deepEqual(mentions('message_size_limit: a size limit', size.name), []);
    const dkim = RULES.find((r) => r.name === 'dkim_sign')!;
    assert.ok(mentions('the dkim-sign rule', dkim.name).length);
  });
});
