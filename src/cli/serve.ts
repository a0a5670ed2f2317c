// relayguard serve: the milter daemon. SIGHUP re-reads the policy (validate, then swap; a bad
// file keeps the old policy), SIGTERM/SIGINT stop accepting and let sessions finish.
import type { Logger } from 'winston';
import { formatError, loadPolicyFile } from '../config/load.js';
import { createLogger } from '../logging.js';
import { CompiledPolicy } from '../policy/compile.js';
import type { Decision } from '../session/conversation.js';
import { MilterServer, parseListen } from '../session/server.js';
import { parseArgs, str } from './args.js';
import type { Command } from './command.js';
import { loadPolicyOrExit } from './policy-file.js';

/** How long sessions in flight may take to finish after SIGTERM. */
const SHUTDOWN_GRACE_MS = 30_000;

export type DecisionListener = (d: Decision) => void;
/** Listeners other modules register (quarantine index, metrics); called for every decision. */
export const decisionListeners: Array<(policy: CompiledPolicy) => DecisionListener> = [];

export const serveCommand: Command = {
  name: 'serve',
  usage: 'serve [--config F] [--listen inet:HOST:PORT|unix:PATH]',
  summary: 'Run the milter daemon (default policy: policies/default.yaml).',
  async run(argv) {
    const args = parseArgs(argv, { config: { value: true }, listen: { value: true }, metrics: { value: true } });
    const { config, file } = loadPolicyOrExit(str(args, 'config'));
    const log = createLogger(config.logging);
    const listenSpec = str(args, 'listen') ?? config.server.listen;
    const listen = parseListen(listenSpec);
    let policy = new CompiledPolicy(config, file, log);
    const listeners = decisionListeners.map((make) => make(policy));
    const server = new MilterServer(policy, {
      listen,
      socketMode: parseInt(config.server.socket_mode, 8),
      maxConnections: config.server.max_connections,
      log,
      onDecision: (d) => {
        for (const l of listeners) {
          try {
            l(d);
          } catch (err) {
            log.error(`decision listener failed: ${(err as Error).message}`);
          }
        }
      },
    });
    await server.start();
    log.info(`relayguard listening on ${listenSpec} with policy ${file} (${policy.engine.activeRules().map((r) => `${r.name}:${r.mode}`).join(', ') || 'no rules'})`);

    process.on('SIGHUP', () => void reload(file, log, server, (p) => (policy = p)));
    let stopping = false;
    const stop = async (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info(`${sig}: no new connections; waiting up to ${SHUTDOWN_GRACE_MS / 1000}s for ${server.connections} session(s)`);
      await server.close(SHUTDOWN_GRACE_MS);
      await server.currentPolicy.close();
      log.info('stopped');
      log.on('finish', () => process.exit(0));
      log.end();
      setTimeout(() => process.exit(0), 1000).unref();
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    return -1;
  },
};

async function reload(file: string, log: Logger, server: MilterServer, set: (p: CompiledPolicy) => void): Promise<void> {
  const r = loadPolicyFile(file);
  if (!r.ok) {
    log.error(`reload: ${file} is invalid; keeping the running policy`, { errors: r.errors.map(formatError) });
    for (const e of r.errors) log.error(`reload: ${formatError(e)}`);
    return;
  }
  let next: CompiledPolicy;
  try {
    next = new CompiledPolicy(r.config, file, log);
  } catch (err) {
    log.error(`reload: cannot start policy ${file}: ${(err as Error).message}; keeping the running policy`);
    return;
  }
  const old = server.swapPolicy(next);
  set(next);
  log.info(`reload: policy ${file} active for new connections`);
  // Connections in flight keep the old policy; close its shared services a little later.
  setTimeout(() => void old.close(), 60_000).unref();
}
