// winston logger: JSON lines by default (journald/syslog friendly), text on a terminal.
// Every line of a connection carries its id and, once known, the Postfix queue id: sessions
// run inside AsyncLocalStorage and use a child logger bound to those fields.
import { AsyncLocalStorage } from 'node:async_hooks';
import winston from 'winston';
import type { LoggingSettings } from './config/settings.js';

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

const textLine = winston.format.printf((info) => {
  const { level, message, timestamp, conn, qid, ...rest } = info as Record<string, unknown>;
  const where = [conn ? `conn=${conn}` : '', qid ? `qid=${qid}` : ''].filter(Boolean).join(' ');
  const extra = Object.entries(rest)
    .filter(([k]) => typeof k === 'string' && !k.startsWith('Symbol'))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${timestamp} ${level}: ${where ? where + ': ' : ''}${message}${extra ? ' ' + extra : ''}`;
});

export function createLogger(settings: Partial<LoggingSettings> = {}, stream: NodeJS.WritableStream = process.stderr): winston.Logger {
  const format = settings.format ?? 'auto';
  const text = format === 'text' || (format === 'auto' && (stream as { isTTY?: boolean }).isTTY === true);
  return winston.createLogger({
    level: settings.level ?? 'info',
    format: winston.format.combine(addContext(), winston.format.timestamp(), text ? textLine : winston.format.json()),
    transports: [new winston.transports.Stream({ stream })],
  });
}

/** A logger that drops everything (tests, offline tools). */
export function silentLogger(): winston.Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
