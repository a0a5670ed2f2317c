// containsAnyText (with its cheap pre-test) must answer exactly what containsText answers:
// random haystacks built from pieces of the needle, quote markers, odd white space, case
// changes and the characters whose lower case is special.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { containsAnyText, containsText, normalizeForMatch } from '../../src/mime/text-match.js';
import { xorshift32 } from '../../bench/lib/stats.js';
import { normalizeSpace } from '../../src/rules/content/text.js';

const NEEDLES = [
  'This email is confidential. Please delete it.',
  'Vertraulich – nur für den Empfänger',
  'ΣΊΣΥΦΟΣ keeps rolling',
  '機密情報です',
];
const NOISE = [
  ' ',
  '\r\n',
  '\r\n> ',
  '\n>> ',
  '\t',
  '\u00a0',
  '\u200b',
  '\u2028',
  'K',
  '\u212a',
  '\u0130',
  'ς',
  'Σ',
  '>',
  'x',
  '  \r\n  > > ',
];
const ROUNDS = 3000;

function haystack(rand: () => number, needle: string): string {
  const words = needle.split(' ');
  const out: string[] = [];
  const n = 1 + Math.floor(rand() * 12);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.4) out.push(words[Math.floor(rand() * words.length)]!);
    else if (r < 0.5) out.push(needle);
    else out.push(NOISE[Math.floor(rand() * NOISE.length)]!);
    if (rand() < 0.5) out.push(NOISE[Math.floor(rand() * 4)]!);
  }
  const s = out.join('');
  const c = rand();
  return c < 0.3 ? s.toUpperCase() : c < 0.4 ? s.replace(/k/gi, '\u212a') : s;
}

describe('containsAnyText', () => {
  it('agrees with containsText on random haystacks', () => {
    const rand = xorshift32(7);
    const check = containsAnyText(NEEDLES);
    let hits = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const h = haystack(rand, NEEDLES[i % NEEDLES.length]!);
      const expected = NEEDLES.some((n) => containsText(h, n));
      assert.equal(check(h), expected, JSON.stringify(h));
      if (expected) hits++;
    }
    assert.ok(hits > ROUNDS / 20, `only ${hits} haystacks contained a needle`);
  });

  it('finds a quoted, re-wrapped copy and the Kelvin sign', () => {
    const check = containsAnyText(['This email is CONFIDENTIAL.']);
    assert.equal(check('> > this email\r\n> is   confidential.'), true);
    assert.equal(check('This email is confidential\u212a.'), false);
    assert.equal(containsAnyText(['ok'])('O\u212a'), true);
  });
});

/** The normalisations as they were written before (every run replaced), as references. */
const referenceMatch = (t: string) =>
  t
    .replace(/^[ \t]*(>[ \t>]*)+/gm, '')
    .replace(/[\s\u00a0\u200b]+/g, ' ')
    .trim()
    .toLowerCase();
const referenceSpace = (t: string) =>
  t
    .replace(/[\u00ad\u200b-\u200d\u2060\ufeff]+/g, '')
    .replace(/\s+/g, ' ')
    .trim();

describe('white space normalisation', () => {
  const SPACES = [
    ' ',
    '  ',
    '\t',
    '\r\n',
    '\n',
    '\r',
    '\u00a0',
    '\u200b',
    '\u2028',
    '\u3000',
    '\ufeff',
    '\u00ad',
    ' \u200b ',
    '\u000b',
    '\u000c',
  ];
  it('gives what replacing every run gives, on random text', () => {
    const rand = xorshift32(11);
    for (let i = 0; i < ROUNDS; i++) {
      const parts: string[] = [];
      const n = Math.floor(rand() * 20);
      for (let k = 0; k < n; k++) {
        const r = rand();
        parts.push(
          r < 0.4
            ? SPACES[Math.floor(rand() * SPACES.length)]!
            : r < 0.5
              ? '>'
              : r < 0.55
                ? ' > '
                : r < 0.6
                  ? 'Σ'
                  : 'Word',
        );
      }
      const t = parts.join('');
      assert.equal(normalizeForMatch(t), referenceMatch(t), JSON.stringify(t));
      assert.equal(normalizeSpace(t), referenceSpace(t), JSON.stringify(t));
    }
  });
});
