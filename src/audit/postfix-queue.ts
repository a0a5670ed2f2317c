// The audit's view of Postfix's queue: where a test message ended up (postqueue -j) and removing
// it from the hold queue afterwards (postsuper -d ID hold), with Postfix's own tools.
import { execFile } from 'node:child_process';

export interface PostfixTools {
  postqueue: string;
  postsuper: string;
  configDir: string;
  timeoutMs: number;
}

function run(program: string, args: string[], timeoutMs: number, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8', ...(signal ? { signal } : {}) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${program} ${args.join(' ')}: ${stderr.trim().split('\n')[0] || err.message}`));
      else resolve(stdout);
    });
  });
}

/** The queue ("hold", "active", "deferred", "incoming", "maildrop") holding `id`, or null when it is in none. */
export async function queueOf(tools: PostfixTools, id: string, signal?: AbortSignal): Promise<string | null> {
  const out = await run(tools.postqueue, ['-c', tools.configDir, '-j'], tools.timeoutMs, signal);
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    try {
      const entry = JSON.parse(line) as { queue_id?: string; queue_name?: string };
      if (entry.queue_id === id) return entry.queue_name ?? 'unknown';
    } catch {
      /* not a JSON line (an old postqueue): ignore */
    }
  }
  return null;
}

export async function deleteHeld(tools: PostfixTools, id: string, signal?: AbortSignal): Promise<void> {
  await run(tools.postsuper, ['-c', tools.configDir, '-d', id, 'hold'], tools.timeoutMs, signal);
}
