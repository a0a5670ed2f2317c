// winston logger. Formats: JSON lines, or text lines in the shape of Postfix's own log
// (decisions read like `QUEUEID: reject: RCPT from host[ip]: 554 5.7.1 ...; rule=relay ref=...`);
// `auto` picks text on a terminal and under systemd's journal, JSON otherwise. Under the journal
// (stderr is the stream named by JOURNAL_STREAM) every line starts with its sd-daemon priority,
// `<3>` error to `<7>` debug, so `journalctl -p warning` finds warnings and errors, and no time
// stamp is written (journald has its own).
// Every line of a connection carries its id and, once known, the Postfix queue id: a session
// logs through a child logger bound to its LogContext object, which it updates in place when the
// queue id changes (winston reads a child's fields at write time). Code that logs through the
// root logger can run inside `logContext` to get the same fields; the milter hot path does not,
// because AsyncLocalStorage turns on promise hooks for every promise of the process.
import { AsyncLocalStorage } from 'node:async_hooks';
import winston from 'winston';
import { stderrIsJournal } from './journal-stream.js';
import { showable } from '../primitives/safe-text.js';

export interface LogContext {
  conn?: string;
  qid?: string;
}

const logContext = new AsyncLocalStorage<LogContext>();

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

/** sd-daemon(3) priorities: what journald files each level under. */
const SD_PRIORITY: Readonly<Record<string, number>> = { error: 3, warn: 4, info: 6, debug: 7 };
/** Postfix's words for the levels it prefixes (info lines have none). */
const LEVEL_WORD: Readonly<Record<string, string>> = {
  error: 'error: ',
  warn: 'warning: ',
  info: '',
  debug: 'debug: ',
};
/** The SMTP command (as Postfix names it in its reject lines) that each milter phase answers. */
const COMMAND: Readonly<Record<string, string>> = {
  connect: 'CONNECT',
  helo: 'HELO',
  envfrom: 'MAIL',
  envrcpt: 'RCPT',
  data: 'DATA',
  header: 'END-OF-MESSAGE',
  eoh: 'END-OF-MESSAGE',
  body: 'END-OF-MESSAGE',
  eom: 'END-OF-MESSAGE',
  unknown: 'UNKNOWN',
};
const MESSAGE = Symbol.for('message');

function value(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[\s;"]/.test(s) || s === '' ? JSON.stringify(s) : s;
}

interface TraceLike {
  rule?: string;
  action?: string;
  monitor?: boolean;
}

/** A decision in Postfix's shape: `QID: reject: RCPT from host[ip]: 554 5.7.1 reason; from=<..> to=<..> rule=.. ref=..`. */
function decisionText(f: Record<string, unknown>): string {
  const qid = typeof f.qid === 'string' && f.qid ? f.qid : 'NOQUEUE';
  const host = typeof f.client_name === 'string' && f.client_name ? f.client_name : 'unknown';
  const where = `${COMMAND[String(f.phase)] ?? String(f.phase).toUpperCase()} from ${host}[${String(f.client ?? '')}]`;
  const reply = [f.reply, f.reason].filter((x) => typeof x === 'string' && x).join(' ');
  const rcpt = Array.isArray(f.rcpt) ? f.rcpt.map((r) => `to=<${String(r)}>`) : [];
  const trace = Array.isArray(f.trace)
    ? (f.trace as TraceLike[])
        .filter((t) => t.action !== 'continue' || t.monitor)
        .map((t) => `${t.rule}:${t.monitor ? 'would-' : ''}${t.action}`)
    : [];
  const tail = [
    ...(f.from !== undefined ? [`from=<${String(f.from)}>`] : []),
    ...rcpt,
    ...(f.direction ? [`direction=${String(f.direction)}`] : []),
    ...(f.rule ? [`rule=${String(f.rule)}`] : []),
    ...(f.quarantine ? [`quarantine=${value(f.quarantine)}`] : []),
    ...(f.ref ? [`ref=${String(f.ref)}`] : []),
    ...(trace.length ? [`trace=${trace.join(',')}`] : []),
    ...(f.conn ? [`conn=${String(f.conn)}`] : []),
  ];
  const action = f.action === 'continue' ? 'accept' : String(f.action); // "continue" past the last phase is delivery
  return `${qid}: ${action}: ${where}${reply ? `: ${reply}` : ''}; ${tail.join(' ')}`;
}

/** Any other line: `QID: message key=value ...` (conn= when no queue id yet). */
function plainText(message: string, f: Record<string, unknown>): string {
  const { conn, qid, ...rest } = f;
  const who = typeof qid === 'string' && qid ? `${qid}: ` : '';
  const extra = Object.entries(rest).map(([k, v]) => `${k}=${value(v)}`);
  if (!who && conn) extra.push(`conn=${String(conn)}`);
  return `${who}${message}${extra.length ? ' ' + extra.join(' ') : ''}`;
}

function textLine(withTime: boolean) {
  return winston.format.printf((info) => {
    const { level, message, timestamp, ...fields } = info as Record<string, unknown>;
    const lvl = String((info as unknown as Record<symbol, string>)[LEVEL] ?? level);
    const body =
      typeof message === 'string' && message.startsWith('decision ') && fields.phase !== undefined
        ? decisionText(fields)
        : plainText(String(message), fields);
    // Everything but the fixed parts may come from the network: escaped, so a line break in a
    // MAIL FROM cannot forge a log line and ESC cannot act on a terminal.
    return `${withTime ? `${String(timestamp)} ` : ''}${LEVEL_WORD[lvl] ?? `${lvl}: `}${showable(body)}`;
  });
}

/** Prefixes the finished line with its sd-daemon priority; a line break would start a journal entry of its own, so none is left. */
const journalPriority = winston.format((info) => {
  const lvl = String((info as unknown as Record<symbol, string>)[LEVEL] ?? info.level);
  const record = info as unknown as Record<symbol, string>;
  record[MESSAGE] = `<${SD_PRIORITY[lvl] ?? 6}>${String(record[MESSAGE]).replace(/\r?\n/g, '\\n')}`;
  return info;
});

export interface LoggerTarget {
  /** Under systemd's journal: priority prefixes, no time stamps; default: stderr is JOURNAL_STREAM. */
  journal?: boolean;
  /** A terminal; default: the stream's isTTY. */
  tty?: boolean;
}

/** The policy's `logging:` block (config/settings.ts validates it; this layer sits below). */
export interface LogSettings {
  level: 'error' | 'warn' | 'info' | 'debug';
  /** auto: text on a terminal and under systemd's journal, JSON lines otherwise. */
  format: 'auto' | 'json' | 'text';
}

export function createLogger(
  settings: Partial<LogSettings> = {},
  stream: NodeJS.WritableStream = process.stderr,
  target: LoggerTarget = {},
): winston.Logger {
  const format = settings.format ?? 'auto';
  const journal = target.journal ?? (stream === process.stderr && stderrIsJournal());
  const tty = target.tty ?? (stream as { isTTY?: boolean }).isTTY === true;
  const text = format === 'text' || (format === 'auto' && (tty || journal));
  const line = text ? textLine(!journal) : winston.format.json();
  const logger: winston.Logger = winston.createLogger({
    level: settings.level ?? 'info',
    format: winston.format.combine(
      dropDisabled(() => logger),
      addContext(),
      winston.format.timestamp(),
      line,
      ...(journal ? [journalPriority()] : []),
    ),
    transports: [new winston.transports.Stream({ stream })],
  });
  return logger;
}

/** A logger that drops everything (tests, offline tools). */
export function silentLogger(): winston.Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
