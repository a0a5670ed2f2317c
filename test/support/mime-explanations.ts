// Explained shapes of disagreement between relayguard and both independent parsers, for the
// fuzzer (whose mutants have no names to list in a table, unlike the corpus): each is recognised
// from the message and the three readings. "open" ones are bugs found by the fuzzer and not fixed
// yet: reported on every run, and failed with RG_FUZZ_STRICT=1; the others are explained
// differences that carry no risk.
import type { MimeDump, MimeNode } from './mime-compare.js';

export interface Explanation {
  id: string;
  open: boolean;
  reason: string;
  applies(message: Buffer, rg: MimeDump, py: MimeDump, pl: MimeDump): boolean;
}

const VALID_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/;
const isLeaf = (n: MimeNode) => n.sha256 !== undefined || n.opaque !== undefined;
const shapeOf = (d: MimeDump) => (d.parts ?? []).map((n) => `${n.depth}:${isLeaf(n) ? 'leaf' : 'node'}`);
const sameShape = (a: MimeDump, b: MimeDump) => shapeOf(a).join() === shapeOf(b).join();

/** Same nodes, and every difference is one that `ok` accepts. */
function onlyDiffering(a: MimeDump, b: MimeDump, ok: (x: MimeNode, y: MimeNode) => boolean): boolean {
  if (!a.parts || !b.parts || !sameShape(a, b)) return false;
  return a.parts.every((x, i) => {
    const y = b.parts![i]!;
    const same = x.type === y.type && x.sha256 === y.sha256 && (x.filename ?? null) === (y.filename ?? null);
    return same || ok(x, y);
  });
}

export const FUZZ_EXPLANATIONS: Explanation[] = [
  {
    id: 'multipart-without-delimiters',
    open: false,
    reason:
      'A multipart whose body has no delimiter line is a leaf in all three; its bytes are the preamble. ' +
      'MIME::Parser shows nothing, Python the raw body (it never transfer-decodes a multipart), relayguard the ' +
      'body decoded with the declared Content-Transfer-Encoding (so its content rule sees what the body says; ' +
      'a duplicate Content-Type gives a reading with the other type too). Nothing is hidden.',
    applies: (_m, rg, py) =>
      onlyDiffering(rg, py, (x, y) => x.type === y.type && x.type.startsWith('multipart/') && isLeaf(x)),
  },
  {
    id: 'invalid-content-type',
    open: false,
    reason:
      'A Content-Type that is not type/subtype (parameters without ";", junk): each parser writes its own type ' +
      'string; the bytes and file names are the same.',
    applies: (_m, rg, py) =>
      onlyDiffering(rg, py, (x, y) => (!VALID_TYPE.test(x.type) || !VALID_TYPE.test(y.type)) && x.sha256 === y.sha256),
  },
  {
    id: 'message-headers-nested',
    open: false,
    reason:
      'message/rfc822-headers, message/disposition-notification and other message/* types but rfc822: ' +
      'relayguard parses them as an embedded message (a node with a header-only child), Perl and clients show ' +
      'one text leaf, Python parses them into header blocks (dump_python.py: an opaque leaf). The same as ' +
      'RELAYGUARD_KNOWN in the corpus test; nothing in them is an attachment.',
    applies: (_m, rg) =>
      (rg.parts ?? []).some(
        (n) => !isLeaf(n) && /^message\//.test(n.type) && n.type !== 'message/rfc822' && n.type !== 'message/global',
      ),
  },
  {
    id: 'unterminated-quoted-filename',
    open: false,
    reason:
      'A quoted file name that is never closed (the mutant ends inside a header): Python keeps the opening quote ' +
      'in the name, relayguard drops it; the name is the same otherwise.',
    applies: (_m, rg, py) =>
      onlyDiffering(
        rg,
        py,
        (x, y) =>
          x.sha256 === y.sha256 &&
          x.type === y.type &&
          (x.filename ?? '').replace(/^"/, '') === (y.filename ?? '').replace(/^"/, ''),
      ),
  },
  {
    id: 'inner-boundary-conflicts-with-outer',
    open: true,
    reason:
      'OPEN: an inner multipart whose boundary is the outer one, or the outer one followed by "--" (so that ' +
      '"--outer--" is also an inner delimiter). Python lets the outer boundary win, MIME::Parser the inner ' +
      'one. relayguard reads a plain case both ways since 07f2459, but when the message has another ' +
      'ambiguity too (a header line without a colon, a duplicate Content-Type) its readings are not ' +
      'combined: no reading nests the parts as MIME::Parser does, so an attachment MIME::Parser shows is ' +
      'never inspected (e.g. cpython msg_15 with a stray line before the image/gif part: xx.gif).',
    applies: (m) => {
      // Every boundary parameter in order, repeats kept (boundariesOf drops them).
      const bs = [...m.toString('latin1').matchAll(/boundary\s*=\s*(?:"([^"\r\n]*)"|([^\s;"]+))/gi)].map(
        (x) => (x[1] ?? x[2])!,
      );
      return bs.some((outer, i) => bs.some((inner, j) => j > i && (inner === outer || inner === `${outer}--`)));
    },
  },
];

/** The explanation that applies, open bugs first (a shape can look like a harmless one too). */
export function explain(message: Buffer, rg: MimeDump, py: MimeDump, pl: MimeDump): Explanation | undefined {
  return (
    FUZZ_EXPLANATIONS.filter((e) => e.open).find((e) => e.applies(message, rg, py, pl)) ??
    FUZZ_EXPLANATIONS.find((e) => e.applies(message, rg, py, pl))
  );
}
