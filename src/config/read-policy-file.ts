// Reading a policy file without letting the file hurt the reader: only a regular file (a device
// such as /dev/zero or /dev/urandom, a FIFO or a directory is refused before a byte is read, and
// opening never blocks), at most MAX_POLICY_BYTES, valid UTF-8. YAML aliases are expanded with a
// bound (MAX_YAML_ALIASES) so an alias bomb is an error with its position, not a crash.
// serve's reload, validate and every command read policies through here; an error keeps the
// running policy (reload) and is reported as file:line:col, or "file: message" without a position.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { isAlias, visit, type Document, type LineCounter } from 'yaml';

/** A policy is a few hundred lines; 1 MiB leaves room for large network lists and stops a runaway file. */
export const MAX_POLICY_BYTES = 1024 * 1024;
/** Alias expansions per document (the yaml library's maxAliasCount); a policy needs a handful. */
export const MAX_YAML_ALIASES = 100;

export type PolicySource = { ok: true; text: string } | { ok: false; message: string };

export function readPolicySource(file: string): PolicySource {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait for ever.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return { ok: false, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { ok: false, message: `cannot read: not a regular file (${kindOf(st)})` };
    if (st.size > MAX_POLICY_BYTES)
      return {
        ok: false,
        message: `cannot read: ${st.size} bytes, more than the ${MAX_POLICY_BYTES} a policy file may have`,
      };
    // Read one byte more than allowed: a file that grows while being read is still bounded.
    const buf = Buffer.allocUnsafe(MAX_POLICY_BYTES + 1);
    let got = 0;
    for (;;) {
      const n = readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
      if (got > MAX_POLICY_BYTES)
        return { ok: false, message: `cannot read: more than the ${MAX_POLICY_BYTES} bytes a policy file may have` };
    }
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
    try {
      return { ok: true, text: text.decode(buf.subarray(0, got)) };
    } catch {
      return { ok: false, message: 'cannot read: not UTF-8 text' };
    }
  } catch (err) {
    return { ok: false, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  } finally {
    closeSync(fd);
  }
}

function kindOf(st: import('node:fs').Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/** The document as plain data, or the error of expanding it (an alias bomb) with the first alias's position. */
export function documentData(
  doc: Document,
  lc: LineCounter,
): { ok: true; data: unknown } | { ok: false; line: number; col: number; message: string } {
  try {
    return { ok: true, data: doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) };
  } catch (err) {
    let pos = { line: 1, col: 1 };
    visit(doc, {
      Alias(_key, node) {
        if (isAlias(node) && node.range) pos = lc.linePos(node.range[0]);
        return visit.BREAK;
      },
    });
    const why = /alias/i.test((err as Error).message)
      ? `aliases expand to too much (more than ${MAX_YAML_ALIASES} expansions): refused`
      : (err as Error).message;
    return { ok: false, ...pos, message: why };
  }
}
