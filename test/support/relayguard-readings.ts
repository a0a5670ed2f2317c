// relayguard's readings of a message, in the common dump format: the default reading first, then
// every other reading the parser offers for what it found ambiguous (otherReadings: duplicate
// Content-Type or Content-Transfer-Encoding fields, header lines that are not fields). The
// content rule inspects all of them, so a differential test has to compare all of them: a part
// that Python or Perl shows is inspected when any reading shows it.
import { readFileSync } from 'node:fs';
import { parseMessage } from '../../src/mime/parse/parser.js';
import { nextReadings } from '../../src/mime/parse/shared.js';
import { unquotedName, type MimeDump } from './mime-compare.js';
import { dumpParts } from './mime-dump.js';

export function relayguardReadings(file: string): MimeDump[] {
  try {
    const message = readFileSync(file);
    const first = parseMessage(message);
    const all = [first];
    for (let todo = nextReadings(all); todo.length; todo = nextReadings(all))
      all.push(...todo.map((reading) => parseMessage(message, { reading })));
    return all.map((p) => ({ file, parts: dumpParts(message, p) }));
  } catch (err) {
    return [{ file, error: (err as Error).message }];
  }
}

/**
 * The file names of the leaves of some dumps (what an attachment filter can match). The name of a
 * message/external-body part names a file outside the message (nothing to inspect), so it is left
 * out (Python shows it on its opaque leaf, the others do not). A quote left open at the start
 * of a name (a header cut short) is not part of it: Python keeps it, relayguard does not.
 */
export function leafNames(dumps: MimeDump[]): Set<string> {
  return new Set(
    dumps.flatMap((d) =>
      (d.parts ?? [])
        .filter((p) => p.type !== 'message/external-body')
        .flatMap((p) => (p.names ?? [p.filename]).map(unquotedName))
        .filter((f): f is string => !!f),
    ),
  );
}
