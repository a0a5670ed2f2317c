// The hand-made MIME attack shapes of issues 15 and 16, kept as named fixtures in
// test/fixtures/mime/NAME.eml, each with NAME.readings.json: what Python's email package and Perl's
// MIME::Parser show (their dumps), and the attachments a mail client shows in at least one
// reading ("must_see": relayguard's content rule has to inspect them, whatever its own reading).
//
//   node dist/test/support/mime-fixtures.js --record     rewrites every NAME.readings.json
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dumpers, repoRoot, runDumper, type MimeNode } from './mime-compare.js';

export const ABOUT: Record<string, string> = {
  'boundary-trailing-blanks':
    'Blanks and tabs after delimiter lines (RFC 2046 allows them); issue 16 finding 1: relayguard missed evil.exe.',
  'boundary-prefix':
    'The inner boundary "b-inner" starts with the outer one "b": "--b-inner" is not an outer delimiter.',
  'unterminated-inner-multipart':
    'An inner multipart without its close delimiter, then the outer delimiter and invoice.exe (issue 15): the outer delimiter closes the inner part.',
  'missing-final-boundary': 'The message ends without a close delimiter; the last part (a.zip) still counts.',
  'header-without-colon':
    'A line without a colon in a part header block: Python ends the headers there (evil.exe becomes text), Perl skips it and shows evil.exe.',
  'duplicate-content-type':
    'Two Content-Type fields in one part; both parsers take the first (text/plain) for a body that is an executable.',
  'urlsafe-base64': 'Base64 written with "-" and "_" (issue 16 finding 2): standard decoders skip those characters.',
  'x-uuencode': 'An attachment in Content-Transfer-Encoding: x-uuencode (issue 16 finding 2); both parsers decode it.',
  'case-changes':
    'Upper-case header names, types, parameter names and encoding names; the boundary value keeps its case.',
  'header-folding':
    'Content-Type, Content-Disposition and Content-Transfer-Encoding folded over lines: Python does not unfold the encoding name and shows the base64 text undecoded; Perl decodes it.',
  'crlf-lf-mix': 'CRLF in the top-level header, bare LF inside the parts, a CRLF delimiter in between.',
};

export interface Readings {
  about: string;
  python: MimeNode[] | { error: string };
  perl: MimeNode[] | { error: string };
  must_see: string[];
}

export function fixtureDir(): string {
  return join(repoRoot(), 'test/fixtures/mime');
}

export function fixtureNames(): string[] {
  return readdirSync(fixtureDir())
    .filter((f) => f.endsWith('.eml'))
    .map((f) => f.slice(0, -4))
    .sort();
}

export function loadReadings(name: string): Readings {
  return JSON.parse(readFileSync(join(fixtureDir(), `${name}.readings.json`), 'utf8')) as Readings;
}

/** Today's Python and Perl readings of every fixture, keyed by fixture name. */
export function currentReadings(): Map<string, Omit<Readings, 'about'>> {
  const files = fixtureNames().map((n) => join(fixtureDir(), `${n}.eml`));
  const d = dumpers();
  const py = runDumper(d.python, files);
  const pl = runDumper(d.perl, files);
  const out = new Map<string, Omit<Readings, 'about'>>();
  for (const [i, name] of fixtureNames().entries()) {
    const a = py.get(files[i]!)!;
    const b = pl.get(files[i]!)!;
    const reading = (x: typeof a) => x.parts ?? { error: x.error! };
    const names = [...(a.parts ?? []), ...(b.parts ?? [])].map((p) => p.filename).filter((f): f is string => !!f);
    out.set(name, { python: reading(a), perl: reading(b), must_see: [...new Set(names)].sort() });
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--record') {
  for (const [name, r] of currentReadings()) {
    const about = ABOUT[name];
    if (!about) throw new Error(`test/fixtures/mime/${name}.eml has no description in ABOUT`);
    writeFileSync(join(fixtureDir(), `${name}.readings.json`), JSON.stringify({ about, ...r }, null, 1) + '\n');
    console.log(`recorded ${name}`);
  }
}
