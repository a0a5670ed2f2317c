// A deterministic MIME mutation fuzzer (issue 16): takes seed messages and produces mutants that
// stress the places where parsers disagree: boundary lines (trailing blanks, prefixes, missing or
// removed delimiters), header blocks (lines without a colon, duplicate Content-Type, folding,
// case, blank line missing), transfer encodings (URL-safe base64 characters, x-uuencode, odd
// encoding names) and line endings (CRLF/LF mixes). The same (seed, count) always gives the same
// mutants, so a disagreement found once can be replayed by its name.
//
// Messages are handled as latin1 strings: one character per byte, so no mutation changes bytes
// it does not touch.

export interface Seed {
  name: string;
  message: Buffer;
}

export interface Mutant {
  /** "<seed name>#<index>" plus the operations applied, e.g. "attack-x#12 fold-content-type,lf-mix". */
  name: string;
  message: Buffer;
  ops: string[];
}

/** mulberry32: small, fast, good enough to pick mutations; seeded, so runs repeat. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Boundaries declared in the message (quoted or not), in order of appearance. */
export function boundariesOf(msg: string): string[] {
  const out: string[] = [];
  const re = /boundary\s*=\s*(?:"([^"\r\n]*)"|([^\s;"]+))/gi;
  for (let m = re.exec(msg); m; m = re.exec(msg)) out.push(m[1] ?? m[2]!);
  return [...new Set(out)];
}

const eol = (msg: string) => (msg.includes('\r\n') ? '\r\n' : '\n');

/** Start offsets of every line (after each line break). */
function lineStarts(msg: string): number[] {
  const out = [0];
  for (let i = msg.indexOf('\n'); i >= 0 && i + 1 < msg.length; i = msg.indexOf('\n', i + 1)) out.push(i + 1);
  return out;
}

/** Offsets of the lines that are delimiters of a declared boundary (close delimiters included). */
function delimiterLines(msg: string): Array<{ at: number; boundary: string; close: boolean; length: number }> {
  const bs = boundariesOf(msg);
  const out: Array<{ at: number; boundary: string; close: boolean; length: number }> = [];
  for (const at of lineStarts(msg)) {
    if (!msg.startsWith('--', at)) continue;
    const end = msg.indexOf('\n', at);
    const line = msg.slice(at, end < 0 ? msg.length : end).replace(/\r$/, '');
    // The longest boundary that matches, so "b" does not claim "--b-inner".
    const b = bs.filter((x) => line.startsWith(`--${x}`)).sort((x, y) => y.length - x.length)[0];
    if (b === undefined) continue;
    const rest = line.slice(2 + b.length);
    if (!/^(--)?[ \t]*$/.test(rest)) continue;
    out.push({ at, boundary: b, close: rest.startsWith('--'), length: line.length });
  }
  return out;
}

/** Offsets of header lines "Name:" in any header block (top-level or part). */
function headerLines(msg: string, name: RegExp): number[] {
  return lineStarts(msg).filter((at) => name.test(msg.slice(at, at + 80)));
}

type Mutation = (msg: string, r: Rand) => string | null;

/** Each returns the mutated message, or null when it does not apply to this message. */
export const MUTATIONS: Record<string, Mutation> = {
  'boundary-trailing-blanks': (msg, r) => {
    const ds = delimiterLines(msg);
    if (!ds.length) return null;
    const d = pick(r, ds);
    const pos = d.at + d.length;
    return msg.slice(0, pos) + pick(r, [' ', '\t', '   ', ' \t ']) + msg.slice(pos);
  },
  'drop-close-delimiter': (msg, r) => {
    const ds = delimiterLines(msg).filter((d) => d.close);
    if (!ds.length) return null;
    const d = pick(r, ds);
    const end = msg.indexOf('\n', d.at);
    return msg.slice(0, d.at) + (end < 0 ? '' : msg.slice(end + 1));
  },
  'drop-delimiter': (msg, r) => {
    const ds = delimiterLines(msg).filter((d) => !d.close);
    if (ds.length < 2) return null;
    const d = pick(r, ds.slice(1));
    const end = msg.indexOf('\n', d.at);
    return msg.slice(0, d.at) + (end < 0 ? '' : msg.slice(end + 1));
  },
  'boundary-as-prefix': (msg, r) => {
    // Rename an inner boundary to the outer one plus a suffix: "--outer" is then a prefix of it.
    const bs = boundariesOf(msg);
    if (bs.length < 2) return null;
    const inner = pick(r, bs.slice(1));
    const renamed = `${bs[0]}${pick(r, ['-x', '_inner', '--', '0'])}`;
    return msg.split(inner).join(renamed);
  },
  'same-boundary-nested': (msg, r) => {
    const bs = boundariesOf(msg);
    if (bs.length < 2) return null;
    return msg.split(pick(r, bs.slice(1))).join(bs[0]);
  },
  'header-without-colon': (msg, r) => {
    const hs = headerLines(msg, /^content-type\s*:/i);
    if (!hs.length) return null;
    const at = pick(r, hs);
    return (
      msg.slice(0, at) +
      pick(r, ['X-Junk header line', 'name="evil.exe"', 'Content-Type text/plain', '>From nowhere']) +
      eol(msg) +
      msg.slice(at)
    );
  },
  'duplicate-content-type': (msg, r) => {
    const hs = headerLines(msg, /^content-type\s*:/i);
    if (!hs.length) return null;
    const at = pick(r, hs);
    const extra = pick(r, [
      'Content-Type: text/plain',
      'Content-Type: application/octet-stream; name="evil.exe"',
      'Content-Type: multipart/mixed; boundary="dup"',
    ]);
    const before = r() < 0.5;
    const end = msg.indexOf('\n', at) + 1;
    return before
      ? msg.slice(0, at) + extra + eol(msg) + msg.slice(at)
      : msg.slice(0, end) + extra + eol(msg) + msg.slice(end);
  },
  'fold-content-type': (msg, r) => {
    const hs = headerLines(msg, /^content-type\s*:[^\r\n]*;/i);
    if (!hs.length) return null;
    const at = pick(r, hs);
    const semi = msg.indexOf(';', at);
    return msg.slice(0, semi + 1) + eol(msg) + pick(r, ['\t', ' ', '   ']) + msg.slice(semi + 1).replace(/^ +/, '');
  },
  'case-change': (msg, r) => {
    const hs = headerLines(msg, /^content-(type|transfer-encoding|disposition)\s*:/i);
    if (!hs.length) return null;
    const at = pick(r, hs);
    const end = msg.indexOf('\n', at);
    const line = msg.slice(at, end < 0 ? msg.length : end);
    // Change the case of the name and value but never of a boundary value (case-sensitive).
    const changed = line.replace(/^([^:]*):(.*)$/, (_m, n: string, v: string) => {
      const up = r() < 0.5;
      const value = v.replace(
        /(boundary\s*=\s*)("[^"]*"|[^\s;]+)|([^=";]+)/gi,
        (all, bp: string | undefined, bv: string | undefined) =>
          bp !== undefined
            ? (up ? bp.toUpperCase() : bp.toLowerCase()) + bv
            : up
              ? all.toUpperCase()
              : all.toLowerCase(),
      );
      return `${up ? n.toUpperCase() : n.toLowerCase()}:${value}`;
    });
    return msg.slice(0, at) + changed + (end < 0 ? '' : msg.slice(end));
  },
  'lf-mix': (msg, r) => {
    // Turn some CRLF into LF (or some LF into CRLF in an LF message).
    const crlf = msg.includes('\r\n');
    let out = '';
    let last = 0;
    for (let i = msg.indexOf('\n'); i >= 0; i = msg.indexOf('\n', i + 1)) {
      if (r() < 0.3) {
        const cr = i > 0 && msg[i - 1] === '\r';
        if (crlf && cr) out += msg.slice(last, i - 1) + '\n';
        else if (!crlf && !cr) out += msg.slice(last, i) + '\r\n';
        else out += msg.slice(last, i + 1);
        last = i + 1;
      }
    }
    return out ? out + msg.slice(last) : null;
  },
  'urlsafe-base64': (msg, r) => {
    // In base64 bodies, write + and / as - and _ (the URL-safe alphabet), or sprinkle - and _.
    const re = /^([A-Za-z0-9+/]{16,}={0,2})\r?$/gm;
    if (!re.test(msg)) return null;
    const sprinkle = r() < 0.5;
    return msg.replace(re, (line: string) =>
      sprinkle
        ? line.replace(/(.{8})/g, (s) => (r() < 0.3 ? s + pick(r, ['-', '_']) : s))
        : line.replace(/\+/g, '-').replace(/\//g, '_'),
    );
  },
  'encoding-name': (msg, r) => {
    const hs = headerLines(msg, /^content-transfer-encoding\s*:/i);
    if (!hs.length) return null;
    const at = pick(r, hs);
    const end = msg.indexOf('\n', at);
    const lineEnd = end < 0 ? msg.length : msg[end - 1] === '\r' ? end - 1 : end;
    const value = msg.slice(at, lineEnd).replace(/^[^:]*:\s*/, '');
    const odd = pick(r, [
      value.toUpperCase(),
      ` ${value} `,
      value === 'base64' ? 'x-uuencode' : '8bits',
      'quoted printable',
      'binary',
      `"${value}"`,
      `${value} (comment)`,
    ]);
    return msg.slice(0, at) + `Content-Transfer-Encoding: ${odd}` + msg.slice(lineEnd);
  },
  'drop-part-blank-line': (msg, r) => {
    // Remove the blank line between a part's headers and its body.
    const ds = delimiterLines(msg).filter((d) => !d.close);
    if (!ds.length) return null;
    const d = pick(r, ds);
    const m = /\r?\n\r?\n/.exec(msg.slice(d.at));
    if (!m) return null;
    const at = d.at + m.index;
    return msg.slice(0, at) + msg.slice(at + m[0].length - (m[0].startsWith('\r') ? 2 : 1));
  },
  'quote-boundary': (msg, r) => {
    const m = /boundary\s*=\s*("?)([^"\s;]+)\1/i.exec(msg);
    if (!m) return null;
    const replacement = m[1] ? `boundary=${m[2]}` : `boundary="${m[2]}"`;
    return (
      msg.slice(0, m.index) +
      (r() < 0.5 ? replacement : replacement.replace('boundary=', 'boundary = ')) +
      msg.slice(m.index + m[0].length)
    );
  },
  'truncate-tail': (msg, r) => {
    if (msg.length < 200) return null;
    return msg.slice(0, Math.floor(msg.length * (0.6 + 0.35 * r())));
  },
};

export const MUTATION_NAMES = Object.keys(MUTATIONS);

/** `count` mutants, each 1 to 3 mutations applied to a seed; deterministic for a given `seed`. */
export function mutate(seeds: Seed[], count: number, seed: number): Mutant[] {
  if (!seeds.length) throw new Error('mime-mutate: no seed messages');
  const r = prng(seed);
  const out: Mutant[] = [];
  for (let i = 0; i < count; i++) {
    const s = seeds[i % seeds.length]!;
    let msg = s.message.toString('latin1');
    const ops: string[] = [];
    const wanted = 1 + Math.floor(r() * 3);
    for (let tries = 0; ops.length < wanted && tries < 12; tries++) {
      const name = pick(r, MUTATION_NAMES);
      const next = MUTATIONS[name]!(msg, r);
      if (next === null || next === msg) continue;
      msg = next;
      ops.push(name);
    }
    out.push({ name: `${s.name}#${i} ${ops.join(',') || 'unchanged'}`, message: Buffer.from(msg, 'latin1'), ops });
  }
  return out;
}
