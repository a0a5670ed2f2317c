// ops/exec.ts, the one way relayguard runs other programs: every limit (deadline, output cap)
// holds and says so, a program that is not there is named, and a failed run quotes its last lines.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { ExecError, pipeProgram, runChecked, runProgram, runProgramSync } from '../../src/ops/exec.js';
import { readSources } from '../support/layers.js';

const SRC = new URL('../../../src', import.meta.url).pathname;

test('no file of src/ but ops/exec.ts starts programs itself', () => {
  const others = [...readSources(SRC)]
    .filter(([file, text]) => file !== 'ops/exec.ts' && /from ['"](node:)?child_process['"]/.test(text))
    .map(([file]) => file);
  assert.deepEqual(others, []);
});

test('runProgramSync: stdout, or null when the program fails, is missing or runs too long', () => {
  assert.equal(runProgramSync('sh', ['-c', 'echo root:x:0:']), 'root:x:0:\n');
  assert.equal(runProgramSync('sh', ['-c', 'exit 2']), null);
  assert.equal(runProgramSync('/nonexistent/program', []), null);
  assert.equal(runProgramSync('sleep', ['5'], { timeoutMs: 100 }), null);
  assert.equal(runProgramSync('sh', ['-c', 'head -c 2000 /dev/zero'], { maxOutputBytes: 1000 }), null);
});

describe('runProgram / runChecked', () => {
  test('a non-zero exit is a result; runChecked makes it an error with the command line and the last lines', async () => {
    const r = await runProgram('sh', ['-c', 'echo out; echo one >&2; echo two >&2; exit 3']);
    assert.deepEqual(r, { code: 3, stdout: 'out\n', stderr: 'one\ntwo\n' });
    await assert.rejects(
      runChecked('sh', ['-c', 'echo a >&2; echo b >&2; echo c >&2; echo d >&2; exit 4']),
      (err: ExecError) => {
        assert.ok(err instanceof ExecError);
        assert.equal(err.exitCode, 4);
        assert.equal(err.message, 'sh -c echo a >&2; echo b >&2; echo c >&2; echo d >&2; exit 4: exit 4: b; c; d');
        return true;
      },
    );
    assert.equal(await runChecked('sh', ['-c', 'printf ok']), 'ok');
  });

  test('a program that is not there: "cannot run" with the reason', async () => {
    await assert.rejects(
      runProgram('/nonexistent/postqueue', ['-j']),
      /^ExecError: \/nonexistent\/postqueue -j: cannot run \/nonexistent\/postqueue \(ENOENT\)$/,
    );
  });

  test('the deadline stops a program that hangs', async () => {
    const t0 = Date.now();
    await assert.rejects(
      runProgram('sleep', ['10'], { timeoutMs: 200 }),
      /^ExecError: sleep 10: no answer within 200 ms; stopped$/,
    );
    assert.ok(Date.now() - t0 < 5000);
  });

  test('output over the cap is refused, output at the cap is accepted', async () => {
    assert.equal((await runProgram('head', ['-c', '1000', '/dev/zero'], { maxOutputBytes: 1000 })).stdout.length, 1000);
    await assert.rejects(
      runProgram('head', ['-c', '1001', '/dev/zero'], { maxOutputBytes: 1000 }),
      /printed more than 1000 bytes; stopped/,
    );
  });

  test('an abort signal stops the run', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(runProgram('sleep', ['10'], { signal: ac.signal }), /^ExecError: sleep 10: aborted$/);
  });
});

describe('pipeProgram', () => {
  test('streams stdout into the writable without ending it; a failure quotes stderr', async () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await pipeProgram('head', ['-c', '300000', '/dev/zero'], out);
    assert.equal(Buffer.concat(chunks).length, 300_000);
    assert.equal(out.writableEnded, false);
    await assert.rejects(
      pipeProgram('sh', ['-c', 'echo no such message >&2; exit 1'], out),
      /: exit 1: no such message$/,
    );
    await assert.rejects(
      pipeProgram('sleep', ['10'], out, { timeoutMs: 200 }),
      /stopped by SIGTERM \(no end within 200 ms\)/,
    );
    await assert.rejects(pipeProgram('/nonexistent/postcat', [], out), /cannot run \/nonexistent\/postcat \(ENOENT\)/);
  });
});
