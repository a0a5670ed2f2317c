// Signed and encrypted content, in every form a disclaimer would break: S/MIME and PGP/MIME
// containers anywhere in the MIME tree, opaque S/MIME (application/pkcs7-mime, any smime-type),
// and inline PGP armour inside a text part. Changing one byte under a signature makes it fail.

/** Media types whose presence means "do not touch this message". */
const PROTECTED_TYPES = new Set([
  'multipart/signed',
  'multipart/encrypted',
  'application/pkcs7-mime',
  'application/x-pkcs7-mime',
  'application/pkcs7-signature',
  'application/x-pkcs7-signature',
  'application/pgp-encrypted',
  'application/pgp-signature',
]);

export function isProtectedType(contentType: string): boolean {
  return PROTECTED_TYPES.has(contentType.toLowerCase());
}

/** Armour headers of clear-signed and encrypted inline PGP (RFC 4880 section 6.2). */
const INLINE_PGP = /^-----BEGIN PGP (SIGNED MESSAGE|MESSAGE)-----[ \t]*\r?$/m;

/** Does this decoded text (any ASCII-compatible charset) carry inline PGP? */
export function findInlinePgp(decoded: Buffer): string | null {
  const m = INLINE_PGP.exec(decoded.toString('latin1'));
  return m ? `-----BEGIN PGP ${m[1]}-----` : null;
}
