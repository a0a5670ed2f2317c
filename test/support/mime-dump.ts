// relayguard's side of the differential MIME tests: one JSON line per message with every node
// in document order (containers with depth and type; leaves with the size and SHA-256 of their
// transfer-decoded bytes and the file name a client saves them under), the same format as
// test/corpus/dump_python.py and dump_perl.pl.
//   node dist/test/support/mime-dump.js FILE...
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseMessage } from '../../src/mime/parse/parser.js';
import { decodedBody } from '../../src/mime/parse/decode.js';
import type { MimeParse } from '../../src/mime/parse/types.js';

export interface DumpPart {
  depth: number;
  type: string;
  size?: number;
  sha256?: string;
  filename?: string | null;
  /** Every name the part declares (what the content rule checks); relayguard's dumps only. */
  names?: string[];
}

/** Containers with parts are nodes; everything else (a multipart without parts too) is a leaf. */
export function dumpParts(message: Buffer, parse: MimeParse = parseMessage(message)): DumpPart[] {
  return parse.parts.map((p) => {
    const container = (p.kind === 'multipart' && !p.noParts) || (p.kind === 'message' && p.children.length > 0);
    if (container) return { depth: p.depth, type: p.contentType };
    // A multipart without parts reads as its preamble (Python's email package: the payload).
    const range = p.kind === 'multipart' ? { ...p, bodyEnd: p.preambleEnd } : p;
    const body = decodedBody(message, range);
    return {
      depth: p.depth,
      type: p.contentType,
      size: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      filename: p.filename,
      names: p.names,
    };
  });
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ''))) {
  for (const file of process.argv.slice(2)) {
    try {
      process.stdout.write(JSON.stringify({ file, parts: dumpParts(readFileSync(file)) }) + '\n');
    } catch (err) {
      process.stdout.write(JSON.stringify({ file, error: (err as Error).message }) + '\n');
    }
  }
}
