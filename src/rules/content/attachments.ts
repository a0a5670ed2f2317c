// Attachment checks by name and type. A name is judged the way Windows would open it: by its
// LAST extension, after the characters Windows ignores or never shows are removed, so
// "invoice.pdf.exe", "INVOICE.EXE", "setup.exe. . ." and "photo\u202Egpj.exe" are all ".exe".

/** Longest name shown in a reply or log line. */
const MAX_NAME_SHOWN = 80;

/** Bidi controls, zero-width characters and other format characters, plus C0/C1 controls. */
const HIDDEN_CHARS = /[\p{Cf}\p{Cc}]/gu;
/** Windows strips trailing dots and spaces from file names. */
const TRAILING_DOTS_SPACES = /[.\s]+$/u;

/** The file name part of a name that may carry a path (zip members do, "dir/sub/x.exe"). */
function baseName(name: string): string {
  const cut = Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\'));
  return cut >= 0 ? name.slice(cut + 1) : name;
}

function normalizeFileName(name: string): string {
  return baseName(name.normalize('NFC').replace(HIDDEN_CHARS, '')).replace(TRAILING_DOTS_SPACES, '').toLowerCase();
}

/** The last extension, lower-case, without the dot; null for names without one. */
function extensionOf(name: string): string | null {
  const norm = normalizeFileName(name);
  const dot = norm.lastIndexOf('.');
  if (dot < 0 || dot === norm.length - 1) return null;
  return norm.slice(dot + 1).trim();
}

/** The blocked extension of this name, or null. */
export function blockedExtension(name: string, blocked: ReadonlySet<string>): string | null {
  const ext = extensionOf(name);
  return ext !== null && blocked.has(ext) ? ext : null;
}

/** True when the media type is listed, exactly or by a "type/*" entry. */
export function typeBlocked(contentType: string, blocked: readonly string[]): boolean {
  const type = contentType.toLowerCase();
  const major = type.slice(0, type.indexOf('/') + 1);
  return blocked.some((b) => b === type || (b.endsWith('/*') && b.slice(0, -1) === major));
}

export function looksLikeZipName(name: string): boolean {
  return extensionOf(name) === 'zip';
}

export const ZIP_TYPES = ['application/zip', 'application/x-zip-compressed', 'application/x-zip', 'multipart/x-zip'];

/** A name as it may appear in a reply: shortened; the reply layer makes it ASCII. */
export function shownName(name: string): string {
  const clean = name.replace(HIDDEN_CHARS, '').replace(/"/g, "'");
  return clean.length > MAX_NAME_SHOWN ? `${clean.slice(0, MAX_NAME_SHOWN - 3)}...` : clean;
}
