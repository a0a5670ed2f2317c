// The disclaimer golden corpus: test/golden/disclaimer/NN-name.in.eml (CRLF) is what arrives,
// NN-name.out.eml what must be delivered, cases.json the envelope and the expected kind of
// result. Every case runs twice: through the rule in-process, and through `relayguard check`.
//
// How the .out.eml files were made: by running this test once with DISCLAIMER_GOLDEN_WRITE=1
// (which writes the in-process result instead of comparing), then reading every output against
// its input by eye: the disclaimer in the right parts and charset/encoding, nothing else moved.
// Regenerate the same way after an intended change, and review the diff before committing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CORPUS, loadCorpusPolicy, readCase, runDisclaimer, type CaseEnvelope } from '../golden/disclaimer/run-case.js';

const run = promisify(execFile);
const WRITE = process.env.DISCLAIMER_GOLDEN_WRITE === '1';
const cases = JSON.parse(readFileSync(join(CORPUS, 'cases.json'), 'utf8')) as Record<string, CaseEnvelope>;
const { settings, rule } = loadCorpusPolicy();
const INTERNAL = /^10\./;

describe('disclaimer golden corpus, in-process', () => {
  for (const [name, c] of Object.entries(cases)) {
    it(`${name}: ${c.note}`, async () => {
      const input = readCase(name, '.in.eml');
      const direction = INTERNAL.test(c.client_ip) ? 'outbound' : 'inbound';
      const { verdict, output } = await runDisclaimer(rule, settings, input, direction, c.from);
      if (WRITE) writeFileSync(join(CORPUS, `${name}.out.eml`), output);
      assert.equal(verdict.action, 'continue');
      if (c.expect === 'rewritten') {
        assert.ok(
          verdict.mods?.some((m) => m.type === 'replaceBody'),
          `no new body: ${JSON.stringify(verdict.details)}`,
        );
      } else {
        assert.equal(verdict.mods, undefined);
        assert.ok(verdict.details?.skipped, `a skip must say why: ${JSON.stringify(verdict.details)}`);
        assert.equal(verdict.details?.code, c.skip);
        assert.deepEqual(output, input);
      }
      assert.equal(output.toString('latin1'), readCase(name, '.out.eml').toString('latin1'));
    });
  }
});

describe('disclaimer golden corpus, message in small odd-sized chunks', () => {
  for (const [name, c] of Object.entries(cases)) {
    it(name, async () => {
      const direction = INTERNAL.test(c.client_ip) ? 'outbound' : 'inbound';
      const { output } = await runDisclaimer(rule, settings, readCase(name, '.in.eml'), direction, c.from, 7);
      assert.equal(output.toString('latin1'), readCase(name, '.out.eml').toString('latin1'));
    });
  }
});

describe('disclaimer golden corpus, through relayguard check', () => {
  // The CLI compiled next to this test (dist/src/cli/main.js).
  const cli = join(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
  const policy = join(CORPUS, 'policy.yaml');
  const dir = mkdtempSync(join(tmpdir(), 'relayguard-golden-'));
  for (const [name, c] of Object.entries(cases)) {
    it(name, async () => {
      const out = join(dir, `${name}.eml`);
      const args = [
        cli,
        'check',
        '--config',
        policy,
        '--client-ip',
        c.client_ip,
        '--from',
        c.from,
        ...c.rcpt.flatMap((r) => ['--rcpt', r]),
      ];
      await run(process.execPath, [...args, '--out', out, join(CORPUS, `${name}.in.eml`)]);
      assert.equal(readFileSync(out).toString('latin1'), readCase(name, '.out.eml').toString('latin1'));
    });
  }
  it('cleans up', () => rmSync(dir, { recursive: true, force: true }));
});
