// Memory bound: one 50 MB message through clamd scanning and the disclaimer must grow
// relayguard's peak RSS (VmHWM) by less than 32 MB.
//
//   node dist/bench/big-message.js [--mb 50] [--limit-mb 32] [--listen unix:/tmp/rg-bench/sock/big.sock]
//
// relayguard runs the reference policy with the size limit and clamd's stream limit raised
// (policy variant "full-large"); the message is a short text part plus a base64 attachment, as
// Postfix would hand it over (64 KiB body chunks). Exit 1 when the bound is missed.
import { mkdirSync } from 'node:fs';
import { benchLayout, clamdUp } from './lib/bench-postfix.js';
import { BENCH_RECIPIENT, BENCH_SENDER, prose } from './lib/messages.js';
import { closeMilter, crlf, openMilter, sendMessage } from './lib/milter-send.js';
import { killDaemonsOnExit, procUsage, type Daemon } from './lib/proc.js';
import { benchNodeArgs, startBenchRelayguard } from './lib/relayguard-proc.js';
import { amount, readOptions } from './lib/options.js';

const MIB = 1024 * 1024;
const WARMUP_MESSAGES = 20;

/** A multipart message of about `bytes` bytes: text part + base64 attachment (CRLF). */
export function bigMessage(bytes: number): Buffer {
  const boundary = '=_relayguard_big';
  const head = crlf(
    [
      `From: <${BENCH_SENDER}>`,
      `To: <${BENCH_RECIPIENT}>`,
      'Subject: a very large message',
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      prose(2000, 9),
      `--${boundary}`,
      'Content-Type: application/octet-stream; name="data.bin"',
      'Content-Disposition: attachment; filename="data.bin"',
      'Content-Transfer-Encoding: base64',
      '',
      '',
    ].join('\n'),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  // 57 raw bytes -> one 76-character base64 line + CRLF (78 bytes).
  const lines = Math.max(1, Math.floor((bytes - head.length - tail.length) / 78));
  const raw = Buffer.alloc(57);
  const out = Buffer.allocUnsafe(head.length + lines * 78 + tail.length);
  head.copy(out, 0);
  let off = head.length;
  let x = 12345;
  for (let i = 0; i < lines; i++) {
    for (let j = 0; j < 57; j++) {
      x = (x * 1103515245 + 12345) >>> 0;
      raw[j] = x >>> 24;
    }
    off += out.write(raw.toString('base64'), off, 'latin1');
    out[off++] = 0x0d;
    out[off++] = 0x0a;
  }
  tail.copy(out, off);
  return out.subarray(0, off + tail.length);
}

async function main(): Promise<void> {
  const { mb, limitMb, listen, dir } = readOptions(
    'big-message',
    {
      args: process.argv.slice(2),
      options: {
        mb: { type: 'string', default: '50' },
        'limit-mb': { type: 'string', default: '32' },
        listen: { type: 'string', default: 'unix:/tmp/rg-bench/sock/big.sock' },
        dir: { type: 'string', default: '/tmp/rg-bench' },
      },
    },
    ({ values: v }) => ({
      mb: amount(v.mb, 'mb'),
      limitMb: amount(v['limit-mb'], 'limit-mb'),
      listen: v.listen,
      dir: v.dir,
    }),
  );
  killDaemonsOnExit();
  const layout = benchLayout(dir, 3230);
  mkdirSync(layout.logDir, { recursive: true });
  mkdirSync(layout.socketDir, { recursive: true });
  const daemons: Daemon[] = [];
  try {
    daemons.push(await clamdUp(layout));
    const rg = await startBenchRelayguard({
      variant: 'full-large',
      listen,
      dir,
      clamdAddress: `tcp:127.0.0.1:${layout.clamdPort}`,
      nodeArgs: benchNodeArgs(),
    });
    daemons.unshift(rg.daemon);
    const env = {
      clientIp: '127.0.0.1',
      clientName: 'localhost',
      helo: 'big.bench.test',
      from: BENCH_SENDER,
      rcpts: [BENCH_RECIPIENT],
    };
    // Warm up with ordinary messages so the baseline includes relayguard's normal working set.
    const small = bigMessage(100 * 1024);
    for (let i = 0; i < WARMUP_MESSAGES; i++) {
      const c = await openMilter(rg.listen);
      const r = await sendMessage(c, env, small);
      closeMilter(c);
      if (r.verdict !== 'accept') throw new Error(`warm-up message got ${r.verdict} at ${r.stage}`);
    }
    const before = procUsage(rg.daemon.pid);
    const big = bigMessage(mb * MIB);
    const c = await openMilter(rg.listen);
    const r = await sendMessage(c, env, big, { timeoutMs: 300_000 });
    closeMilter(c);
    const after = procUsage(rg.daemon.pid);
    const growthMb = (after.hwmKiB - before.hwmKiB) / 1024;
    const scanned = r.addedHeaders.some((h) => /^X-Virus-Scanned:/i.test(h));
    const disclaimed = r.replacedBodyBytes > big.length * 0.9;
    process.stdout.write(
      [
        `50 MB test: message ${(big.length / MIB).toFixed(1)} MiB -> verdict ${r.verdict} at ${r.stage} in ${(r.ms / 1000).toFixed(1)} s`,
        `  scanned by clamd (X-Virus-Scanned added): ${scanned}; body replaced (disclaimer): ${disclaimed} (${(r.replacedBodyBytes / MIB).toFixed(1)} MiB sent back)`,
        `  headers added: ${r.addedHeaders.join(' | ')}`,
        `  relayguard VmHWM ${(before.hwmKiB / 1024).toFixed(1)} -> ${(after.hwmKiB / 1024).toFixed(1)} MiB: grew ${growthMb.toFixed(1)} MiB (limit ${limitMb}); CPU ${(after.cpuMs - before.cpuMs).toFixed(0)} ms`,
      ].join('\n') + '\n',
    );
    process.exitCode = r.verdict === 'accept' && scanned && disclaimed && growthMb < limitMb ? 0 : 1;
  } finally {
    for (const d of daemons) await d.stop();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`big-message FAILED: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
