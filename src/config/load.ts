// Reads a policy file: YAML syntax errors and schema errors both come back as file:line:col.
// The schema is a parameter: the policy's is composed from the rule registry, which sits above
// this layer (rules/policy-schema.ts binds the two).
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { z } from 'zod';
import { documentData, readPolicySource } from './read-policy-file.js';
import { closestKey, knownKeys } from './suggest.js';

/** What a policy file must satisfy: its schema, and checks across its parts once it parsed. */
export interface PolicyFileSpec<S extends z.ZodType> {
  schema: S;
  /** Errors with paths from the top of the file; [] when the parts fit together. */
  crossCheck?(config: z.output<S>): Array<{ path: Array<string | number>; message: string }>;
}

export interface ConfigError {
  file: string;
  line: number;
  col: number;
  /** Where in the policy, dotted ("rules.size.max_bytes"); "" for the file as a whole. */
  path: string;
  message: string;
}

export type LoadResult<T> = { ok: true; config: T; file: string } | { ok: false; errors: ConfigError[]; file: string };

export function formatError(e: ConfigError): string {
  // line 0: the error has no position in the file (it could not be read at all).
  return e.line > 0 ? `${e.file}:${e.line}:${e.col}: ${e.message}` : `${e.file}: ${e.message}`;
}

export function loadPolicy<S extends z.ZodType>(spec: PolicyFileSpec<S>, file: string): LoadResult<z.output<S>> {
  const source = readPolicySource(file);
  if (!source.ok) return { ok: false, file, errors: [{ file, line: 0, col: 0, path: '', message: source.message }] };
  return parsePolicy(spec, source.text, file);
}

export function parsePolicy<S extends z.ZodType>(
  spec: PolicyFileSpec<S>,
  text: string,
  file: string,
): LoadResult<z.output<S>> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const errors: ConfigError[] = [];
  for (const e of doc.errors) {
    const pos = lineCounter.linePos(e.pos[0]);
    errors.push({ file, line: pos.line, col: pos.col, path: '', message: e.message.split('\n')[0]! });
  }
  if (errors.length) return { ok: false, file, errors };
  const expanded = documentData(doc, lineCounter);
  if (!expanded.ok)
    return {
      ok: false,
      file,
      errors: [{ file, line: expanded.line, col: expanded.col, path: '', message: expanded.message }],
    };
  const data = expanded.data ?? {};
  const parsed = spec.schema.safeParse(data);
  if (parsed.success) {
    const cross = spec.crossCheck?.(parsed.data) ?? [];
    if (cross.length === 0) return { ok: true, config: parsed.data, file };
    for (const c of cross)
      errors.push(
        ...issueToErrors(
          spec.schema,
          { code: 'custom', path: c.path, message: c.message, input: undefined },
          doc,
          lineCounter,
          file,
        ),
      );
    return { ok: false, file, errors };
  }
  for (const issue of parsed.error.issues) errors.push(...issueToErrors(spec.schema, issue, doc, lineCounter, file));
  errors.sort((a, b) => a.line - b.line || a.col - b.col);
  return { ok: false, file, errors };
}

function issueToErrors(
  schema: z.ZodType,
  issue: z.core.$ZodIssue,
  doc: Document,
  lc: LineCounter,
  file: string,
): ConfigError[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  // An unknown key: one error per key, at the key itself, with the allowed key it is closest to.
  if (issue.code === 'unrecognized_keys' && issue.keys.length) {
    const allowed = knownKeys(schema, path);
    return issue.keys.map((key) => {
      const pos = keyPosition(doc, [...path, key], lc) ?? nearestPosition(doc, path, lc);
      const near = closestKey(key, allowed);
      return {
        file,
        ...pos,
        path: [...path, key].join('.'),
        message: `${dotted(path)}: unknown key "${key}"${near ? ` (did you mean "${near}"?)` : ''}`,
      };
    });
  }
  return [
    {
      file,
      ...nearestPosition(doc, path, lc),
      path: issue.path.map(String).join('.'),
      message: `${dotted(issue.path)}: ${issue.message}`,
    },
  ];
}

/** The position of the node at `path`, or of its nearest ancestor that has one. */
function nearestPosition(doc: Document, path: Array<string | number>, lc: LineCounter): { line: number; col: number } {
  while (path.length > 0) {
    const node = doc.getIn(path, true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]);
    path = path.slice(0, -1);
  }
  return { line: 1, col: 1 };
}

/** Position of a mapping key (not its value). */
function keyPosition(
  doc: Document,
  path: Array<string | number>,
  lc: LineCounter,
): { line: number; col: number } | null {
  const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
  const key = path[path.length - 1];
  if (parent && typeof parent === 'object' && 'items' in parent) {
    for (const item of (parent as { items: Array<{ key?: unknown }> }).items) {
      const k = item.key;
      if (isNode(k) && (k as unknown as { value?: unknown }).value === key && k.range) return lc.linePos(k.range[0]);
    }
  }
  return null;
}

function dotted(path: ReadonlyArray<PropertyKey>): string {
  return path.length ? path.map(String).join('.') : '(top)';
}
