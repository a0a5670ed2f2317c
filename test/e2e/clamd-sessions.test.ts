// clamd sessions (IDSESSION) against the stack's real clamd (hand-made EICAR signatures,
// StreamMaxLength 4M): scans share one connection over the unix socket and TCP and keep their
// verdicts; a stream above clamd's limit ends as an error and a fresh session serves the next
// scan; a clamd restarted between scans costs no scan.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ClamdClient } from '../../src/deps/clamd.js';
import { sessionPoolOptions } from '../../src/deps/clamd-sessions.js';
import { eicar, ensureStack, stack, startClamd, stopClamd } from './harness.js';

const TIMEOUT_MS = 10_000;
const clients: ClamdClient[] = [];

function sessionClient(address: string): ClamdClient {
  const c = new ClamdClient({ address, timeoutMs: TIMEOUT_MS, sessions: sessionPoolOptions(4, 1_000) });
  clients.push(c);
  return c;
}

async function scan(c: ClamdClient, body: Buffer | string) {
  const s = c.instream();
  await s.write(Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1'));
  return s.end();
}

before(ensureStack);
after(() => {
  for (const c of clients) c.close();
});

for (const [transport, address] of [
  ['a unix socket', `unix:${stack.clamdSocket}`],
  ['TCP', `tcp:127.0.0.1:${stack.clamdPort}`],
] as const) {
  describe(`clamd sessions over ${transport}`, () => {
    test('clean and infected messages one after another on one connection', async () => {
      const c = sessionClient(address);
      for (let i = 0; i < 6; i++) {
        const r = await scan(
          c,
          i % 2 ? `Subject: clean ${i}\r\n\r\nnothing here\r\n` : `Subject: eicar ${i}\r\n\r\n${eicar()}\r\n`,
        );
        if (i % 2) assert.deepEqual(r, { status: 'clean' });
        else assert.equal(r.status, 'infected', JSON.stringify(r));
      }
      assert.equal(c.pool!.opened, 1);
    });

    test("a stream above clamd's StreamMaxLength is an error; the next scan gets a fresh session", async () => {
      const c = sessionClient(address);
      assert.deepEqual(await scan(c, 'first'), { status: 'clean' });
      const r = await scan(c, Buffer.alloc(5 * 1024 * 1024, 'a'));
      assert.equal(r.status, 'error', JSON.stringify(r));
      assert.deepEqual(await scan(c, 'after the big one'), { status: 'clean' });
      assert.equal(c.pool!.opened, 2);
    });
  });
}

describe('clamd restarted between scans', () => {
  test('the session clamd closed is dropped and the next scan is served by a new one', async () => {
    const c = sessionClient(`unix:${stack.clamdSocket}`);
    assert.deepEqual(await scan(c, 'before the restart'), { status: 'clean' });
    await stopClamd();
    try {
      await startClamd();
    } catch {
      await startClamd(); // see antivirus.test.ts: clamd-start has been seen to fail once right after a stop
    }
    assert.equal(c.pool!.idleCount, 0, 'the session closed by the stopped clamd left the pool');
    const r = await scan(c, `Subject: x\r\n\r\n${eicar()}\r\n`);
    assert.equal(r.status, 'infected', JSON.stringify(r));
    assert.equal(c.pool!.opened, 2);
  });
});
