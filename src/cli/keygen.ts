// relayguard keygen: the gateway's signing key (ARC seal, outbound DKIM) and the DNS TXT record
// that publishes it. An existing key file is never overwritten: it is read and its record is
// printed, so the same command answers "what do I publish?" for a key already in use.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { dkimTxtRecord, MIN_RSA_BITS, readSigningKey, type SigningAlgorithm } from '../deps/signing-key.js';
import { parseArgs, str, UsageError } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';

const MAX_RSA_BITS = 4096;
const DOMAIN = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** The record in zone-file syntax: TXT strings of at most 255 bytes (RFC 1035). */
export function zoneLine(name: string, value: string): string {
  const strings = (value.match(/.{1,255}/g) ?? []).map((s) => `"${s}"`);
  return `${name}. IN TXT ( ${strings.join(' ')} )`;
}

export const keygenCommand: Command = {
  ...about('keygen'),
  async run(argv) {
    const a = parseArgs(argv, {
      domain: { value: true },
      selector: { value: true },
      key: { value: true },
      algorithm: { value: true },
      bits: { value: true },
    });
    const domain = str(a, 'domain');
    const selector = str(a, 'selector');
    const file = str(a, 'key');
    if (!domain || !DOMAIN.test(domain))
      throw new UsageError('give --domain, the domain whose DNS publishes the key (d=)');
    if (!selector || !SELECTOR.test(selector)) throw new UsageError('give --selector, a DNS label (s=)');
    if (!file) throw new UsageError('give --key FILE: where the private key is (or is to be written)');
    const algorithm = (str(a, 'algorithm') ?? 'rsa-sha256') as SigningAlgorithm;
    if (algorithm !== 'rsa-sha256' && algorithm !== 'ed25519-sha256')
      throw new UsageError('--algorithm is rsa-sha256 or ed25519-sha256');
    const bits = Number(str(a, 'bits') ?? 2048);
    if (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS)
      throw new UsageError(`--bits is ${MIN_RSA_BITS} to ${MAX_RSA_BITS}`);

    let created = false;
    if (!existsSync(file)) {
      const pair =
        algorithm === 'rsa-sha256'
          ? generateKeyPairSync('rsa', { modulusLength: bits })
          : generateKeyPairSync('ed25519');
      // 'wx': fails if the file appeared meanwhile, so a key is never overwritten.
      writeFileSync(file, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
      created = true;
    }
    const key = readSigningKey(file, algorithm);
    if ('error' in key) {
      process.stderr.write(`${key.error}\n`);
      return 1;
    }
    const record = dkimTxtRecord(key.pem, domain.toLowerCase(), selector);
    process.stdout.write(
      `; ${created ? 'new key written to' : 'existing key'} ${file}; publish in the DNS zone of ${domain.toLowerCase()}:\n` +
        `${zoneLine(record.name, record.value)}\n`,
    );
    return 0;
  },
};
