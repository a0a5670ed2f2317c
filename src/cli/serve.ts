// relayguard serve: the milter daemon. SIGHUP re-reads the policy (validate, then swap; a bad
// file keeps the old policy), SIGTERM/SIGINT stop accepting and let sessions finish.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import type { Logger } from 'winston';
import type { PolicyConfig } from '../rules/policy-schema.js';
import { formatError } from '../config/load.js';
import { loadPolicyFile } from '../rules/policy-schema.js';
import { quarantineDecisionListener } from '../deps/quarantine-store.js';
import { writeError } from '../ops/journal-stream.js';
import { createLogger } from '../ops/logging.js';
import { mtaLintStartupCheck } from '../mta/lint.js';
import { startOpsServer } from '../ops/http.js';
import { gcCollector, MemoryValve } from '../ops/memory-valve.js';
import { notifySystemd } from '../ops/sd-notify.js';
import { resolveStateDir } from '../ops/state-dir.js';
import { applyHeapProfile } from '../ops/heap-profile.js';
import { memoryValveCollectionsTotal, messagesTotal, reloadsTotal, ruleVerdictsTotal } from '../ops/metrics.js';
import { CompiledPolicy } from '../rules/compiled-policy.js';
import type { EngineHooks } from '../engine/engine.js';
import type { Decision } from '../policy/decision.js';
import { removeStaleSpills } from '../session/body-store.js';
import { MilterServer, parseListen } from '../session/server.js';
import { socketGroup } from '../session/socket-owner.js';
import { parseArgs, str } from './args.js';
import type { Command } from './command.js';
import { about } from './command-list.js';
import { fitDefaultPolicy } from './default-policy.js';
import { DEFAULT_POLICY, loadPolicyOrExit } from './policy-file.js';

/** How long sessions in flight may take to finish after SIGTERM (under Postfix's content timeout). */
const SHUTDOWN_GRACE_MS = 30_000;
/** How long an old policy's services stay open after a reload, for connections still using it. */
const OLD_POLICY_LINGER_MS = 330_000;

export type DecisionListener = (d: Decision) => void;
/** Listeners other modules register (quarantine index...); built per policy, called per decision. */
const decisionListeners: Array<(policy: CompiledPolicy) => DecisionListener> = [quarantineDecisionListener];
/** Start-up checks other modules register (e.g. the MTA lint); findings are logged as warnings. */
const startupChecks: Array<(config: PolicyConfig, log: Logger) => Promise<void>> = [mtaLintStartupCheck];

const engineHooks: EngineHooks = {
  onVerdict(t) {
    ruleVerdictsTotal.inc({ rule: t.rule, phase: t.phase, action: t.action, mode: t.monitor ? 'monitor' : 'enforce' });
  },
};

function countDecision(d: Decision): void {
  messagesTotal.inc({
    action: d.outcome.action === 'continue' ? 'accept' : d.outcome.action,
    direction: d.msg?.direction ?? 'none',
    phase: d.phase,
  });
}

class Daemon {
  private policy!: CompiledPolicy;
  private listeners: DecisionListener[] = [];
  private server: MilterServer | undefined;
  private ops: Server | null = null;
  private stopping = false;
  private valve: MemoryValve | null = null;
  /** The `server.heap` profile in effect (a reload that changes it says so). */
  private heapProfile: PolicyConfig['server']['heap'] | null = null;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  private compile(config: PolicyConfig): CompiledPolicy {
    return new CompiledPolicy(config, this.file, this.log, { hooks: engineHooks });
  }

  private onDecision = (d: Decision): void => {
    countDecision(d);
    for (const l of this.listeners) {
      try {
        l(d);
      } catch (err) {
        this.log.error(`decision listener failed: ${(err as Error).message}`);
      }
    }
  };

  async start(
    config: PolicyConfig,
    listenSpec: string,
    metricsSpec: string,
    pidFile: string | undefined,
  ): Promise<void> {
    try {
      mkdirSync(config.server.state_dir, { recursive: true, mode: 0o750 });
    } catch (err) {
      this.log.warn(`cannot create state_dir ${config.server.state_dir}: ${(err as Error).message}`);
    }
    const stale = await removeStaleSpills(config.server.spool_dir);
    if (stale.length > 0) {
      this.log.info(
        `removed ${stale.length} message bodies left in ${config.server.spool_dir ?? tmpdir()} by a relayguard that did not exit cleanly`,
      );
    }
    this.heap(config);
    this.policy = this.compile(config);
    this.listeners = decisionListeners.map((make) => make(this.policy));
    // The ops endpoint first: if its port is taken we fail before taking mail.
    if (metricsSpec !== 'off') {
      this.ops = await startOpsServer(metricsSpec, {
        healthy: () => ({
          ok: !this.stopping,
          detail: {
            policy: this.file,
            connections: this.server?.connections ?? 0,
            rules: this.policy.engine.activeRules().map((r) => r.name),
          },
        }),
      });
    }
    const valve = (this.valve = this.memoryValve());
    this.server = new MilterServer(this.policy, {
      listen: parseListen(listenSpec),
      socketMode: parseInt(config.server.socket_mode, 8),
      ...(listenSpec.startsWith('unix:') ? { socketGid: socketGroup(config.server.socket_group)?.gid ?? null } : {}),
      maxConnections: config.server.max_connections,
      log: this.log,
      onDecision: this.onDecision,
      ...(valve ? { onBusy: (busy: boolean) => (busy ? valve.start() : valve.stop()) } : {}),
    });
    try {
      await this.server.start();
    } catch (err) {
      this.ops?.close();
      await this.policy.close();
      throw err;
    }
    // The handlers first: whoever sees the pid file or the "listening" line may signal at once,
    // and SIGHUP's default action would end the process (stdout to a pipe is written at once).
    process.on('SIGHUP', () => void this.reload());
    process.on('SIGTERM', () => void this.stop('SIGTERM', pidFile));
    process.on('SIGINT', () => void this.stop('SIGINT', pidFile));
    if (pidFile) writeFileSync(pidFile, `${process.pid}\n`);
    const rules = this.policy.engine.activeRules().map((r) => `${r.name}:${r.mode}`);
    this.log.info(
      `relayguard listening on ${listenSpec} with policy ${this.file} (${rules.join(', ') || 'no rules'}; heap ${config.server.heap})${this.ops ? `; metrics on ${metricsSpec}` : ''}`,
    );
    void this.notify(['READY=1', `STATUS=listening on ${listenSpec}`]);
    for (const check of startupChecks) {
      check(config, this.log).catch((err: Error) => this.log.warn(`start-up check failed: ${err.message}`));
    }
  }

  /** Tells systemd (Type=notify) where the daemon stands; a failure is a warning, never fatal. */
  private notify(fields: string[]): Promise<void> {
    return notifySystemd(fields).then((why) => {
      if (why) this.log.warn(`systemd notification ${fields[0]} not sent: ${why}`);
    });
  }

  /** `server.heap` for the whole process (src/ops/heap-profile.ts); V8 refusing it is a warning, not a stop. */
  private heap(config: PolicyConfig): void {
    const profile = config.server.heap;
    const refused = applyHeapProfile(profile);
    if (refused) this.log.warn(`server.heap ${profile} not applied (${refused}): V8 sizes the heap itself`);
    else if (this.heapProfile !== null && this.heapProfile !== profile) this.log.info(`server.heap is now ${profile}`);
    this.heapProfile = profile;
  }

  /** The memory valve (src/ops/memory-valve.ts), or null with a warning where gc() cannot be had. */
  private memoryValve(): MemoryValve | null {
    const gc = gcCollector();
    if ('error' in gc) {
      this.log.warn(`memory valve off (${gc.error}): a large message may grow memory by up to 32 MiB more`);
      return null;
    }
    return new MemoryValve({ collect: gc.collect, onCollect: () => memoryValveCollectionsTotal.inc() });
  }

  /** Validate completely, then swap; a bad file keeps the running policy. */
  async reload(): Promise<boolean> {
    const r = loadPolicyFile(this.file);
    if (!r.ok) {
      reloadsTotal.inc({ result: 'invalid' });
      this.log.error(`reload: ${this.file} is invalid; keeping the running policy`);
      for (const e of r.errors) this.log.error(`reload: ${formatError(e)}`);
      return false;
    }
    // As at start: the state directory's fallback, and the default policy fitted to this host.
    r.config.server.state_dir = resolveStateDir(r.config.server.state_dir).dir;
    if (this.file === DEFAULT_POLICY) await fitDefaultPolicy(r.config, this.log);
    let next: CompiledPolicy;
    try {
      next = this.compile(r.config);
    } catch (err) {
      reloadsTotal.inc({ result: 'failed' });
      this.log.error(`reload: cannot start policy ${this.file}: ${(err as Error).message}; keeping the running policy`);
      return false;
    }
    this.heap(r.config);
    const old = this.server!.swapPolicy(next);
    this.policy = next;
    this.listeners = decisionListeners.map((make) => make(next));
    reloadsTotal.inc({ result: 'ok' });
    this.log.info(`reload: policy ${this.file} active for new connections`);
    setTimeout(() => void old.close(), OLD_POLICY_LINGER_MS).unref();
    return true;
  }

  async stop(sig: string, pidFile: string | undefined): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info(
      `${sig}: no new connections; waiting up to ${SHUTDOWN_GRACE_MS / 1000}s for ${this.server?.connections ?? 0} session(s)`,
    );
    await this.notify(['STOPPING=1', `STATUS=draining ${this.server?.connections ?? 0} session(s)`]);
    await this.server?.close(SHUTDOWN_GRACE_MS);
    this.valve?.stop();
    await this.policy.close();
    this.ops?.close();
    if (pidFile) rmSync(pidFile, { force: true });
    this.log.info('stopped');
    this.log.on('finish', () => process.exit(0));
    this.log.end();
    setTimeout(() => process.exit(0), 1000).unref();
  }
}

export const serveCommand: Command = {
  ...about('serve'),
  async run(argv) {
    const args = parseArgs(argv, {
      config: { value: true },
      listen: { value: true },
      metrics: { value: true },
      'pid-file': { value: true },
    });
    const { config, file, stateNote } = loadPolicyOrExit(str(args, 'config'));
    const log = createLogger(config.logging);
    if (stateNote) log.info(stateNote);
    if (file === DEFAULT_POLICY) await fitDefaultPolicy(config, log);
    try {
      socketGroup(config.server.socket_group); // a named group that does not exist: say so, not a stack trace
    } catch (err) {
      writeError(`relayguard serve: ${(err as Error).message}\n`);
      return 1;
    }
    const daemon = new Daemon(file, log);
    await daemon.start(
      config,
      str(args, 'listen') ?? config.server.listen,
      str(args, 'metrics') ?? config.server.metrics,
      str(args, 'pid-file') ?? config.server.pid_file,
    );
    return -1;
  },
};
