// Messages of the real-world corpus that Python's email package (compat32) and Perl's
// MIME::Parser read differently, grouped by the reason. Found and explained by reading each
// message (test/unit/corpus-differential.test.ts prints the side-by-side trees). These are the
// ambiguous shapes: relayguard must read each one as one of the two parsers, and its content
// rule must inspect every reading (issue 15).
import type { DiffKind } from '../support/mime-compare.js';

export interface KnownDifference {
  files: string[];
  /** The kinds of difference allowed for these files (see DiffKind). */
  kinds: DiffKind[];
  reason: string;
  /** relayguard only: an open bug, attachments Python or Perl shows that no reading of relayguard has. */
  attachmentsMissed?: boolean;
  /** relayguard only: the entry is about missed attachments alone; the reading matches one parser. */
  attachmentsOnly?: boolean;
}

export const PYTHON_PERL_KNOWN: KnownDifference[] = [
  {
    reason:
      'A header block with a line that is neither a header field nor a fold, and no blank line before the body ' +
      '("Message removed" right under Content-Type: message/rfc822, a preamble or a name= line straight after ' +
      'the headers): Python ends the headers there and starts the body with that line; MIME::Parser skips the ' +
      'line and keeps reading headers up to the next blank line, so it loses the body (empty text), or swallows ' +
      'a boundary line and hides the text part after it (qp-utf8-header-no-break), or picks up a later ' +
      'Content-Disposition file name (bad-header-wrap). An attacker can hide a part from one reading this way.',
    kinds: ['tree', 'bytes', 'filename'],
    files: [
      'cpython/msg_35.txt.eml',
      'enmime/low-quality_bad-header-wrap.raw.eml',
      'enmime/mail_qp-utf8-header-no-break.raw.eml',
      'mailman/handlers_tests_data_c_a_non_ascii.eml.eml',
      'flufl-bounce/dsn_13.txt.eml',
      'flufl-bounce/dsn_14.txt.eml',
      'flufl-bounce/dsn_15.txt.eml',
      'flufl-bounce/dsn_16.txt.eml',
      'flufl-bounce/groupwise_02.txt.eml',
      'flufl-bounce/hotpop_01.txt.eml',
      'flufl-bounce/microsoft_01.txt.eml',
      'flufl-bounce/microsoft_04.txt.eml',
      'flufl-bounce/netscape_01.txt.eml',
      'flufl-bounce/postfix_01.txt.eml',
      'flufl-bounce/postfix_03.txt.eml',
      'flufl-bounce/postfix_04.txt.eml',
      'flufl-bounce/postfix_05.txt.eml',
      'flufl-bounce/simple_01.txt.eml',
      'flufl-bounce/simple_15.txt.eml',
      'flufl-bounce/simple_19.txt.eml',
      'flufl-bounce/simple_25.txt.eml',
      'flufl-bounce/simple_27.txt.eml',
      'flufl-bounce/simple_31.txt.eml',
      'flufl-bounce/simple_38.txt.eml',
      'flufl-bounce/sina_01.txt.eml',
    ],
  },
  {
    reason:
      'Quoted-printable decoding: MIME::QuotedPrint turns CRLF into LF and removes blanks at line ends (RFC 2045 ' +
      'says a decoder should), Python keeps both. Same text for a reader (sha256_text agrees).',
    kinds: ['text-eol'],
    files: [
      'enmime/mail_attachment-only-inline-quoted-printable.raw.eml',
      'enmime/mail_non-mime-html-charset-header-only.raw.eml',
      'enmime/mail_other-multi-related.raw.eml',
      'enmime/mail_qp-utf8-header-recursed.raw.eml',
      'enmime/mail_qp-utf8-header.raw.eml',
      'enmime/mail_quoted-printable-mime.raw.eml',
      'enmime/parts_quoted-printable-invalid.raw.eml',
      'hyperkitty/unknown-charset.txt.eml',
    ],
  },
  {
    reason:
      'No final boundary: whether the last line break before the end of the message belongs to the last part ' +
      '(MIME::Parser keeps it, Python drops it, as it would before a delimiter); with quoted-printable CRLF text ' +
      'the line-ending rule above adds to it.',
    kinds: ['bytes'],
    files: [
      'enmime/parts_badboundary.raw.eml',
      'enmime/parts_multimixed-no-closing-boundary.raw.eml',
      'flufl-bounce/dsn_03.txt.eml',
    ],
  },
  {
    reason:
      'Content-Type without a valid type/subtype ("text", "<html>", a parameter without the ";"): Python ' +
      'falls back to text/plain (or keeps the junk in the type when the ";" is missing), MIME::Parser keeps the ' +
      'word as the type. The bytes agree.',
    kinds: ['tree'],
    files: ['cpython/msg_14.txt.eml', 'enmime/parts_empty-ctype-bad-content.raw.eml'],
  },
  {
    reason:
      'A multipart body without any delimiter line: Python shows the body as the text of a multipart leaf, ' +
      'MIME::Parser treats it as preamble (RFC 2046: ignored) and shows an empty multipart.',
    kinds: ['bytes'],
    files: ['cpython/msg_17.txt.eml', 'cpython/msg_31.txt.eml'],
  },
  {
    reason:
      'The boundary given as an RFC 2231 parameter (boundary*=): Python decodes it, MIME::Parser does not see a boundary and shows no parts.',
    kinds: ['tree'],
    files: ['cpython/msg_33.txt.eml'],
  },
  {
    reason:
      'An inner multipart with the same boundary as the outer one: Python closes the inner multipart at once ' +
      '(an empty leaf) and loses the part after the inner close (msg_15: the image/gif attachment), ' +
      "MIME::Parser nests them and shows every part. The dangerous reading is Perl's.",
    kinds: ['tree'],
    files: ['cpython/msg_15.txt.eml', 'cpython/msg_39.txt.eml'],
  },
  {
    reason:
      'Boundary lines of enclosing multiparts inside a text part, with trailing blanks, and an inner multipart ' +
      'left open: the parsers close different parts at different lines.',
    kinds: ['tree'],
    files: ['cpython/msg_38.txt.eml'],
  },
  {
    reason:
      'Two delimiter lines in a row: MIME::Parser shows an empty text/plain part between them, Python shows none.',
    kinds: ['tree'],
    files: ['cpython/msg_37.txt.eml'],
  },
  {
    reason:
      'Base64 with text after the "=" padding (the epilogue after a broken close delimiter "--b-->", or a damaged ' +
      'body): Python stops decoding at the padding, MIME::Parser decodes on and appends bytes.',
    kinds: ['bytes'],
    files: ['enmime/mail_epilogue-sample.raw.eml', 'enmime/mail_mime-bad-content-transfer-encoding.raw.eml'],
  },
  {
    reason:
      'File names: raw 8-bit bytes in filename= (Python shows them as undecodable characters, MIME::Parser as ' +
      'none).',
    kinds: ['filename'],
    files: ['enmime/mail_mime-bad-8bit-filename.raw.eml'],
  },
  {
    reason:
      "x-uuencode: Python's uu decoder returns every line at its full length (549 bytes), MIME::Parser honours the " +
      'length character of each line (544 bytes, the same as the base64 twin of this message).',
    kinds: ['bytes'],
    files: ['clamav/clam.exe.mbox.uu.eml'],
  },
  {
    reason:
      'message/external-body: MIME::Parser parses its body (the phantom headers of the external part) as an ' +
      'embedded message; Python parses it into header blocks too, which dump_python.py shows as one opaque leaf, ' +
      'as clients show it. No content of the message is in either reading.',
    kinds: ['tree'],
    files: ['cpython/msg_36.txt.eml'],
  },
];

/**
 * Messages where no reading of relayguard (test/support/relayguard-readings.ts) is Python's or
 * Perl's, with the reason. Entries marked attachmentsMissed are open bugs, not explanations: a
 * client shows an attachment that the content rule never inspects.
 */
export const RELAYGUARD_KNOWN: KnownDifference[] = [
  {
    reason:
      'A Content-Type that is garbage (quotes and percent signs around the type): the parsers write different ' +
      "type strings for it (Python keeps a quote that relayguard's RFC 2045 token reading drops); the bytes " +
      'and the file name agree, and the type is not a valid type in any of them.',
    kinds: ['tree'],
    files: ['hyperkitty/unconvertable_msg-2.txt.eml'],
  },
];
