import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  checkCodeSpec,
  classifyAnswers,
  cleanTxt,
  DnsblClient,
  domainQueryName,
  ipQueryName,
  ListingCodes,
  type DnsblList,
  type DnsblQuery,
} from '../../src/deps/dnsbl.js';
import { blackHole, FakeDns } from './dnsbl-fake-server.js';

const BL: DnsblList = {
  zone: 'bl.test',
  name: 'bl.test',
  codes: new ListingCodes(['127.0.0.2', '127.0.0.4-127.0.0.11']),
};
const ip = (subject: string, list: DnsblList = BL): DnsblQuery => ({
  list,
  subject,
  name: ipQueryName(subject, list.zone)!,
});

describe('query names', () => {
  it('reverses IPv4 octets and normalises v4-mapped IPv6', () => {
    assert.equal(ipQueryName('203.0.113.66', 'bl.test'), '66.113.0.203.bl.test');
    assert.equal(ipQueryName('::ffff:203.0.113.66', 'BL.test'), '66.113.0.203.bl.test');
    assert.equal(ipQueryName('IPv6:::ffff:203.0.113.66', 'bl.test'), '66.113.0.203.bl.test');
  });

  it('reverses the 32 nibbles of IPv6', () => {
    assert.equal(
      ipQueryName('2001:db8::1', 'bl.test'),
      '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test',
    );
  });

  it('refuses non-addresses', () => {
    assert.equal(ipQueryName('not-an-ip', 'bl.test'), null);
  });

  it('lower-cases domains, converts IDN to ASCII and refuses junk', () => {
    assert.equal(domainQueryName('Spam.Example', 'dbl.test'), 'spam.example.dbl.test');
    assert.equal(domainQueryName('bücher.example', 'dbl.test'), 'xn--bcher-kva.example.dbl.test');
    assert.equal(domainQueryName('[192.0.2.1]', 'dbl.test'), null);
    assert.equal(domainQueryName('a..b', 'dbl.test'), null);
    assert.equal(domainQueryName(`${'a'.repeat(64)}.example`, 'dbl.test'), null);
  });
});

describe('listing codes', () => {
  it('accepts addresses, ranges and CIDR blocks in 127/8', () => {
    const codes = new ListingCodes(['127.0.0.2', '127.0.0.4-127.0.0.11', '127.0.1.0/24']);
    assert.ok(codes.has('127.0.0.2'));
    assert.ok(codes.has('127.0.0.9'));
    assert.ok(codes.has('127.0.1.200'));
    assert.ok(!codes.has('127.0.0.3'));
    assert.ok(!codes.has('127.0.0.12'));
  });

  it('refuses codes outside 127/8 and the 127.255.255.x error answers', () => {
    assert.match(checkCodeSpec('10.0.0.2') ?? '', /127\.0\.0\.0\/8/);
    assert.match(checkCodeSpec('127.255.255.254') ?? '', /error/);
    assert.match(checkCodeSpec('127.0.0.0/8') ?? '', /error/);
    assert.match(checkCodeSpec('127.0.0.9-127.0.0.2') ?? '', /before/);
    assert.notEqual(checkCodeSpec('foo'), null);
    assert.equal(checkCodeSpec('127.0.0.2-127.0.0.11'), null);
  });
});

describe('classifyAnswers', () => {
  it('a configured code is a listing', () => {
    assert.deepEqual(classifyAnswers(['127.0.0.2'], BL.codes), { status: 'listed', codes: ['127.0.0.2'] });
  });

  it('keeps only the configured codes of several answers', () => {
    assert.deepEqual(classifyAnswers(['127.0.0.2', '127.0.0.3'], BL.codes), { status: 'listed', codes: ['127.0.0.2'] });
  });

  it('127.255.255.x is a list error, never a listing', () => {
    const r = classifyAnswers(['127.255.255.254'], BL.codes);
    assert.equal(r.status, 'error');
    assert.equal(r.status === 'error' && r.code, 'ELISTERROR');
    const mixed = classifyAnswers(['127.0.0.2', '127.255.255.255'], BL.codes);
    assert.equal(mixed.status, 'error');
  });

  it('an unconfigured 127/8 code is an error', () => {
    const r = classifyAnswers(['127.0.0.3'], BL.codes);
    assert.equal(r.status === 'error' && r.code, 'EUNKNOWNCODE');
  });

  it('an answer outside 127/8 (rewritten NXDOMAIN) is an error', () => {
    const r = classifyAnswers(['198.51.100.1'], BL.codes);
    assert.equal(r.status === 'error' && r.code, 'EBADANSWER');
  });

  it('no records is clean', () => {
    assert.deepEqual(classifyAnswers([], BL.codes), { status: 'clean' });
  });
});

describe('cleanTxt', () => {
  it('joins strings, drops control characters and cuts long reasons', () => {
    assert.equal(cleanTxt([['Listed ', 'here'], ['again\r\n']]), 'Listed here; again');
    assert.equal(cleanTxt([]), undefined);
    assert.equal(cleanTxt([['x'.repeat(500)]])!.length, 200);
  });
});

describe('DnsblClient against a fake DNS server', () => {
  const dns = new FakeDns({
    '66.113.0.203.bl.test': { a: ['127.0.0.2'], ttl: 120, txt: ['203.0.113.66 is listed'] },
    '67.113.0.203.bl.test': { a: ['127.255.255.254'] },
    '68.113.0.203.bl.test': { rcode: 'SERVFAIL' },
    '69.113.0.203.bl.test': { a: ['127.0.0.5'] }, // listed, but TXT missing
    '70.113.0.203.bl.test': 'silent',
  });
  let server = '';
  before(async () => {
    server = await dns.start();
  });
  after(async () => {
    await dns.stop();
  });
  const client = (now?: () => number) =>
    new DnsblClient(
      { servers: [server], timeout: 300, budget: 1000 },
      { minTtl: 1000, maxTtl: 60_000, negativeTtl: 5000 },
      now,
    );

  it('listed, with the TXT reason', async () => {
    const [a] = await client().lookup([ip('203.0.113.66')]);
    assert.deepEqual(a!.result, { status: 'listed', codes: ['127.0.0.2'], txt: '203.0.113.66 is listed' });
  });

  it('not listed (NXDOMAIN) is clean', async () => {
    const [a] = await client().lookup([ip('203.0.113.9')]);
    assert.deepEqual(a!.result, { status: 'clean' });
  });

  it('an error code answer is an error', async () => {
    const [a] = await client().lookup([ip('203.0.113.67')]);
    assert.equal(a!.result.status, 'error');
    assert.equal(a!.result.status === 'error' && a!.result.code, 'ELISTERROR');
  });

  it('SERVFAIL is an error, not clean', async () => {
    const [a] = await client().lookup([ip('203.0.113.68')]);
    assert.equal(a!.result.status === 'error' && a!.result.code, 'ESERVFAIL');
  });

  it('a listing without TXT stays a listing', async () => {
    const [a] = await client().lookup([ip('203.0.113.69')]);
    assert.deepEqual(a!.result, { status: 'listed', codes: ['127.0.0.5'] });
  });

  it('a silent server is an error within the per-query timeout', async () => {
    const started = Date.now();
    const [a] = await client().lookup([ip('203.0.113.70')]);
    assert.equal(a!.result.status, 'error');
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
  });

  it('runs queries in parallel and keeps their order', async () => {
    const answers = await client().lookup([ip('203.0.113.70'), ip('203.0.113.66'), ip('203.0.113.9')]);
    assert.deepEqual(
      answers.map((a) => a.result.status),
      ['error', 'listed', 'clean'],
    );
  });

  it('caches listings by TTL and negative answers briefly', async () => {
    let now = 1_000_000;
    const c = client(() => now);
    const queriesFor = (n: string) => dns.seen.filter((s) => s === `${n} A`).length;
    const listedName = '66.113.0.203.bl.test';
    const cleanName = '9.113.0.203.bl.test';
    const before = [queriesFor(listedName), queriesFor(cleanName)];
    await c.lookup([ip('203.0.113.66'), ip('203.0.113.9')]);
    const second = await c.lookup([ip('203.0.113.66'), ip('203.0.113.9')]);
    assert.deepEqual(
      second.map((a) => a.cached),
      [true, true],
    );
    assert.equal(second[0]!.result.status === 'listed' && second[0]!.result.txt, '203.0.113.66 is listed');
    assert.deepEqual([queriesFor(listedName), queriesFor(cleanName)], [before[0]! + 1, before[1]! + 1]);
    now += 6000; // past the negative TTL (5 s), inside the listing's 120 s
    const third = await c.lookup([ip('203.0.113.66'), ip('203.0.113.9')]);
    assert.deepEqual(
      third.map((a) => a.cached),
      [true, false],
    );
    now += 120_000; // past the listing TTL
    const fourth = await c.lookup([ip('203.0.113.66')]);
    assert.equal(fourth[0]!.cached, false);
    assert.equal(c.stats.cacheHits, 3);
  });

  it('errors are not cached', async () => {
    const c = client();
    await c.lookup([ip('203.0.113.68')]);
    const [a] = await c.lookup([ip('203.0.113.68')]);
    assert.equal(a!.cached, false);
    assert.equal(c.stats.errors, 2);
  });

  it('the cache classifies by the asking list: another list may not know the code', async () => {
    const c = client();
    const strict: DnsblList = { zone: 'bl.test', name: 'strict', codes: new ListingCodes(['127.0.0.3']) };
    await c.lookup([ip('203.0.113.66')]);
    const [a] = await c.lookup([ip('203.0.113.66', strict)]);
    assert.equal(a!.cached, true);
    assert.equal(a!.result.status === 'error' && a!.result.code, 'EUNKNOWNCODE');
  });

  it('a bad server address fails when the client is made', () => {
    assert.throws(() => new DnsblClient({ servers: ['not a server'], timeout: 100, budget: 100 }));
  });
});

describe('DnsblClient budget', () => {
  it('a server that never answers costs at most the budget, for all lists together', async () => {
    const hole = await blackHole();
    try {
      // Per-query timeout far above the budget: only the shared budget can end this early.
      const c = new DnsblClient({ servers: [hole.server], timeout: 10_000, budget: 300 });
      const lists = ['a.test', 'b.test', 'c.test', 'd.test'].map((zone) => ({ zone, name: zone, codes: BL.codes }));
      const started = Date.now();
      const answers = await c.lookup(lists.map((l) => ip('203.0.113.9', l)));
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 800, `took ${took} ms`);
      assert.deepEqual(
        answers.map((a) => a.result.status === 'error' && a.result.code),
        ['EBUDGET', 'EBUDGET', 'EBUDGET', 'EBUDGET'],
      );
      assert.equal(c.stats.budgetExceeded, 4);
      assert.ok(hole.received() >= 4, 'the questions were sent in parallel');
    } finally {
      await hole.stop();
    }
  });

  it("the caller's deadline ends the lookup before the budget", async () => {
    const hole = await blackHole();
    try {
      const c = new DnsblClient({ servers: [hole.server], timeout: 10_000, budget: 5000 });
      const started = Date.now();
      const [a] = await c.lookup([ip('203.0.113.9')], { signal: AbortSignal.timeout(150) });
      assert.ok(Date.now() - started < 1000);
      assert.equal(a!.result.status === 'error' && a!.result.code, 'EBUDGET');
    } finally {
      await hole.stop();
    }
  });
});
