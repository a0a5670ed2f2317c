import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { amount, listOf, oneOf, UsageError, whole, words } from '../../bench/lib/options.js';

const benchDir = fileURLToPath(new URL('../../bench/', import.meta.url));

describe('bench options', () => {
  it('a count is a whole number of at least its minimum', () => {
    assert.equal(whole('600', 'messages'), 600);
    assert.equal(whole('0', 'warmup', 0), 0);
    for (const bad of ['6OO', '', '1.5', '-1', '0', '1e3', ' 5', undefined])
      assert.throws(() => whole(bad, 'messages'), UsageError, `'${bad}' is refused`);
    assert.throws(() => whole('abc', 'messages'), /--messages: expected a whole number of at least 1, got 'abc'/);
  });

  it('an amount may have a fraction, never a sign or a unit', () => {
    assert.equal(amount('0.5', 'mb'), 0.5);
    assert.equal(amount('50', 'mb'), 50);
    for (const bad of ['50MB', '-1', '.5', '', undefined]) assert.throws(() => amount(bad, 'mb'), UsageError);
  });

  it('a choice is one of its list, and a list is made of them', () => {
    const sizes = ['text-5k', 'multipart-100k'] as const;
    assert.equal(oneOf('text-5k', 'size', sizes), 'text-5k');
    assert.throws(() => oneOf('text5k', 'size', sizes), /--size: 'text5k' is not one of text-5k, multipart-100k/);
    assert.deepEqual(listOf('multipart-100k,text-5k', 'sizes', sizes), ['multipart-100k', 'text-5k']);
    assert.throws(() => listOf('text-5k,big', 'sizes', sizes), /'big' is not one of/);
    assert.throws(() => listOf('', 'sizes', sizes), /expected a comma-separated list/);
  });

  it('node flags given as one value are split on white space', () => {
    assert.deepEqual(words(' --max-semi-space-size=4  --no-maglev '), ['--max-semi-space-size=4', '--no-maglev']);
    assert.deepEqual(words(undefined), []);
  });

  // The tools themselves (compiled next to this file's build): a bad option stops them with one
  // line and exit 2, before anything is started.
  for (const [tool, args, why] of [
    ['milter-load.js', ['--messages', '6OO'], /^milter-load: --messages: expected a whole number/],
    ['milter-load.js', ['--size', 'text5k'], /^milter-load: --size: 'text5k' is not one of text-5k, multipart-100k/],
    ['milter-load.js', ['--conections', '5'], /^milter-load: Unknown option '--conections'/],
    ['ab-cpu.js', ['--b-node-args', '--no-maglev'], /^ab-cpu: Option '--b-node-args' argument is ambiguous\. \(see/],
    ['ab-cpu.js', [], /^ab-cpu: --a \(the other build's main\.js\) is required/],
    ['profile-summary.js', [], /^profile-summary: usage: profile-summary\.js PROFILE\.cpuprofile/],
  ] as const) {
    it(`${tool} ${args.join(' ') || '(no options)'}: refused with one line`, () => {
      const r = spawnSync(process.execPath, [`${benchDir}${tool}`, ...args], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, why);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    });
  }
});
