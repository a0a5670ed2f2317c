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
  relayguardDumperPresent,
  runDumper,
  type DiffKind,
  type Disagreement,
  type MimeDump,
} from '../support/mime-compare.js';
import { PYTHON_PERL_KNOWN } from './corpus-known-differences.js';

let corpus: CorpusEntry[] = [];
const dumps: Record<string, Map<string, MimeDump>> = {};

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
    if (relayguardDumperPresent()) dumps.relayguard = runDumper(d.relayguard, files);
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

  it('relayguard reads every message as Python and Perl do, and an ambiguous one as one of them', (t) => {
    if (!dumps.relayguard) {
      t.skip('dist/test/support/mime-dump.js (relayguard\'s dumper, from the new parser) is not on this branch yet');
      return;
    }
    const failures: Disagreement[] = [];
    const matched: Record<string, number> = { both: 0, python: 0, perl: 0 };
    // Line-ending conventions of Perl's quoted-printable decoder are not a different reading.
    const same = (d: Disagreement | null, tolerate: DiffKind[]) => !d || d.kinds.every((k) => tolerate.includes(k));
    for (const e of corpus) {
      const rg = by('relayguard', e);
      const vsPy = compareDumps(rg, by('python', e), ['relayguard', 'python']);
      const vsPl = compareDumps(rg, by('perl', e), ['relayguard', 'perl']);
      const okPy = same(vsPy, []);
      const okPl = same(vsPl, ['text-eol']);
      if (okPy && okPl) matched.both!++;
      else if (okPy || okPl) {
        const pyPl = compareDumps(by('python', e), by('perl', e), ['python', 'perl']);
        if (same(pyPl, ['text-eol'])) failures.push({ ...(okPy ? vsPl! : vsPy!), file: `${e.name} (python and perl agree)` });
        else matched[okPy ? 'python' : 'perl']!++;
      } else {
        failures.push({ ...vsPy!, file: `${e.name} (vs python)` }, { ...vsPl!, file: `${e.name} (vs perl)` });
      }
    }
    t.diagnostic(`relayguard matches both on ${matched.both}, only python on ${matched.python}, only perl on ${matched.perl}`);
    assert.equal(failures.length, 0, formatReport('relayguard reads differently', failures));
  });
});
