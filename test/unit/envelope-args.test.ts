// check and milter-check take one envelope table (src/cli/envelope-args.ts): the same options,
// read the same way, named the same in both commands' usage.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { COMMAND_TEXTS } from '../../src/cli/command-list.js';
import { ENVELOPE_OPTIONS, envelopeOf, ONE_MESSAGE } from '../../src/cli/envelope-args.js';

const parse = (argv: string[]) => envelopeOf(parseArgs(argv, ENVELOPE_OPTIONS, ONE_MESSAGE));

describe('the envelope of check and milter-check', () => {
  it('reads every envelope option, and leaves out the ones not given', () => {
    const full = parse([
      '--client-ip',
      '192.0.2.7',
      '--helo',
      'mx.example',
      '--from',
      'a@example.test',
      '--rcpt',
      'b@example.test',
      '--rcpt',
      'c@example.test',
      '--auth',
      'alice',
      '--tls',
      'TLSv1.3',
      'm.eml',
    ]);
    assert.deepEqual(full, {
      envelope: {
        clientIp: '192.0.2.7',
        rcpts: ['b@example.test', 'c@example.test'],
        helo: 'mx.example',
        from: 'a@example.test',
        auth: 'alice',
        tls: 'TLSv1.3',
      },
      messageFile: 'm.eml',
    });
    assert.deepEqual(parse(['--client-ip', '2001:db8::1', '--rcpt', 'b@example.test', '-']), {
      envelope: { clientIp: '2001:db8::1', rcpts: ['b@example.test'] },
      messageFile: '-',
    });
  });

  it('says what is missing, in order: a client address, a recipient, the message', () => {
    const usage = (argv: string[], message: RegExp) =>
      assert.throws(() => parse(argv), { name: 'UsageError', message });
    usage([], /--client-ip IP is required/);
    usage(['--client-ip', 'not-an-ip', '--rcpt', 'b@example.test', 'm.eml'], /--client-ip IP is required/);
    usage(['--client-ip', '192.0.2.7'], /at least one --rcpt ADDR is required/);
    usage(['--client-ip', '192.0.2.7', '--rcpt', 'b@example.test'], /exactly one MESSAGE\.eml is required/);
    assert.throws(() => parse(['--client-ip', '192.0.2.7', '--rcpt', 'b@x.test', 'a.eml', 'b.eml']), UsageError);
  });

  it("both commands' usage names every envelope option", () => {
    for (const name of ['check', 'milter-check']) {
      const usage = COMMAND_TEXTS.find((c) => c.name === name)!.usage;
      for (const option of Object.keys(ENVELOPE_OPTIONS))
        assert.ok(usage.includes(`--${option}`), `${name}'s usage lacks --${option}: ${usage}`);
    }
  });
});
