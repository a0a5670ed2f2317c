// Finds exports of src/ that nothing outside their own file uses (src, test and bench count as
// users). The TypeScript checker resolves every identifier of the tree to its symbol, so imports
// under another name, `import * as`, re-exports and `(await import('./x.js')).name` all count.
// An export found here is dead (remove it) or only used in its file (drop `export`).
//
//   node dist/test/support/unused-exports.js          list them
//   node dist/test/support/unused-exports.js --fix    drop `export` from the values only their
//                                                     own file uses (dead ones need a person)
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

export interface UnusedExport {
  file: string;
  name: string;
  /** Used inside its own file: only the `export` is too much. */
  usedLocally: boolean;
  /** A type only (interface, type alias): no code at run time. */
  typeOnly: boolean;
  declarations: readonly ts.Declaration[];
}

/** Files whose exports stay although nothing imports them, with the reason. */
const KEPT_EXPORTS: ReadonlyMap<string, string> = new Map([
  ['src/cli/main.ts', 'the command line entry point (package.json "bin")'],
  ['src/rules/template.ts', 'the rule template a new rule is copied from; not registered'],
]);

/** What the unit test and `--fix` act on: dead exports, and values used only in their file. */
export function isNeedless(u: UnusedExport): boolean {
  return !u.usedLocally || !u.typeOnly;
}

export function unusedExports(root: string, tsconfigPath: string): UnusedExport[] {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    tsconfigPath,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error(`cannot read ${tsconfigPath}`);
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } });
  const checker = program.getTypeChecker();
  const ours = program.getSourceFiles().filter((f) => !f.isDeclarationFile && !f.fileName.includes('/node_modules/'));

  // Every symbol an identifier refers to, with the files it is referred to from. An alias (an
  // import or a re-export) refers to what it aliases too, step by step.
  const usedFrom = new Map<ts.Symbol, Set<string>>();
  const note = (sym: ts.Symbol, file: string) => {
    for (let s: ts.Symbol | undefined = sym, hops = 0; s && hops < 20; hops++) {
      let files = usedFrom.get(s);
      if (!files) usedFrom.set(s, (files = new Set()));
      if (files.has(file) && hops > 0) break;
      files.add(file);
      s = s.flags & ts.SymbolFlags.Alias ? aliased(s) : undefined;
    }
  };
  // One step along an alias chain; the checker only knows the whole chain for some alias kinds.
  const aliased = (s: ts.Symbol): ts.Symbol | undefined => {
    try {
      return checker.getImmediateAliasedSymbol(s);
    } catch {
      return checker.getAliasedSymbol(s);
    }
  };
  for (const sf of ours) {
    const visit = (node: ts.Node): void => {
      if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node)) {
        const sym = checker.getSymbolAtLocation(node);
        if (sym) note(sym, sf.fileName);
        // `{ name }` in an object literal names a local and the property at once.
        if (ts.isShorthandPropertyAssignment(node.parent)) {
          const local = checker.getShorthandAssignmentValueSymbol(node.parent);
          if (local) note(local, sf.fileName);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }

  const resolved = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const found: UnusedExport[] = [];
  for (const sf of ours) {
    const file = relative(root, sf.fileName);
    if (!file.startsWith('src/') || KEPT_EXPORTS.has(file)) continue;
    const moduleSymbol = checker.getSymbolAtLocation(sf);
    if (!moduleSymbol) continue;
    for (const exp of checker.getExportsOfModule(moduleSymbol)) {
      // A re-export (`export { x } from`) is its own alias symbol; the declaration's file is the
      // one that says `export`.
      const declFile = exp.declarations?.[0]?.getSourceFile().fileName ?? sf.fileName;
      if (declFile !== sf.fileName) continue;
      const users = usedFrom.get(exp) ?? new Set<string>();
      const outside = [...users].some((u) => u !== sf.fileName);
      if (outside) continue;
      const typeOnly = !(resolved(exp).flags & ts.SymbolFlags.Value);
      found.push({
        file,
        name: exp.getName(),
        usedLocally: users.has(sf.fileName) && usedLocally(exp, sf, checker),
        typeOnly,
        declarations: exp.declarations ?? [],
      });
    }
  }
  return found.sort((a, b) => a.file.localeCompare(b.file) || a.name.localeCompare(b.name));
}

/**
 * Drops `export` from the values only their own file uses, where the `export` keyword belongs to
 * them alone (not `export { a, b }`, not a `const` statement that also exports a used name).
 * Returns the ones it changed.
 */
export function dropNeedlessExports(root: string, found: UnusedExport[]): UnusedExport[] {
  const local = found.filter((u) => u.usedLocally && !u.typeOnly);
  const names = new Set(local.map((u) => `${u.file}:${u.name}`));
  const edits = new Map<string, Array<{ start: number; end: number }>>();
  const done: UnusedExport[] = [];
  for (const u of local) {
    for (const d of u.declarations) {
      const holder = ts.isVariableDeclaration(d) ? d.parent.parent : d;
      if (!ts.canHaveModifiers(holder)) continue;
      const mod = ts.getModifiers(holder)?.find((m) => m.kind === ts.SyntaxKind.ExportKeyword);
      if (!mod) continue;
      if (ts.isVariableStatement(holder)) {
        const all = holder.declarationList.declarations.map((v) => `${u.file}:${v.name.getText()}`);
        if (!all.every((n) => names.has(n))) continue;
      }
      const list = edits.get(u.file) ?? [];
      if (!list.some((e) => e.start === mod.getStart())) list.push({ start: mod.getStart(), end: mod.getEnd() + 1 });
      edits.set(u.file, list);
      done.push(u);
    }
  }
  for (const [file, list] of edits) {
    const path = join(root, file);
    let text = readFileSync(path, 'utf8');
    for (const e of list.sort((a, b) => b.start - a.start)) text = text.slice(0, e.start) + text.slice(e.end);
    writeFileSync(path, text);
  }
  return done;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');
  const found = unusedExports(root, join(root, 'tsconfig.json')).filter(isNeedless);
  const fixed = process.argv.includes('--fix') ? new Set(dropNeedlessExports(root, found)) : new Set<UnusedExport>();
  for (const u of found) {
    const what = fixed.has(u)
      ? 'export dropped'
      : u.usedLocally
        ? 'used in its file only: drop `export`'
        : 'unused: remove it';
    process.stdout.write(`${u.file}: ${u.name} (${what})\n`);
  }
  if (found.length > fixed.size) process.exitCode = 1;
}

/** Whether the symbol is referred to in its own file other than where it is declared. */
function usedLocally(sym: ts.Symbol, sf: ts.SourceFile, checker: ts.TypeChecker): boolean {
  const names = new Set((sym.declarations ?? []).map((d) => ts.getNameOfDeclaration(d)).filter((n) => n !== undefined));
  let used = false;
  const visit = (node: ts.Node): void => {
    if (used) return;
    if (ts.isIdentifier(node) && !names.has(node) && checker.getSymbolAtLocation(node) === sym) used = true;
    else ts.forEachChild(node, visit);
  };
  visit(sf);
  return used;
}
