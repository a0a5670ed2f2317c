import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { domainMatches, parseEnvelopeAddress, parseEsmtpParams } from '../../src/primitives/address.js';
import { isValidCidr, NetworkSet, normalizeIp } from '../../src/primitives/networks.js';

describe('IP normalisation and CIDR sets', () => {
  it('normalises Sendmail and Postfix forms', () => {
    assert.equal(normalizeIp('IPv6:2001:db8::1'), '2001:db8::1');
    assert.equal(normalizeIp('ipv6:0:0:0:0:0:0:0:1'), '::1');
    assert.equal(normalizeIp('::ffff:192.0.2.10'), '192.0.2.10');
    assert.equal(normalizeIp('[203.0.113.9]'), '203.0.113.9');
    assert.equal(normalizeIp('localhost'), null);
    assert.equal(normalizeIp(''), null);
  });
  it('matches IPv4 and IPv6 ranges without mixing kinds', () => {
    const set = new NetworkSet(['127.0.0.0/8', '10.0.0.0/8', '2001:db8::/32', '198.51.100.7']);
    assert.ok(set.contains('127.0.0.2'));
    assert.ok(set.contains('10.200.1.1'));
    assert.ok(set.contains('::ffff:10.0.0.1'), 'v4-mapped counts as IPv4');
    assert.ok(set.contains('IPv6:2001:db8:0:0:0:0:0:5'));
    assert.ok(set.contains('198.51.100.7'));
    assert.equal(set.contains('198.51.100.8'), false);
    assert.equal(set.contains('2001:db9::1'), false);
    assert.equal(set.contains('203.0.113.9'), false);
    assert.equal(set.contains(null), false);
  });
  it('validates CIDR text', () => {
    assert.ok(isValidCidr('192.0.2.0/24'));
    assert.ok(isValidCidr('::1/128'));
    assert.equal(isValidCidr('192.0.2.0/33'), false);
    assert.equal(isValidCidr('example.test'), false);
  });
});

describe('envelope addresses', () => {
  it('parses brackets, null sender, source routes and case', () => {
    assert.deepEqual(parseEnvelopeAddress('<Alice@Example.TEST>'), {
      raw: 'Alice@Example.TEST',
      local: 'Alice',
      domain: 'example.test',
    });
    assert.deepEqual(parseEnvelopeAddress('<>'), { raw: '', local: '', domain: '' });
    assert.equal(parseEnvelopeAddress('<@relay.test:bob@example.test>').domain, 'example.test');
    assert.equal(parseEnvelopeAddress('<"a@b"@c.test>').domain, 'c.test');
  });
  it('matches domains and subdomains', () => {
    assert.ok(domainMatches('sub.blocked.test', 'blocked.test'));
    assert.ok(domainMatches('BLOCKED.test.', 'blocked.test'));
    assert.equal(domainMatches('notblocked.test', 'blocked.test'), false);
  });
  it('parses ESMTP parameters', () => {
    assert.deepEqual(parseEsmtpParams(['SIZE=123', 'body=8BITMIME', 'SMTPUTF8']), {
      SIZE: '123',
      BODY: '8BITMIME',
      SMTPUTF8: '',
    });
  });
});
