// Decoder fuzz: at least a million random frames through relayguard's milter de-framer and
// command decoder, and a share of them through a live server, without a crash.
//
//   node dist/bench/fuzz-decoder.js [--frames 1000000] [--live 100000] [--seed N]
//
// In process: frames with every command byte (known and unknown), random and truncated
// payloads, lengths that lie, streams cut at random points. Only FrameError may come out.
// Live: connections to a MilterServer that negotiate and then send random frames; after every
// batch a fresh connection must still negotiate (the server survived, no process crash).
import { connect } from 'node:net';
import { parsePolicyText } from '../src/rules/policy-schema.js';
import { silentLogger } from '../src/ops/logging.js';
import { CompiledPolicy } from '../src/rules/compiled-policy.js';
import { Cmd } from '../src/protocol/constants.js';
import { decodeCommand } from '../src/protocol/decode.js';
import { FrameDecoder, FrameError } from '../src/protocol/frame.js';
import { MilterServer } from '../src/session/server.js';
import { closeMilter, openMilter, sendMessage } from './lib/milter-send.js';
import { readOptions, whole } from './lib/options.js';
import { xorshift32 } from './lib/stats.js';

const KNOWN = Object.values(Cmd) as number[];
/** Decoder cap in the fuzz, small so that "too long" is hit often. */
const FUZZ_MAX_FRAME = 4096;
const LIVE_FRAMES_PER_CONNECTION = 200;
const LIVE_PARALLEL = 20;

/** One random frame: mostly well-formed framing with random payloads, sometimes a lying length. */
function randomFrame(rand: () => number): Buffer {
  const cmd = rand() < 0.85 ? KNOWN[Math.floor(rand() * KNOWN.length)]! : Math.floor(rand() * 256);
  const r = rand();
  const len = r < 0.6 ? Math.floor(rand() * 32) : r < 0.99 ? Math.floor(rand() * 512) : Math.floor(rand() * 8192);
  const payload = Buffer.allocUnsafe(len);
  // Payloads rich in NULs and printable bytes reach deeper into the string splitting.
  for (let i = 0; i < len; i++) {
    const p = rand();
    payload[i] = p < 0.2 ? 0 : p < 0.7 ? 0x20 + Math.floor(rand() * 95) : Math.floor(rand() * 256);
  }
  const frame = Buffer.allocUnsafe(5 + len);
  const lie = rand();
  frame.writeUInt32BE(lie < 0.995 ? len + 1 : lie < 0.9975 ? 0 : Math.floor(rand() * 2 ** 32), 0);
  frame[4] = cmd;
  payload.copy(frame, 5);
  return frame;
}

interface InProcessResult {
  frames: number;
  decoded: number;
  frameErrors: number;
  streams: number;
}

export function fuzzInProcess(frames: number, seed: number): InProcessResult {
  const rand = xorshift32(seed);
  let decoded = 0;
  let frameErrors = 0;
  let streams = 0;
  let sent = 0;
  while (sent < frames) {
    // One "connection": a stream of up to 64 frames cut into random pieces.
    streams++;
    const decoder = new FrameDecoder(FUZZ_MAX_FRAME);
    const n = 1 + Math.floor(rand() * 64);
    const parts: Buffer[] = [];
    for (let i = 0; i < n && sent < frames; i++, sent++) parts.push(randomFrame(rand));
    const stream = Buffer.concat(parts);
    try {
      for (let off = 0; off < stream.length;) {
        const cut = Math.min(stream.length, off + 1 + Math.floor(rand() * 700));
        for (const f of decoder.push(stream.subarray(off, cut))) {
          try {
            decodeCommand(f);
            decoded++;
          } catch (err) {
            if (!(err instanceof FrameError)) throw err;
            frameErrors++;
          }
        }
        off = cut;
      }
    } catch (err) {
      if (!(err instanceof FrameError))
        throw new Error(`stream ${streams}: ${(err as Error).name} escaped the decoder: ${(err as Error).stack}`, {
          cause: err,
        });
      frameErrors++; // a bad length ends the stream, as it ends the connection
    }
  }
  return { frames: sent, decoded, frameErrors, streams };
}

async function sendRandom(port: number, rand: () => number, frames: number): Promise<void> {
  const c = await openMilter({ kind: 'inet', host: '127.0.0.1', port });
  c.client.close();
  await new Promise<void>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      const optneg = Buffer.alloc(17);
      optneg.writeUInt32BE(13, 0);
      optneg[4] = Cmd.OPTNEG;
      optneg.writeUInt32BE(6, 5);
      optneg.writeUInt32BE(0x1ff, 9);
      optneg.writeUInt32BE(0x1fffff, 13);
      const parts: Buffer[] = [optneg];
      for (let i = 0; i < frames; i++) parts.push(randomFrame(rand));
      s.end(Buffer.concat(parts));
    });
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => resolve());
    s.setTimeout(10_000, () => s.destroy());
  });
}

export async function fuzzLive(frames: number, seed: number): Promise<{ frames: number; connections: number }> {
  const r = parsePolicyText('rules: { trace_header: { mode: enforce } }', 'fuzz.yaml');
  if (!r.ok) throw new Error('fuzz policy invalid');
  const policy = new CompiledPolicy(r.config, 'fuzz.yaml', silentLogger());
  const port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports (32768-60999)
  const server = new MilterServer(policy, {
    listen: { kind: 'inet', host: '127.0.0.1', port },
    maxConnections: 500,
    log: silentLogger(),
  });
  await server.start();
  const rand = xorshift32(seed ^ 0x5eed);
  let sent = 0;
  let connections = 0;
  try {
    while (sent < frames) {
      const batch: Promise<void>[] = [];
      for (let i = 0; i < LIVE_PARALLEL && sent < frames; i++) {
        const n = Math.min(LIVE_FRAMES_PER_CONNECTION, frames - sent);
        sent += n;
        connections++;
        batch.push(sendRandom(port, rand, n));
      }
      await Promise.all(batch);
    }
    // The server must still serve a well-behaved client.
    const c = await openMilter({ kind: 'inet', host: '127.0.0.1', port });
    const res = await sendMessage(
      c,
      {
        clientIp: '127.0.0.1',
        clientName: 'localhost',
        helo: 'fuzz.test',
        from: 'a@example.test',
        rcpts: ['b@example.test'],
      },
      Buffer.from('Subject: after fuzz\r\n\r\nhello\r\n'),
    );
    closeMilter(c);
    if (res.verdict !== 'accept') throw new Error(`after the fuzz a normal message got ${res.verdict}`);
  } finally {
    await server.close(1000);
    await policy.close();
  }
  return { frames: sent, connections };
}

async function main(): Promise<void> {
  const { frames, live, seed } = readOptions(
    'fuzz-decoder',
    {
      args: process.argv.slice(2),
      options: {
        frames: { type: 'string', default: '1000000' },
        live: { type: 'string', default: '100000' },
        seed: { type: 'string', default: '20261128' },
      },
    },
    ({ values: v }) => ({
      frames: whole(v.frames, 'frames'),
      live: whole(v.live, 'live', 0),
      seed: whole(v.seed, 'seed', 0),
    }),
  );
  const t0 = performance.now();
  const a = fuzzInProcess(frames, seed);
  const t1 = performance.now();
  process.stdout.write(
    `in process: ${a.frames} random frames in ${a.streams} streams: ${a.decoded} decoded, ${a.frameErrors} refused with FrameError, ` +
      `${a.frames - a.decoded - a.frameErrors} not reached (after a bad length ends the stream), no other exception; ${((t1 - t0) / 1000).toFixed(1)} s\n`,
  );
  const b = await fuzzLive(live, seed);
  const t2 = performance.now();
  process.stdout.write(
    `live server: ${b.frames} random frames over ${b.connections} connections; server still serves; ${((t2 - t1) / 1000).toFixed(1)} s\n`,
  );
  process.stdout.write(`total: ${a.frames + b.frames} frames without a crash (seed ${seed})\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`fuzz-decoder FAILED: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
