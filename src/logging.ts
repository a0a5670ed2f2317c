// winston logger: JSON lines by default (journald/syslog friendly), text on a terminal.
// Every line of a connection carries its id and, once known, the Postfix queue id: a session
// logs through a child logger bound to its LogContext object, which it updates in place when the
// queue id changes (winston reads a child's fields at write time). Code that logs through the
// root logger can run inside `logContext` to get the same fields; the milter hot path does not,
// because AsyncLocalStorage turns on promise hooks for every promise of the process.
import { AsyncLocalStorage } from 'node:async_hooks';
import winston from 'winston';
import type { LoggingSettings } from './config/settings.js';
import { showable } from './safe-text.js';

export interface LogContext {
  conn?: string;
  qid?: string;
}

export const logContext = new AsyncLocalStorage<LogContext>();

const addContext = winston.format((info) => {
  const ctx = logContext.getStore();
  if (ctx?.conn && info.conn === undefined) info.conn = ctx.conn;
  if (ctx?.qid && info.qid === undefined) info.qid = ctx.qid;
  return info;
});

/** The level a line was logged at (winston keeps it under a symbol; `level` may be restyled). */
const LEVEL = Symbol.for('level');

/**
 * Drops lines below the logger's level before any other format runs. winston filters levels in
 * the transport, after the whole format chain (timestamp, JSON), so a debug line that nobody
 * writes would otherwise cost as much as one that is written.
 */
function dropDisabled(logger: () => winston.Logger | undefined) {
  return winston.format((info) => {
    const l = logger();
    if (!l) return info;
    const levels = l.levels;
    const want = levels[(info as unknown as Record<symbol, string>)[LEVEL] ?? info.level];
    const max = levels[l.level];
    return want === undefined || max === undefined || want <= max ? info : false;
  })();
}

const textLine = winston.format.printf((info) => {
  const { level, message, timestamp, conn, qid, ...rest } = info as Record<string, unknown>;
  // Everything but the fixed parts may come from the network: escaped, so a line break in a
  // MAIL FROM cannot forge a log line and ESC cannot act on a terminal.
  const where = [conn ? `conn=${showable(String(conn))}` : '', qid ? `qid=${showable(String(qid))}` : ''].filter(Boolean).join(' ');
  const extra = Object.entries(rest)
    .filter(([k]) => typeof k === 'string' && !k.startsWith('Symbol'))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? showable(v) : JSON.stringify(v)}`)
    .join(' ');
  return `${timestamp} ${level}: ${where ? where + ': ' : ''}${showable(String(message))}${extra ? ' ' + showable(extra) : ''}`;
});

export function createLogger(settings: Partial<LoggingSettings> = {}, stream: NodeJS.WritableStream = process.stderr): winston.Logger {
  const format = settings.format ?? 'auto';
  const text = format === 'text' || (format === 'auto' && (stream as { isTTY?: boolean }).isTTY === true);
  let logger: winston.Logger | undefined;
  logger = winston.createLogger({
    level: settings.level ?? 'info',
    format: winston.format.combine(dropDisabled(() => logger), addContext(), winston.format.timestamp(), text ? textLine : winston.format.json()),
    transports: [new winston.transports.Stream({ stream })],
  });
  return logger;
}

/** A logger that drops everything (tests, offline tools). */
export function silentLogger(): winston.Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
