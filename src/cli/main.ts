#!/usr/bin/env node
// The `hotconf` command. For now `hotconf run` serves a config directory and logs each committed version;
// the daemon issue grows it into the systemd service (signals, sd_notify, check/get/watch).
import { Command, InvalidArgumentError } from 'commander';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createHotconf, InitialLoadError } from '../index.js';

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(await readFile(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };

const nonNegativeInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number >= 0');
  return n;
};

const program = new Command('hotconf')
  .description('Keep config files live: watch, validate against JSON Schema, swap atomically, notify.')
  .version(pkg.version)
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

program
  .command('run')
  .description('watch a config directory and keep the validated configs live')
  .option('--config-dir <dir>', 'directory of config files', path.join(packageRoot, 'config'))
  .option('--schema-dir <dir>', 'directory of <name>.schema.json files', path.join(packageRoot, 'schemas'))
  .option('--debounce-ms <ms>', 'quiet time before a batch is processed', nonNegativeInt, 25)
  .option('--batch-policy <policy>', 'all-or-nothing | per-file', 'all-or-nothing')
  .action(async (opts: { configDir: string; schemaDir: string; debounceMs: number; batchPolicy: string }) => {
    const logger = pino({ name: 'hotconf', level: process.env.HOTCONF_LOG_LEVEL ?? 'info' });
    if (opts.batchPolicy !== 'all-or-nothing' && opts.batchPolicy !== 'per-file') {
      program.error(`error: option '--batch-policy <policy>' must be all-or-nothing or per-file`, { exitCode: 2 });
    }
    let hot;
    try {
      hot = await createHotconf({
        configDir: opts.configDir,
        schemaDir: opts.schemaDir,
        debounceMs: opts.debounceMs,
        batchPolicy: opts.batchPolicy as 'all-or-nothing' | 'per-file',
        logger,
      });
    } catch (err) {
      if (err instanceof InitialLoadError) {
        for (const e of err.errors) logger.error({ code: e.code, file: e.file, line: e.line, col: e.col, pointer: e.pointer }, e.message);
        logger.fatal('initial config is invalid; not starting');
        process.exitCode = 1;
        return;
      }
      throw err;
    }
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) process.exit(1);
      stopping = true;
      logger.info({ signal }, 'stopping');
      hot.close().then(
        () => logger.flush(() => process.exit(0)),
        (err: unknown) => {
          logger.error({ err }, 'close failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGHUP', () => {
      hot.reload().then(
        (r) => logger.info({ version: r.version, errors: r.errors.length }, 'reloaded'),
        (err: unknown) => logger.error({ err }, 'reload failed'),
      );
    });
  });

await program.parseAsync(process.argv);
