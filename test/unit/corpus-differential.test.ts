// The list of parts relayguard sees in real mail, compared with two independent parsers that mail
// software uses: Python's email package and Perl's MIME::Parser (issue 15: "a differential test
// compares relayguard's list of parts with Python's email package and MIME::Parser on the whole
// corpus"). The corpus is ~300 messages other projects wrote (test/corpus/SOURCES.md).
//
// Where Python and Perl disagree with each other the message is ambiguous: relayguard must then
// match one of them (and its content rule must inspect both readings, issue 15). Those messages
// are listed below with the reason; a listed message that stops disagreeing fails the test, so the
// table cannot rot. Everywhere else relayguard must read every message exactly as both do.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { loadCorpus, type CorpusEntry } from '../support/corpus.js';
import {
  compareDumps,
  dumpers,
  formatReport,
  runDumper,
  type DiffKind,
  type Disagreement,
  type MimeDump,
} from '../support/mime-compare.js';
import { PYTHON_PERL_KNOWN, RELAYGUARD_KNOWN } from './corpus-known-differences.js';
import { leafNames, relayguardReadings } from '../support/relayguard-readings.js';

let corpus: CorpusEntry[] = [];
const dumps: Record<string, Map<string, MimeDump>> = {};
/** relayguard's readings of each message (default first), in-process. */
const rgReadings = new Map<string, MimeDump[]>();

function by(who: string, e: CorpusEntry): MimeDump {
  const d = dumps[who]!.get(e.path);
  assert.ok(d, `${who} has no dump of ${e.name}`);
  return d;
}

describe('MIME parts of the real-world corpus: relayguard, Python, Perl', () => {
  before(() => {
    corpus = loadCorpus();
    const d = dumpers();
    const files = corpus.map((e) => e.path);
    dumps.python = runDumper(d.python, files);
    dumps.perl = runDumper(d.perl, files);
    for (const f of files) rgReadings.set(f, relayguardReadings(f));
  });

  it('the corpus has several hundred messages from several packages', () => {
    assert.ok(corpus.length >= 250, `only ${corpus.length} messages in the corpus`);
    assert.ok(new Set(corpus.map((e) => e.pkg)).size >= 6);
  });

  it('Python and Perl read every message alike, except the ambiguous ones listed with a reason', () => {
    const unexplained: Disagreement[] = [];
    const stale: string[] = [];
    for (const e of corpus) {
      const d = compareDumps(by('python', e), by('perl', e), ['python (email, compat32)', 'perl (MIME::Parser)']);
      const known = PYTHON_PERL_KNOWN.find((k) => k.files.includes(e.name));
      if (d && !(known && d.kinds.every((k) => known.kinds.includes(k)))) unexplained.push({ ...d, file: e.name });
      if (!d && known) stale.push(`${e.name} (listed under "${known.reason.slice(0, 60)}...")`);
    }
    const listed = PYTHON_PERL_KNOWN.flatMap((k) => k.files);
    const missing = listed.filter((f) => !corpus.some((e) => e.name === f));
    assert.deepEqual(missing, [], 'listed as known but not in the corpus');
    assert.deepEqual(stale, [], 'listed as a Python/Perl disagreement but they now agree: update the table');
    assert.equal(unexplained.length, 0, formatReport('unexplained Python/Perl disagreements', unexplained));
  });

  it('relayguard reads every message as Python and Perl do, and an ambiguous one as one of them in one of its readings', (t) => {
    const failures: Disagreement[] = [];
    const stale: string[] = [];
    const matched: Record<string, number> = { both: 0, python: 0, perl: 0, 'explained in RELAYGUARD_KNOWN': 0 };
    // Perl's quoted-printable line ends are not a different reading (text-eol); relayguard's
    // dumper gives no sha256_text, so byte-identical to Python where Python and Perl differ only
    // in line ends is the same reading as both.
    const same = (d: Disagreement | null, tolerate: DiffKind[]) => !d || d.kinds.every((k) => tolerate.includes(k));
    for (const e of corpus) {
      const readings = rgReadings.get(e.path)!;
      const py = by('python', e);
      const pl = by('perl', e);
      const pyPl = compareDumps(py, pl, ['python', 'perl']);
      const agree = same(pyPl, ['text-eol']);
      // Where Python and Perl agree, relayguard's default reading must be theirs; where they
      // do not, any of its readings may be the one that matches.
      const candidates = agree ? readings.slice(0, 1) : readings;
      const verdicts = candidates.map((r) => ({
        py: same(compareDumps(r, py, ['relayguard', 'python']), []),
        pl: same(compareDumps(r, pl, ['relayguard', 'perl']), ['text-eol']),
      }));
      const known = RELAYGUARD_KNOWN.find((k) => k.files.includes(e.name));
      if (verdicts.some((v) => v.py || v.pl)) {
        if (known && !known.attachmentsOnly) stale.push(e.name);
        if (agree) matched.both!++;
        else matched[verdicts.some((v) => v.py) ? 'python' : 'perl']!++;
        continue;
      }
      const vsPy = compareDumps(readings[0]!, py, ['relayguard', 'python'])!;
      const vsPl = compareDumps(readings[0]!, pl, ['relayguard', 'perl'])!;
      if (known && [...vsPy.kinds, ...vsPl.kinds].every((k) => known.kinds.includes(k))) {
        matched['explained in RELAYGUARD_KNOWN']!++;
        continue;
      }
      const tag = agree ? 'python and perl agree' : 'python and perl disagree';
      failures.push(
        { ...vsPy, file: `${e.name} (vs python; ${tag}; ${readings.length} readings)` },
        { ...vsPl, file: `${e.name} (vs perl; ${tag})` },
      );
    }
    t.diagnostic(`relayguard: ${JSON.stringify(matched)}`);
    assert.deepEqual(
      stale,
      [],
      'listed in RELAYGUARD_KNOWN but relayguard now reads them as Python or Perl: update the table',
    );
    assert.equal(failures.length, 0, formatReport('relayguard reads differently', failures));
  });

  it('relayguard inspects every attachment name that Python or Perl shows (in one of its readings)', (t) => {
    const missed: string[] = [];
    const open: string[] = [];
    for (const e of corpus) {
      const theirs = leafNames([by('python', e), by('perl', e)]);
      const mine = leafNames(rgReadings.get(e.path)!);
      const lost = [...theirs].filter((n) => !mine.has(n));
      const known = RELAYGUARD_KNOWN.find((k) => k.files.includes(e.name) && k.attachmentsMissed);
      if (lost.length && known) open.push(`${e.name}: ${lost.join(', ')} (${known.reason.slice(0, 80)}...)`);
      else if (lost.length) missed.push(`${e.name}: ${lost.join(', ')}`);
      else if (known)
        missed.push(
          `${e.name}: listed as missing attachments in RELAYGUARD_KNOWN but none is missed now: update the table`,
        );
    }
    if (open.length) t.diagnostic(`OPEN (issue 15/16, listed in RELAYGUARD_KNOWN): ${open.join('; ')}`);
    assert.deepEqual(missed, []);
  });
});
