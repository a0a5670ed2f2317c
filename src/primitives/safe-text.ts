// Text from the network (macro values, envelope addresses, header values, reply texts) on its
// way to a place where a control character means something: a header field (a line break starts
// a new field: "queue-id=Q\nBcc: victim"), a text log line (a line break forges a line) or a
// terminal (ESC starts an escape sequence). Two treatments:
// - showable(): for log lines and terminals, every control character (C0, DEL, C1) and the
//   Unicode line and paragraph separators become a visible escape (\n, \r, \t, \x1b, \u2028),
//   so nothing is lost and nothing acts.
// - headerSafe(): for header values, a line break survives only as folding (CRLF or LF followed
//   by a space or tab, which continues the same field); any other CR or LF becomes a space, and
//   other control characters but TAB are removed.

/** C0 controls, DEL, C1 controls, LINE SEPARATOR, PARAGRAPH SEPARATOR. */
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

export function showable(text: string): string {
  return text.replace(
    CONTROLS,
    (c) =>
      NAMED[c] ??
      (c.charCodeAt(0) > 0xff
        ? `\\u${c.charCodeAt(0).toString(16)}`
        : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`),
  );
}

/** A line break that does not continue the field (not followed by a space or tab). */
const BARE_BREAK = /\r?\n(?![ \t])|\r(?!\n)/g;
/** Controls other than TAB, CR and LF. */
const OTHER_CONTROLS = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;

export function headerSafe(value: string): string {
  return value.replace(BARE_BREAK, ' ').replace(OTHER_CONTROLS, '');
}
