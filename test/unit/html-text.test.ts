// The HTML-to-visible-text scanner shared by the content rule and the disclaimer: what a reader
// sees, and linear time on hostile markup (the message is the attacker's; a quadratic scan
// would hold the single milter thread, and with it every connection, for minutes).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { htmlToText as contentText } from '../../src/rules/content/text.js';
import { containsText, htmlToText as disclaimerText } from '../../src/mime/text-match.js';

/** Markup that made the old regular-expression version rescan the rest of the input per opener. */
const HOSTILE: Array<[string, string]> = [
  ['unclosed comments', '<!--'.repeat(200_000)],
  ['unclosed scripts', '<script'.repeat(200_000)],
  ['scripts never closed', '<script>'.repeat(100_000)],
  ['tags without ">"', '<a'.repeat(400_000)],
  ['block tags without ">"', '<br'.repeat(300_000)],
  ['entity starts', '&a'.repeat(400_000)],
];

describe('html-text', () => {
  // A quadratic scan takes minutes on these 0.8 MB inputs; a linear one well under a second.
  for (const [name, html] of HOSTILE) {
    it(`stays linear: ${name}`, { timeout: 20_000 }, () => {
      assert.equal(typeof disclaimerText(html), 'string');
      assert.equal(typeof contentText(html), 'string');
    });
  }

  it('shows text, hides comments, scripts, styles and head, breaks at block elements', () => {
    const html =
      '<html><head><title>T</title><style>p{}</style></head><body><p>One</p><div>Two<!-- hidden --></div><script>x()</script>three</body></html>';
    assert.equal(disclaimerText(html).replace(/\s+/g, ' ').trim(), 'One Two three');
  });

  it('an unterminated comment hides the rest, as in a browser', () => {
    assert.equal(disclaimerText('before<!-- never closed <p>Disclaimer</p>'), 'before');
  });

  it('decodes numeric and named references, names in any case, and nothing from a prototype', () => {
    assert.equal(disclaimerText('caf&#233; &#xE9; &Auml;&auml; &euro; &AMP;'), 'café é Ää € &');
    assert.equal(disclaimerText('&constructor; &toString; &__proto__;'), '&constructor; &toString; &__proto__;');
    assert.equal(contentText('a&ndash;b &constructor;'), 'a-b &constructor;');
  });

  it('the disclaimer check still finds a re-wrapped copy in HTML', () => {
    const copy = '<p>This email is <b>confidential</b>&nbsp;and\r\n intended only&hellip;</p>';
    assert.ok(containsText(disclaimerText(copy), 'This email is confidential and intended only\u2026'));
  });
});
