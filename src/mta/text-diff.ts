// A unified diff of two small texts (main.cf: hundreds of lines), for showing what
// `postfix-config --apply` changed. Longest common subsequence by dynamic programming: O(n*m)
// memory is fine at this size; larger inputs are refused rather than slowly computed.
/** Lines per side above which no diff is computed (main.cf files are far smaller). */
const MAX_DIFF_LINES = 5000;
const CONTEXT = 2;

type Op = { kind: ' ' | '-' | '+'; text: string; a: number; b: number };

function lines(text: string): string[] {
  const l = text.split('\n');
  if (l[l.length - 1] === '') l.pop();
  return l;
}

function script(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  // lcs[i][j]: length of the LCS of a[i..] and b[j..]
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) ops.push({ kind: ' ', text: a[i]!, a: i++, b: j++ });
    // Removals before additions, as diff -u prints them.
    else if (i < n && (j >= m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!))
      ops.push({ kind: '-', text: a[i]!, a: i++, b: j });
    else ops.push({ kind: '+', text: b[j]!, a: i, b: j++ });
  }
  return ops;
}

/** `--- from` / `+++ to` and @@ hunks with two lines of context; "" when the texts are equal. */
export function unifiedDiff(before: string, after: string, fromName: string, toName: string): string {
  const a = lines(before);
  const b = lines(after);
  if (a.length > MAX_DIFF_LINES || b.length > MAX_DIFF_LINES)
    return `--- ${fromName}\n+++ ${toName}\n(more than ${MAX_DIFF_LINES} lines: compare the files with diff -u)\n`;
  const ops = script(a, b);
  const changed = ops.map((o, k) => (o.kind !== ' ' ? k : -1)).filter((k) => k >= 0);
  if (!changed.length) return '';
  const out = [`--- ${fromName}`, `+++ ${toName}`];
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - CONTEXT);
    let end = Math.min(ops.length - 1, changed[k]! + CONTEXT);
    while (k + 1 < changed.length && changed[k + 1]! - CONTEXT <= end + 1)
      end = Math.min(ops.length - 1, changed[++k]! + CONTEXT);
    k++;
    const hunk = ops.slice(start, end + 1);
    const aCount = hunk.filter((o) => o.kind !== '+').length;
    const bCount = hunk.filter((o) => o.kind !== '-').length;
    const aStart = hunk[0]!.a + (aCount ? 1 : 0);
    const bStart = hunk[0]!.b + (bCount ? 1 : 0);
    out.push(`@@ -${aStart},${aCount} +${bStart},${bCount} @@`);
    for (const o of hunk) out.push(`${o.kind}${o.text}`);
  }
  return out.join('\n') + '\n';
}
