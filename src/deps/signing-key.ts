// The gateway's own signing keys (ARC seal, outbound DKIM): read and checked when the policy is
// loaded, so a missing, unreadable or wrong key is a `relayguard validate` error, not a message
// that leaves unsigned at run time. Also the DNS TXT record that publishes the public half.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

export type SigningAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** RFC 8301: verifiers must accept 1024 to 4096 bits; below 1024 they must not. */
export const MIN_RSA_BITS = 1024;

/** The key in `path` as PKCS#8 PEM, or an error message that names the file and the problem. */
export function readSigningKey(path: string, algorithm: SigningAlgorithm): { pem: string } | { error: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return {
      error: `cannot read private key file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch (err) {
    return { error: `${path} is not a PEM private key: ${(err as Error).message}` };
  }
  const want = algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
  if (key.asymmetricKeyType !== want)
    return { error: `${path} holds a ${key.asymmetricKeyType ?? 'unknown'} key, ${algorithm} needs ${want}` };
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (want === 'rsa' && (bits ?? 0) < MIN_RSA_BITS)
    return { error: `${path}: a ${bits}-bit RSA key is too short (at least ${MIN_RSA_BITS}, RFC 8301)` };
  return { pem: key.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** Name and value of the TXT record that publishes the key: <selector>._domainkey.<domain>. */
export function dkimTxtRecord(pem: string, domain: string, selector: string): { name: string; value: string } {
  const pub = createPublicKey(pem);
  const der = pub.export({ type: 'spki', format: 'der' });
  // Ed25519 (RFC 8463): the raw 32-byte key, the end of the SubjectPublicKeyInfo.
  const value =
    pub.asymmetricKeyType === 'ed25519'
      ? `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`
      : `v=DKIM1; k=rsa; p=${der.toString('base64')}`;
  return { name: `${selector}._domainkey.${domain}`, value };
}
