// Compares MIME dumps: the list of parts that one parser sees in a message, as JSON lines
// written by test/corpus/dump_python.py (Python's email package), test/corpus/dump_perl.pl (Perl's
// MIME::Parser) and test/support/mime-dump.ts (relayguard). One object per message:
//   {"file": F, "parts": [{"depth": 0, "type": "multipart/mixed"},
//                         {"depth": 1, "type": "text/plain", "size": N, "sha256": H, "filename": null}, ...]}
// or {"file": F, "error": "..."}. Every node in depth-first pre-order; a message/rfc822 node has
// the embedded message's root as its one child. Leaves carry the transfer-decoded size and hash,
// optionally sha256_text (the body with CRLF as LF and blanks at line ends removed, so that a
// line-ending convention of a decoder is told apart from different content) and "opaque" when the
// parser cannot give the bytes back.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface MimeNode {
  depth: number;
  type: string;
  size?: number;
  sha256?: string;
  sha256_text?: string;
  filename?: string | null;
  /** Every declared name (relayguard's dumps: what its content rule checks). */
  names?: string[];
  opaque?: string;
}

export interface MimeDump {
  file: string;
  parts?: MimeNode[];
  error?: string;
}

/**
 * How two readings of a message differ, worst first: one parser failed; the trees differ
 * (number, nesting or types of parts); a leaf's decoded bytes differ; a file name differs; the
 * bytes differ only in line endings or blanks at line ends (text-eol).
 */
export type DiffKind = 'error' | 'tree' | 'bytes' | 'filename' | 'text-eol';
const SEVERITY: DiffKind[] = ['error', 'tree', 'bytes', 'filename', 'text-eol'];

export interface Disagreement {
  file: string;
  /** The worst kind found. */
  kind: DiffKind;
  /** Every kind found. */
  kinds: DiffKind[];
  names: [string, string];
  /** A side-by-side listing of both trees, differing lines marked. */
  diff: string;
}

/** The repository root (the directory with package.json), from the compiled or the source file. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('mime-compare: no package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

/** Parses JSON lines into file -> dump; a line that is not a dump is an error naming the dumper. */
export function parseDumps(text: string, who: string): Map<string, MimeDump> {
  const out = new Map<string, MimeDump>();
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let d: MimeDump;
    try {
      d = JSON.parse(line) as MimeDump;
    } catch (e) {
      throw new Error(`${who} dump line ${i + 1} is not JSON (${(e as Error).message}): ${line.slice(0, 200)}`, {
        cause: e,
      });
    }
    if (typeof d.file !== 'string' || (!Array.isArray(d.parts) && typeof d.error !== 'string')) {
      throw new Error(`${who} dump line ${i + 1} has neither parts nor error: ${line.slice(0, 200)}`);
    }
    out.set(d.file, d);
  }
  return out;
}

export interface Dumper {
  name: string;
  command: string;
  args: string[];
  /** true: the file names go to standard input, one a line; false: they are arguments. */
  stdin: boolean;
}

export function dumpers(root = repoRoot()): Record<'python' | 'perl' | 'relayguard', Dumper> {
  return {
    python: {
      name: 'python',
      command: '/usr/bin/python3',
      args: [join(root, 'test/corpus/dump_python.py'), '-'],
      stdin: true,
    },
    perl: { name: 'perl', command: 'perl', args: [join(root, 'test/corpus/dump_perl.pl'), '-'], stdin: true },
    relayguard: {
      name: 'relayguard',
      command: process.execPath,
      args: [join(root, 'dist/test/support/mime-dump.js')],
      stdin: false,
    },
  };
}

/** relayguard's dumper is written with the new parser; it may not be on this branch yet. */
export function relayguardDumperPresent(root = repoRoot()): boolean {
  return existsSync(join(root, 'dist/test/support/mime-dump.js'));
}

/** Runs one dumper over many files in one process (batches of 200 for argument dumpers). */
export function runDumper(d: Dumper, files: string[]): Map<string, MimeDump> {
  const out = new Map<string, MimeDump>();
  const batches = d.stdin ? [files] : chunk(files, 200);
  for (const batch of batches) {
    const r = spawnSync(d.command, d.stdin ? d.args : [...d.args, ...batch], {
      input: d.stdin ? batch.join('\n') + '\n' : undefined,
      maxBuffer: 256 * 1024 * 1024,
      encoding: 'utf8',
    });
    if (r.error) throw new Error(`${d.name} dumper did not start: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`${d.name} dumper exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
    for (const [k, v] of parseDumps(r.stdout, d.name)) out.set(k, v);
  }
  for (const f of files) if (!out.has(f)) throw new Error(`${d.name} dumper wrote nothing for ${f}`);
  return out;
}

function chunk<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

const isLeaf = (n: MimeNode) => n.sha256 !== undefined || n.opaque !== undefined;

/**
 * The media type without what a parser kept after the subtype (parameters written without a
 * ";": Python keeps them in the type string, MIME::Parser and relayguard drop them).
 */
function mediaType(type: string): string {
  return /^[^\s/;]+\/[^\s;]+/.exec(type)?.[0] ?? type;
}

/** The shape of a node: what must agree for two trees to be the same tree. */
function shape(n: MimeNode): string {
  return `${'  '.repeat(n.depth)}${mediaType(n.type)}${isLeaf(n) ? '' : ' {'}`;
}

function describe(n: MimeNode): string {
  if (!isLeaf(n)) return shape(n);
  const body = n.opaque !== undefined ? 'opaque' : `${n.size} B ${n.sha256!.slice(0, 10)}`;
  const name = n.filename === null || n.filename === undefined ? '' : ` "${n.filename}"`;
  return `${shape(n)} [${body}]${name}`;
}

/** The ways two leaves at the same place differ. */
function leafKinds(a: MimeNode, b: MimeNode): DiffKind[] {
  const kinds: DiffKind[] = [];
  if (a.sha256 !== undefined && b.sha256 !== undefined && a.sha256 !== b.sha256) {
    const sameText = a.sha256_text !== undefined && a.sha256_text === b.sha256_text;
    kinds.push(sameText && a.type.startsWith('text/') ? 'text-eol' : 'bytes');
  }
  if (unquotedName(a.filename) !== unquotedName(b.filename)) kinds.push('filename');
  return kinds;
}

/** null when both parsers read the message the same way. */
export function compareDumps(a: MimeDump, b: MimeDump, names: [string, string]): Disagreement | null {
  const kinds = new Set<DiffKind>();
  if (a.error !== undefined || b.error !== undefined) {
    if (a.error !== undefined && b.error !== undefined) return null; // both refuse the message
    kinds.add('error');
  } else {
    const pa = a.parts!;
    const pb = b.parts!;
    if (pa.length !== pb.length || pa.some((n, i) => shape(n) !== shape(pb[i]!))) kinds.add('tree');
    else pa.forEach((n, i) => leafKinds(n, pb[i]!).forEach((k) => kinds.add(k)));
  }
  if (kinds.size === 0) return null;
  const sorted = SEVERITY.filter((k) => kinds.has(k));
  return { file: a.file, kind: sorted[0]!, kinds: sorted, names, diff: sideBySide(a, b, names) };
}

/** Lines of one reading, for the side-by-side diff. */
export function renderDump(d: MimeDump): string[] {
  return d.error !== undefined ? [`error: ${d.error}`] : d.parts!.map(describe);
}

/**
 * Both readings side by side, aligned on the tree shape (longest common subsequence), with "="
 * for lines that agree, "~" for a leaf at the same place that differs, "<" and ">" for a node
 * only one parser sees.
 */
export function sideBySide(a: MimeDump, b: MimeDump, names: [string, string]): string {
  const la = a.parts ?? [];
  const lb = b.parts ?? [];
  const ra = renderDump(a);
  const rb = renderDump(b);
  const rows: Array<[string, string, string]> = [];
  if (a.error !== undefined || b.error !== undefined) {
    for (let i = 0; i < Math.max(ra.length, rb.length); i++) rows.push(['!', ra[i] ?? '', rb[i] ?? '']);
  } else {
    const sa = la.map(shape);
    const sb = lb.map(shape);
    const m = sa.length;
    const n = sb.length;
    const lcs: number[][] = Array.from({ length: m + 1 }, () => new Array<number>(n + 1).fill(0));
    for (let i = m - 1; i >= 0; i--)
      for (let j = n - 1; j >= 0; j--)
        lcs[i]![j] = sa[i] === sb[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    let i = 0;
    let j = 0;
    while (i < m || j < n) {
      if (i < m && j < n && sa[i] === sb[j]) {
        rows.push([leafKinds(la[i]!, lb[j]!).length ? '~' : '=', ra[i]!, rb[j]!]);
        i++;
        j++;
      } else if (j >= n || (i < m && lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) rows.push(['<', ra[i++]!, '']);
      else rows.push(['>', '', rb[j++]!]);
    }
  }
  const width = Math.min(60, Math.max(names[0].length, ...rows.map((r) => r[1].length)));
  const fit = (s: string) => (s.length > width ? s.slice(0, width - 1) + '…' : s.padEnd(width));
  return [`  ${fit(names[0])} | ${names[1]}`, ...rows.map(([m, x, y]) => `${m} ${fit(x)} | ${y}`)].join('\n');
}

/** A readable report of many disagreements, grouped by kind, with counts. */
export function formatReport(title: string, ds: Disagreement[]): string {
  if (ds.length === 0) return `${title}: none`;
  const byKind = new Map<DiffKind, Disagreement[]>();
  for (const d of ds) byKind.set(d.kind, [...(byKind.get(d.kind) ?? []), d]);
  const counts = SEVERITY.filter((k) => byKind.has(k)).map((k) => `${k} ${byKind.get(k)!.length}`);
  const blocks = ds.map((d) => `--- ${d.file} (${d.kinds.join(', ')})\n${d.diff}`);
  return `${title}: ${ds.length} (${counts.join(', ')})\n${blocks.join('\n')}`;
}

/** Quotes left unbalanced around a file name (a truncated field) are not part of it. */
export function unquotedName(name: string | null | undefined): string | null {
  if (!name) return null;
  return (
    name
      .trim()
      .replace(/^["']+|["']+$/g, '')
      .trim() || null
  );
}
