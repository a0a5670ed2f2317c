// relayguard keygen: writes a key only where there is none, prints the record it publishes, and
// refuses what it cannot make.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { captureCommand } from '../support/capture-output.js';
import { UsageError } from '../../src/cli/args.js';
import { keygenCommand, zoneLine } from '../../src/cli/keygen.js';
import { dkimTxtRecord } from '../../src/deps/signing-key.js';

const dir = mkdtempSync(join(tmpdir(), 'relayguard-keygen-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const capture = (argv: string[]) => captureCommand(() => keygenCommand.run(argv));

describe('relayguard keygen', () => {
  it('writes a 0600 key once, then prints the same record for it without touching it', async () => {
    const file = join(dir, 'arc.pem');
    const first = await capture(['--domain', 'Example.TEST', '--selector', 'arc2026', '--key', file]);
    assert.equal(first.code, 0, first.err);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const pem = readFileSync(file, 'utf8');
    assert.equal(createPrivateKey(pem).asymmetricKeyDetails?.modulusLength, 2048);
    const record = dkimTxtRecord(pem, 'example.test', 'arc2026');
    assert.ok(first.out.includes(zoneLine(record.name, record.value)), first.out);
    const again = await capture(['--domain', 'example.test', '--selector', 'arc2026', '--key', file]);
    assert.equal(readFileSync(file, 'utf8'), pem, 'not overwritten');
    assert.match(again.out, /existing key/);
    assert.ok(again.out.includes(zoneLine(record.name, record.value)));
  });

  it('ed25519 keys and their k=ed25519 record', async () => {
    const r = await capture([
      '--domain',
      'example.test',
      '--selector',
      'ed',
      '--key',
      join(dir, 'ed.pem'),
      '--algorithm',
      'ed25519-sha256',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^ed\._domainkey\.example\.test\. IN TXT \( "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=" \)$/m);
  });

  it('refuses a key of the wrong type, a file that is no key, and bad arguments', async () => {
    const notKey = join(dir, 'junk.pem');
    writeFileSync(notKey, 'junk');
    assert.match(
      (await capture(['--domain', 'example.test', '--selector', 's', '--key', notKey])).err,
      /not a PEM private key/,
    );
    assert.match(
      (
        await capture([
          '--domain',
          'example.test',
          '--selector',
          'arc2026',
          '--key',
          join(dir, 'arc.pem'),
          '--algorithm',
          'ed25519-sha256',
        ])
      ).err,
      /holds a rsa key/,
    );
    await assert.rejects(
      capture(['--domain', 'bad domain', '--selector', 's', '--key', join(dir, 'x.pem')]),
      UsageError,
    );
    await assert.rejects(
      capture(['--domain', 'example.test', '--selector', 's', '--key', join(dir, 'x.pem'), '--bits', '512']),
      UsageError,
    );
    assert.equal(zoneLine('a.b', 'x'.repeat(300)), `a.b. IN TXT ( "${'x'.repeat(255)}" "${'x'.repeat(45)}" )`);
  });
});
