import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { BodyStore } from '../../src/session/body-store.js';

async function read(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('body store', () => {
  it('keeps small bodies in memory', async () => {
    const b = new BodyStore(1024);
    await b.append(Buffer.from('hello '));
    await b.append(Buffer.from('world'));
    assert.equal(b.spilled, false);
    assert.equal((await read(b.stream())).toString(), 'hello world');
  });
  it('spills to a private temporary file above the threshold and cleans up', async () => {
    const b = new BodyStore(100);
    const chunk = Buffer.alloc(64, 'a');
    for (let i = 0; i < 10; i++) await b.append(chunk);
    assert.equal(b.spilled, true);
    assert.equal(b.size, 640);
    await b.flush();
    const all = await read(b.stream());
    assert.equal(all.length, 640);
    assert.equal((await read(b.stream())).length, 640, 'every reader gets a fresh stream');
    const path = (b as unknown as { path: string }).path;
    assert.ok(existsSync(path));
    await b.dispose();
    assert.equal(existsSync(path), false);
  });
  it('copies chunks it keeps (the decoder reuses buffers)', async () => {
    const b = new BodyStore(1024);
    const src = Buffer.from('abc');
    await b.append(src);
    src.write('xyz');
    assert.equal((await read(b.stream())).toString(), 'abc');
  });
});
