// The payment card detector: Luhn check, accepted layouts, and long digit runs that are not cards.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findCardNumbers, luhnValid, maskCard } from '../../src/rules/content/detectors/luhn.js';

const found = (text: string) => findCardNumbers(text).map((m) => m.masked);

test('Luhn: well-known test numbers pass, a changed digit fails', () => {
  for (const n of [
    '4111111111111111',
    '5555555555554444',
    '378282246310005',
    '6011111111111117',
    '30569309025904',
    '4222222222222',
  ]) {
    assert.equal(luhnValid(n), true, n);
  }
  for (const n of ['4111111111111112', '5555555555554445', '378282246310006', '12ab', ''])
    assert.equal(luhnValid(n), false, n);
});

test('mask keeps only the last four digits', () => {
  assert.equal(maskCard('4111111111111111'), '************1111');
});

test('finds numbers written plain, with spaces and with dashes', () => {
  assert.deepEqual(found('card 4111111111111111 thanks'), ['************1111']);
  assert.deepEqual(found('card: 4111 1111 1111 1111.'), ['************1111']);
  assert.deepEqual(found('card 5555-5555-5555-4444'), ['************4444']);
  assert.deepEqual(found('amex 3782 822463 10005'), ['***********0005']);
  assert.deepEqual(found('(4111111111111111)'), ['************1111']);
});

test('a stray short group beside a spaced number is not part of it', () => {
  assert.deepEqual(found('qty 2 4111 1111 1111 1111'), ['************1111']);
  assert.deepEqual(found('4111 1111 1111 1111 12/27'), ['************1111']);
});

test('numbers failing the Luhn check are ignored', () => {
  assert.deepEqual(found('card 4111 1111 1111 1112'), []);
});

test('tracking numbers and other long digit runs are not cards', () => {
  // USPS (22 digits, plain and grouped), a 20-digit run, FedEx-style 12 digits, UPS with letters.
  assert.deepEqual(found('tracking 9400111899223100001234'), []);
  assert.deepEqual(found('tracking 9400 1118 9922 3100 0012 34'), []);
  // A valid card number embedded in a longer digit run does not count.
  assert.deepEqual(found('ref 41111111111111110000'), []);
  assert.deepEqual(found('ref 4111 1111 1111 1111 0000 00'), []);
  assert.deepEqual(found('ref 004111111111111111'), []);
  assert.deepEqual(found('fedex 771234567890'), []);
  assert.deepEqual(found('ups 1Z4111111111111111'), []);
  assert.deepEqual(found('order 2024-4111111111111111'), []);
  assert.deepEqual(found('invoice 4111111111111111-03'), []);
});

test('inconsistent separators or odd groupings are not cards', () => {
  assert.deepEqual(found('4111 1111-1111 1111'), []);
  assert.deepEqual(found('41 1111 1111 1111 11'), []);
  assert.deepEqual(found('411 111 111 111 1111'), []);
});

test('repeated digits and non-card prefixes are ignored', () => {
  // These pass the Luhn check but are not issuer numbers.
  for (const n of ['6666666666666', '44444444444444444', '0000000000000000', '9111111111111110']) {
    assert.equal(luhnValid(n), true, n);
    assert.deepEqual(found(`number ${n}`), [], n);
  }
});

test('several numbers are all found', () => {
  assert.equal(findCardNumbers('4111111111111111 and 5555 5555 5555 4444').length, 2);
  assert.equal(findCardNumbers('4111111111111111 and 5555 5555 5555 4444', 1).length, 1);
});
