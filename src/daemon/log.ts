// The daemon's log output: one event, one line. JSON lines for journald and log shippers (no empty fields), or
// on a terminal one readable line per event with its details indented below it, only when there are any.
// When the output is journald's stream ($JOURNAL_STREAM names it), each line starts with the `<N>` syslog
// priority journald reads (SyslogLevelPrefix=, on by default), so `journalctl -p err` finds the errors.
import { fstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { DestinationStream, Logger } from 'pino';

// pino (~30 modules) is loaded by the first logger (`hotconf check` never makes one), pino-pretty (31) only when
// a terminal gets pretty lines: JSON output never needs it.
const require = createRequire(import.meta.url);
const pino = (): typeof import('pino').pino => (require('pino') as typeof import('pino')).pino;
const prettyFactory: typeof import('pino-pretty').prettyFactory = (options) => (require('pino-pretty') as typeof import('pino-pretty')).prettyFactory(options);

/** pino's level (10 trace … 60 fatal) as a syslog priority: fatal 2 (crit), error 3, warn 4, info 6, debug/trace 7. */
export function syslogPriority(level: number): number {
  return level >= 60 ? 2 : level >= 50 ? 3 : level >= 40 ? 4 : level >= 30 ? 6 : 7;
}

/** Whether `fd` is the stream systemd connected to journald: $JOURNAL_STREAM is its `device:inode`. */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true }); // once, at start
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

/** Fields every line has, or that the line's layout already shows. */
const BASE = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'module']);

const isEmpty = (v: unknown) => v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
const scalar = (v: unknown): v is string | number | boolean | bigint => ['string', 'number', 'boolean', 'bigint'].includes(typeof v);

/** `msg key=value …` and, below it, an indented line per error (config errors, an `err`'s stack) or long field. */
export function prettyMessage(log: Record<string, unknown>): string {
  const inline: string[] = [];
  const details: string[] = [];
  for (const [key, value] of Object.entries(log)) {
    if (BASE.has(key) || isEmpty(value)) continue;
    if (key === 'err' && typeof value === 'object') {
      const err = value as { stack?: string; message?: string };
      details.push(...String(err.stack ?? err.message ?? JSON.stringify(err)).split('\n'));
    } else if (Array.isArray(value) && value.every((e) => typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string')) {
      details.push(...value.map((e) => (e as { message: string }).message));
    } else if (scalar(value)) {
      inline.push(`${key}=${String(value)}`);
    } else if (Array.isArray(value) && value.every(scalar)) {
      const shown = value.slice(0, 10).map(String).join(',');
      inline.push(`${key}=${shown}${value.length > 10 ? `,… (${value.length})` : ''}`);
    } else {
      const text = JSON.stringify(value);
      if (text.length <= 80) inline.push(`${key}=${text}`);
      else details.push(`${key}: ${text}`);
    }
  }
  const head = `${typeof log.module === 'string' ? `[${log.module}] ` : ''}${typeof log.msg === 'string' ? log.msg : ''}${inline.length > 0 ? ` ${inline.join(' ')}` : ''}`;
  return [head, ...details.map((d) => `    ${d}`)].join('\n');
}

/** Drops empty fields (`removed: []`) from a JSON line's object: every field a line has says something. */
function dropEmpty(object: Record<string, unknown>): Record<string, unknown> {
  return Object.values(object).some(isEmpty) ? Object.fromEntries(Object.entries(object).filter(([, v]) => !isEmpty(v))) : object;
}

/** pino's output stream: formats each line (pretty or JSON as it is) and prefixes each line with `<N>` for journald. */
function outputStream(fd: 1 | 2, pretty: boolean, journald: boolean): DestinationStream {
  const out = pino().destination({ dest: fd, sync: true });
  const format = pretty
    ? prettyFactory({
        colorize: !journald && (fd === 1 ? process.stdout : process.stderr).isTTY === true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,name',
        hideObject: true,
        messageFormat: (log) => prettyMessage(log),
      })
    : undefined;
  return {
    write(line: string) {
      const text = format ? format(line) : line;
      if (!journald) {
        out.write(text);
        return;
      }
      const level = Number(/"level":(\d+)/.exec(line)?.[1] ?? 30);
      const prefix = `<${syslogPriority(level)}>`;
      out.write(prefix + text.replace(/\n(?=.)/g, `\n${prefix}`));
    },
  };
}

/** A logger for the daemon: JSON lines on `fd` (journald), pretty on a terminal. Secrets are redacted. */
export function daemonLogger(settings: { log: { level: string; pretty?: boolean } }, fd: 1 | 2 = 1, env: NodeJS.ProcessEnv = process.env): Logger {
  const pretty = settings.log.pretty ?? (fd === 1 ? process.stdout : process.stderr).isTTY === true;
  return pino()(
    {
      name: 'hotconf',
      level: settings.log.level,
      formatters: { log: dropEmpty },
      // hotconf never logs config values; this guards the fields that could carry credentials anyway.
      redact: { paths: ['req.headers.authorization', '*.password', '*.token', '*.secret'], censor: '[REDACTED]' },
    },
    outputStream(fd, pretty, isJournalStream(fd, env)),
  );
}
