// The layer order of src/ (docs/design.md, "Layers") as one table, and the check that every
// import of every source file keeps to it. Imports are read with the TypeScript compiler's own
// pre-processor, so `import type`, `export ... from` and `import()` count like any import: a type
// that points upwards ties the layers together as much as a value does. Cycles between files are
// looked for among the imports that exist at run time (a rule's audit part may name the rule's
// config type; it may not import a value back).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import ts from 'typescript';

/**
 * Bottom first. A file may import files of its own folder and of any folder on a lower line.
 * Folders on the same line are siblings: they may not import each other, except where
 * SIBLING_IMPORTS allows it.
 */
export const LAYERS: ReadonlyArray<readonly string[]> = [
  ['primitives', 'types'], // addresses, networks, units, safe text; ambient types of outside packages
  ['protocol'], // milter frames: decode, encode, constants (pure, no I/O)
  ['ops'], // logging, metrics, /metrics and /health, memory valve, sd_notify, the state directory
  ['config'], // the global settings schema and the policy file loader (the schema is a parameter)
  ['policy'], // the contract: verdicts, decisions, rule interface, phase inputs, reply formatting
  ['mime'], // the one MIME parse, decoders, the disclaimer engine
  ['deps'], // clients of outside services and stores: clamd, DNS, ledger, quarantine index
  ['session'], // one milter connection and the listener
  ['engine'], // runs the rules of a phase; compiles a policy into rule instances
  ['rules'], // one file per rule, the registry, the policy schema composed from it
  ['mta', 'audit'], // MTA configuration and lint; the self-audit
  ['cli'], // commands
];

/** Imports between siblings that are allowed, as "from -> to". */
export const SIBLING_IMPORTS: ReadonlySet<string> = new Set([
  // The audit checks the MTA settings that mta/ derives from the policy.
  'audit -> mta',
]);

/** The layer folder of a file of src/ (its first folder), or undefined for a file outside any. */
export function folderOf(file: string): string | undefined {
  const parts = file.split('/');
  return parts.length > 1 ? parts[0] : undefined;
}

function rankOf(folder: string | undefined): number {
  return folder === undefined ? -1 : LAYERS.findIndex((line) => line.includes(folder));
}

/** Relative imports of one file, as paths of .ts files relative to src/. */
export function importsOf(file: string, text: string): string[] {
  const info = ts.preProcessFile(text, true, true);
  const out: string[] = [];
  for (const { fileName } of info.importedFiles) {
    if (!fileName.startsWith('.')) continue; // a package or a node: built-in
    out.push(normalize(join(dirname(file), fileName)).replace(/\.js$/, '.ts'));
  }
  return out;
}

/**
 * The relative imports of one file that exist at run time: `import type`, `export type ... from`
 * and imports whose every name is a type are erased by the compiler, so they cannot make modules
 * load round about. (They still count for the layer order: see importsOf.)
 */
export function runtimeImportsOf(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const add = (spec: ts.Expression | undefined) => {
    if (!spec || !ts.isStringLiteral(spec) || !spec.text.startsWith('.')) return;
    out.push(normalize(join(dirname(file), spec.text)).replace(/\.js$/, '.ts'));
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      if (!typeOnlyImport(node.importClause)) add(node.moduleSpecifier);
    } else if (ts.isExportDeclaration(node)) {
      const named = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause.elements : undefined;
      if (!node.isTypeOnly && !(named && named.length > 0 && named.every((e) => e.isTypeOnly)))
        add(node.moduleSpecifier);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0]);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

function typeOnlyImport(clause: ts.ImportClause | undefined): boolean {
  if (!clause) return false; // a side-effect import
  if (clause.isTypeOnly) return true;
  if (clause.name) return false; // a default import
  const bindings = clause.namedBindings;
  return (
    !!bindings &&
    ts.isNamedImports(bindings) &&
    bindings.elements.length > 0 &&
    bindings.elements.every((e) => e.isTypeOnly)
  );
}

/** Every breach of the layer order in `sources` (path relative to src/ -> text), readable. */
export function layerViolations(sources: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  const graph = new Map<string, string[]>();
  for (const [file, text] of sources) {
    const folder = folderOf(file);
    const rank = rankOf(folder);
    if (rank < 0) {
      problems.push(`${file}: not in a layer folder (add its folder to LAYERS in test/support/layers.ts, or move it)`);
    }
    const targets = importsOf(file, text);
    graph.set(file, runtimeImportsOf(file, text));
    if (rank < 0) continue;
    for (const target of targets) {
      const to = folderOf(target);
      if (to === folder) continue;
      const toRank = rankOf(to);
      if (toRank < 0) continue; // reported for that file itself (or it does not exist: tsc says so)
      if (toRank > rank) problems.push(`${file} imports ${target}: ${folder} may not import ${to} (a higher layer)`);
      else if (toRank === rank && !SIBLING_IMPORTS.has(`${folder} -> ${to}`)) {
        problems.push(`${file} imports ${target}: ${folder} may not import ${to} (same layer)`);
      }
    }
  }
  for (const group of importCycles(graph)) {
    const loop = shortestLoop(graph, group);
    problems.push(`import cycle between ${group.length} files (${group.join(', ')}): ${loop.join(' -> ')}`);
  }
  return problems;
}

/** Files that import each other, directly or round about: each strongly connected group once. */
export function importCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's algorithm; recursive, as the import graph is at most a few hundred files deep.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(group.reverse());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles;
}

/** One concrete way round a cycle group, from its first file back to it, for the message. */
function shortestLoop(graph: ReadonlyMap<string, readonly string[]>, group: readonly string[]): string[] {
  const start = group[0]!;
  const inGroup = new Set(group);
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!inGroup.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let at = v; at !== start; at = cameFrom.get(at)!) path.splice(1, 0, at);
        return [...path, start];
      }
      if (!cameFrom.has(w)) {
        cameFrom.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

/** Every .ts file under `srcDir`, keyed by its path relative to it. */
export function readSources(srcDir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.isFile() && e.name.endsWith('.ts')) out.set(relative(srcDir, path), readFileSync(path, 'utf8'));
    }
  };
  walk(srcDir);
  return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
}
