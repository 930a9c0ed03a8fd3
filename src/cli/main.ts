#!/usr/bin/env node
// The `hotconf` command: `run` (the daemon), `check` (a dry run for CI and ExecStartPre=), `get` (one value),
// `watch` (committed changes as NDJSON), and the fleet's commands (fleet.ts: push, history, rollback, diff, rollout).
// Usage errors exit 2, invalid config 1, cannot-run 3.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFile, stat } from 'node:fs/promises';
import { fleetCommands } from './fleet.js';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { commandCheck, daemonLogger, escapeControl, EXIT, hotconfOptionsOf, loadSettings, runDaemon, SettingsError, type SettingsLayer } from '../daemon/index.js';
import { DEFAULTS, PACKAGE_ROOT, resolvePaths } from '../daemon/settings.js';
import { reloadAndWait } from '../daemon/reload.js';
import { checkConfigs, createHotconf, InitialLoadError, redact, type CheckReport } from '../index.js';
import { BATCH_POLICIES, OPTION_DEFAULTS, OPTION_TABLE, UNKNOWN_FORMATS, type OptionKey } from '../options.js';

// A reader that goes away (`hotconf --help | head -1`) is not an error of ours: stop quietly, no stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK);
  });
}

const pkg = JSON.parse(await readFile(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };

/** `(default: 25 ms)`: a flag's built-in default, as the options table has it. */
const byDefault = (key: OptionKey): string => {
  const unit = OPTION_TABLE[key].unit;
  return `(default: ${String(OPTION_DEFAULTS[key])}${unit === 'ms' || unit === 'bytes' ? ` ${unit}` : ''})`;
};

const wholeNumber = (value: string): number => {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number >= 0');
  return Number(value);
};

/** The flags shared by every command that reads configs from disk. */
interface DirFlags {
  config?: string | undefined;
  configDir?: string | undefined;
  schemaDir?: string | undefined;
  [flag: string]: unknown;
}

function dirOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-c, --config <file>', 'the daemon settings file (hotconf.yaml)').env('HOTCONF_CONFIG'))
    .option('--config-dir <dir>', 'directory of config files (default: ./hotconf.yaml\'s, else ./config)')
    .option('--schema-dir <dir>', 'directory of <name>.schema.json files (default: ./hotconf.yaml\'s, else ./schemas)')
    .option('--strict-schemas', "compile schemas in ajv's strict mode: its lint findings refuse the schema")
    .option('--use-defaults', 'fill schema defaults into each valid config (after validation)')
    .addOption(new Option('--unknown-formats <what>', `what an unknown schema format does ${byDefault('unknownFormats')}`).choices(UNKNOWN_FORMATS))
    .option('--follow-external-links', 'follow symlinks whose target is outside the config dir (default: refused)');
}

const isDir = (dir: string) => stat(dir).then((s) => s.isDirectory(), () => false);

/** `./config` when inside the current directory, else the absolute path: how the CLI names a directory. */
function shown(dir: string): string {
  const rel = path.relative(process.cwd(), path.resolve(dir));
  return escapeControl(rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(dir) : `./${rel}`);
}

/**
 * Where the configs are when no flag or variable says: ./hotconf.yaml, else ./config + ./schemas, else a usage
 * error (exit 2) naming what was looked for. Never the package's own demo (only `npm start` in the repository
 * serves that, by passing its hotconf.yaml), so `npx hotconf check` in a project checks that project.
 */
async function findConfig(flags: DirFlags, { etcdIsASource = true } = {}): Promise<void> {
  const env = process.env;
  const etcd = etcdIsASource ? (flags.etcd ?? (env.HOTCONF_ETCD || undefined)) : undefined;
  const told = flags.config ?? flags.configDir ?? etcd ?? (env.HOTCONF_CONFIG_DIR || undefined);
  if (told !== undefined) return;
  if (await stat('hotconf.yaml').then((s) => s.isFile(), () => false)) {
    flags.config = 'hotconf.yaml';
  } else if ((await isDir('config')) && (flags.schemaDir !== undefined || env.HOTCONF_SCHEMA_DIR || (await isDir('schemas')))) {
    flags.configDir = 'config';
    flags.schemaDir ??= env.HOTCONF_SCHEMA_DIR ? undefined : 'schemas';
  } else {
    process.stderr.write(
      `hotconf: no configs to use in ${process.cwd()}: looked for ./hotconf.yaml, then the directories ./config and ./schemas.\n` +
        'Pass --config hotconf.yaml, or --config-dir DIR --schema-dir DIR (or $HOTCONF_CONFIG / $HOTCONF_CONFIG_DIR).\n',
    );
    process.exit(EXIT.USAGE);
  }
}

function flagLayer(flags: DirFlags): SettingsLayer {
  const layer: SettingsLayer = {};
  if (flags.configDir !== undefined) layer.configDir = flags.configDir;
  if (flags.schemaDir !== undefined) layer.schemaDir = flags.schemaDir;
  if (flags.strictSchemas === true) layer.schemaStrict = true;
  if (flags.useDefaults === true) layer.useDefaults = true;
  if (flags.unknownFormats !== undefined) layer.unknownFormats = flags.unknownFormats as NonNullable<SettingsLayer['unknownFormats']>;
  if (flags.batchPolicy !== undefined) layer.batchPolicy = flags.batchPolicy as NonNullable<SettingsLayer['batchPolicy']>;
  if (flags.debounceMs !== undefined) layer.debounceMs = flags.debounceMs as number;
  if (flags.startWithValid === true) layer.startWithValid = true;
  if (flags.followExternalLinks === true) layer.followExternalLinks = true;
  if (flags.logLevel !== undefined) layer.log = { level: flags.logLevel as string };
  if (flags.pretty !== undefined) layer.log = { ...layer.log, pretty: flags.pretty as boolean };
  if (flags.http !== undefined || flags.httpTokenFile !== undefined || flags.allowAllInterfaces === true) {
    layer.http = {
      ...(flags.http === undefined ? {} : { listen: flags.http as string }),
      ...(flags.httpTokenFile === undefined ? {} : { tokenFile: flags.httpTokenFile as string }),
      ...(flags.allowAllInterfaces === true ? { allowAllInterfaces: true } : {}),
    };
  }
  if (flags.publishDir !== undefined) layer.publish = { dir: flags.publishDir as string };
  if (flags.publishFormat !== undefined) layer.publish = { ...layer.publish, format: flags.publishFormat as 'json' | 'original' | 'source' } as NonNullable<SettingsLayer['publish']>;
  if (flags.notifyWebhook !== undefined) layer.notify = { webhook: { url: flags.notifyWebhook as string } };
  const etcd: NonNullable<SettingsLayer['etcd']> = {};
  if (flags.etcd !== undefined) etcd.endpoints = (flags.etcd as string).split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (flags.etcdPrefix !== undefined) etcd.prefix = flags.etcdPrefix as string;
  if (flags.etcdUsername !== undefined) etcd.username = flags.etcdUsername as string;
  if (flags.etcdPasswordFile !== undefined) etcd.passwordFile = flags.etcdPasswordFile as string;
  if (flags.instanceId !== undefined) etcd.instanceId = flags.instanceId as string;
  if (flags.cacheDir !== undefined) etcd.cacheDir = flags.cacheDir as string;
  for (const k of ['ca', 'cert', 'key'] as const) {
    const v = flags[`etcd${k[0]!.toUpperCase()}${k.slice(1)}`];
    if (v !== undefined) etcd.tls = { ...etcd.tls, [k]: v as string };
  }
  if (Object.keys(etcd).length > 0) layer.etcd = etcd;
  return resolvePaths(layer, process.cwd());
}

/** The flags that point at etcd, shared by `run` and `push`. */
function etcdOptions(cmd: Command): Command {
  return cmd
    .option('--etcd <urls>', 'read the configs from etcd instead of a directory: http(s)://HOST:PORT[,…] (or $HOTCONF_ETCD)')
    .option('--etcd-prefix <prefix>', 'key prefix of the configs: <prefix>app.yaml is the config app (or $HOTCONF_ETCD_PREFIX)')
    .option('--etcd-username <user>', 'etcd user, with auth enabled (or $HOTCONF_ETCD_USERNAME)')
    .option('--etcd-password-file <file>', "file holding the etcd user's password (or $HOTCONF_ETCD_PASSWORD)")
    .option('--etcd-ca <file>', 'PEM CA of the etcd server certificate')
    .option('--etcd-cert <file>', 'PEM client certificate for etcd')
    .option('--etcd-key <file>', 'PEM client key for etcd');
}

/** Settings for the one-shot commands; problems with them are reported and exit 3. */
async function oneShotSettings(flags: DirFlags) {
  await findConfig(flags);
  try {
    return await loadSettings({ settingsFile: flags.config, flags: flagLayer(flags) });
  } catch (err) {
    if (err instanceof SettingsError) {
      for (const e of err.errors) process.stderr.write(`hotconf: ${e.message}\n`);
      process.exit(EXIT.CANNOT_RUN);
    }
    throw err;
  }
}

const program = new Command('hotconf')
  .description('Keep config files live: watch, validate against JSON Schema, swap atomically, notify.')
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .addHelpText(
    'after',
    '\nExit codes: 0 ok, 1 invalid config, 2 usage error, 3 cannot run (bad settings, missing directory).\n' +
      'Environment: HOTCONF_CONFIG, HOTCONF_CONFIG_DIR, HOTCONF_SCHEMA_DIR, HOTCONF_LOG_LEVEL, HOTCONF_BATCH_POLICY,\n' +
      '             HOTCONF_DEBOUNCE_MS, HOTCONF_VERIFY_INTERVAL_MS, HOTCONF_MAX_FILE_BYTES, HOTCONF_REQUIRE_SCHEMA,\n' +
      '             HOTCONF_HTTP, HOTCONF_HTTP_TOKEN, HOTCONF_PUBLISH_DIR, HOTCONF_NOTIFY_WEBHOOK,\n' +
      '             HOTCONF_ETCD, HOTCONF_ETCD_PREFIX, HOTCONF_ETCD_USERNAME, HOTCONF_ETCD_PASSWORD, HOTCONF_ETCD_PASSWORD_FILE,\n' +
      '             HOTCONF_ETCD_CA, HOTCONF_ETCD_CERT, HOTCONF_ETCD_KEY, HOTCONF_INSTANCE_ID, HOTCONF_CACHE_DIR.',
  );

etcdOptions(dirOptions(program.command('run').description('run the daemon: keep the validated configs live until SIGTERM')))
  .addOption(new Option('--batch-policy <policy>', `what a bad file does to its batch ${byDefault('batchPolicy')}`).choices(BATCH_POLICIES))
  .option('--debounce-ms <ms>', `quiet time before a batch is processed ${byDefault('debounceMs')}`, wholeNumber)
  .addOption(new Option('--log-level <level>', `log level (default: ${DEFAULTS.log.level})`).choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
  .option('--pretty', 'human-readable logs (default when stdout is a terminal)')
  .option('--no-pretty', 'JSON logs even on a terminal')
  .option('--start-with-valid', 'start with the valid configs when some are invalid')
  .option('--http <listen>', 'serve the sidecar HTTP API on HOST:PORT or unix:/path.sock (127.0.0.1 unless told)')
  .option('--http-token-file <file>', 'bearer token file for the HTTP API (or $HOTCONF_HTTP_TOKEN)')
  .option('--allow-all-interfaces', 'allow --http to bind 0.0.0.0 or ::')
  .option('--publish-dir <dir>', 'publish every committed version into this directory, atomically')
  .addOption(new Option('--publish-format <format>', 'published files: json (the value as <name>.json), original, or source (the source file name and exact bytes) (default: json)').choices(['json', 'original', 'source']))
  .option('--notify-webhook <url>', 'POST each committed version to this URL')
  .option('--instance-id <id>', 'this instance in an etcd fleet (or $HOTCONF_INSTANCE_ID; default: the pod name under Kubernetes, else the host name)')
  .option('--cache-dir <dir>', 'keep each applied etcd release here, to start from it while etcd is down (or $HOTCONF_CACHE_DIR)')
  .action(async (flags: DirFlags) => {
    await findConfig(flags);
    process.exitCode = await runDaemon({ settingsFile: flags.config, flags: flagLayer(flags) });
  });

dirOptions(program.command('check').description('validate every config (or the given files) without running; exit 0 when all are valid'))
  .argument('[paths...]', 'config files to check (default: all under the config dir)')
  .option('--json', 'print a JSON report instead of lines')
  .action(async (paths: string[], flags: DirFlags & { json?: boolean }) => {
    const settings = await oneShotSettings(flags);
    let report: CheckReport;
    try {
      // validate.command judges the whole tree, as the daemon runs it before each commit.
      const check = settings.validate ? { check: commandCheck(settings.validate, daemonLogger({ log: { level: 'warn' } }, 2)) } : {};
      report = await checkConfigs({ ...settings, ...check }, paths.length > 0 ? paths : undefined);
    } catch (err) {
      process.stderr.write(`hotconf: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = EXIT.CANNOT_RUN;
      return;
    }
    const where = {
      ...(flags.config === undefined ? {} : { settingsFile: shown(flags.config) }),
      ...(settings.configDir === undefined ? {} : { configDir: shown(settings.configDir) }),
      ...(settings.etcd === undefined ? {} : { etcd: `${settings.etcd.endpoints.join(',')} ${settings.etcd.prefix}` }),
      schemaDir: shown(settings.schemaDir),
    };
    if (flags.json) {
      const configs = report.configs.map(({ name, file, ok, errors }) => ({ name, file, ok, errors }));
      process.stdout.write(`${JSON.stringify({ ok: report.ok, ...where, configs, errors: report.errors }, null, 2)}\n`);
    } else {
      const source = where.configDir ?? `etcd ${where.etcd ?? ''}`;
      process.stdout.write(`checking ${source} against the schemas in ${where.schemaDir}${where.settingsFile ? ` (from ${where.settingsFile})` : ''}\n`);
      // Escaped again here: a message may quote a name, and names are anyone's to choose (a newline would forge a line).
      for (const e of report.errors) process.stdout.write(`${escapeControl(e.message)}\n`);
      const bad = report.configs.filter((c) => !c.ok).length;
      const refused = report.errors.some((e) => e.code === 'E_APP_CHECK') ? ', refused by validate.command' : '';
      process.stdout.write(`${report.configs.length} config(s) checked, ${bad} invalid${refused}\n`);
    }
    process.exitCode = report.ok ? EXIT.OK : EXIT.INVALID;
  });

dirOptions(program.command('get').description('print the validated value of a config, or of a dotted path inside it'))
  .argument('<name>', 'config name, optionally followed by a dotted path: app.server.port')
  .option('--json', 'print JSON (default: YAML for objects, the bare value for scalars)')
  .option('--show-secrets', 'print secret values instead of [REDACTED] (with --url: the sidecar must allow it)')
  .option('--url <url>', 'ask a running sidecar (http://HOST:PORT; token from $HOTCONF_HTTP_TOKEN) instead of the disk')
  .action(async (target: string, flags: DirFlags & { json?: boolean; showSecrets?: boolean; url?: string }) => {
    if (flags.url !== undefined) {
      process.exitCode = await getFromSidecar(flags.url, target, flags);
      return;
    }
    const settings = await oneShotSettings(flags);
    const report = await checkConfigs(settings).catch((err: unknown) => {
      process.stderr.write(`hotconf: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(EXIT.CANNOT_RUN);
    });
    // Config names may contain dots (app.v2.yaml is `app.v2`): the longest name that prefixes the target wins.
    const match = report.configs
      .filter((c) => target === c.name || target.startsWith(`${c.name}.`))
      .sort((a, b) => b.name.length - a.name.length)[0];
    if (!match) {
      const dir = settings.configDir === undefined ? '' : ` in ${shown(settings.configDir)}`;
      process.stderr.write(`hotconf: no config named '${escapeControl(target.split('.')[0] ?? '')}'${dir} (known: ${report.configs.map((c) => escapeControl(c.name)).join(', ')})\n`);
      process.exitCode = EXIT.INVALID;
      return;
    }
    if (!match.ok) {
      for (const e of match.errors) process.stderr.write(`${escapeControl(e.message)}\n`);
      process.exitCode = EXIT.INVALID;
      return;
    }
    process.exitCode = printPath(match.name, flags.showSecrets ? match.value : redact(match.value, match.secrets), target, flags.json);
  });

/** Prints `value`, or the dotted path of `target` below the config `name`; returns the exit code. */
function printPath(name: string, value: unknown, target: string, json: boolean | undefined): number {
  for (const key of target === name ? [] : target.slice(name.length + 1).split('.')) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) {
      process.stderr.write(`hotconf: ${escapeControl(name)} has no '${escapeControl(target.slice(name.length + 1))}'\n`);
      return EXIT.INVALID;
    }
    value = (value as Record<string, unknown>)[key];
  }
  const text = json ? JSON.stringify(value, null, 2) : typeof value === 'object' && value !== null ? toYaml(value).trimEnd() : String(value);
  process.stdout.write(`${text}\n`);
  return EXIT.OK;
}

function sidecarHeaders(): Record<string, string> {
  const token = process.env.HOTCONF_HTTP_TOKEN?.trim();
  return token ? { authorization: `Bearer ${token}` } : {};
}

function sidecarBase(url: string): string {
  if (!/^https?:\/\//.test(url)) {
    process.stderr.write(`hotconf: --url must be http://HOST:PORT or https://… (got ${url})\n`);
    process.exit(EXIT.USAGE);
  }
  return url.replace(/\/+$/, '');
}

/** `hotconf get --url`: the longest config name the sidecar knows that prefixes the target, then its value. */
async function getFromSidecar(url: string, target: string, flags: { json?: boolean; showSecrets?: boolean }): Promise<number> {
  const base = sidecarBase(url);
  try {
    const list = await fetch(`${base}/v1/configs`, { headers: sidecarHeaders() });
    if (!list.ok) throw new Error(`GET /v1/configs: HTTP ${list.status} ${await list.text()}`);
    const names = ((await list.json()) as { configs: Array<{ name: string }> }).configs.map((c) => c.name);
    const name = names.filter((n) => target === n || target.startsWith(`${n}.`)).sort((a, b) => b.length - a.length)[0];
    if (name === undefined) {
      process.stderr.write(`hotconf: no config named '${target.split('.')[0]}' (known: ${names.map(escapeControl).join(', ')})\n`);
      return EXIT.INVALID;
    }
    const res = await fetch(`${base}/v1/configs/${name.split('/').map(encodeURIComponent).join('/')}${flags.showSecrets ? '?secrets=true' : ''}`, {
      headers: sidecarHeaders(),
    });
    if (!res.ok) throw new Error(`GET /v1/configs/${name}: HTTP ${res.status} ${await res.text()}`);
    return printPath(name, await res.json(), target, flags.json);
  } catch (err) {
    process.stderr.write(`hotconf: ${base}: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.CANNOT_RUN;
  }
}

/**
 * `hotconf watch --url`: the sidecar's Server-Sent Events as NDJSON, resuming after reconnects. Each line carries the
 * sidecar's epoch with the version (versions restart in every process). A `reset` (the sidecar restarted, or this
 * client fell too far behind) is followed: the whole state is fetched and printed on the reset line (`hashes` of
 * every config), and events it already covers are not printed again.
 */
async function watchSidecar(url: string): Promise<number> {
  const base = sidecarBase(url);
  const { EventSource } = await import('eventsource');
  const headers = sidecarHeaders();
  const source = new EventSource(`${base}/v1/events`, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init?.headers, ...headers } }),
  });
  const line = (obj: unknown) => process.stdout.write(`${JSON.stringify(obj)}\n`);
  type EventData = { epoch?: string; version: number };
  /** Where the printed state is: events at or below it (same epoch) are old news after a reset's refetch. */
  let at: EventData | undefined;
  const refetch = async (data: EventData) => {
    const res = await fetch(`${base}/v1/configs`, { headers });
    if (!res.ok) throw new Error(`GET /v1/configs: HTTP ${res.status}`);
    const list = (await res.json()) as { epoch: string; version: number; configs: Array<{ name: string; hash: string | null }> };
    const hashes = Object.fromEntries(list.configs.flatMap((c) => (c.hash === null ? [] : [[c.name, c.hash]])));
    at = { epoch: list.epoch, version: list.version };
    line({ type: 'reset', ...data, epoch: list.epoch, version: list.version, hashes });
  };
  // Events are handled one at a time, in order: a reset's refetch finishes before the next event is looked at.
  let queue = Promise.resolve();
  for (const type of ['hello', 'change', 'reset'] as const) {
    source.addEventListener(type, (e: { data: string }) => {
      const data = JSON.parse(e.data) as EventData;
      queue = queue
        .then(async () => {
          if (type === 'reset') return refetch(data);
          if (type === 'change' && at !== undefined && at.epoch === data.epoch && data.version <= at.version) return;
          at = data;
          line({ type, ...data });
        })
        .catch((err: unknown) => {
          process.stderr.write(`hotconf: ${base}: ${err instanceof Error ? err.message : String(err)}; printing the reset without the state\n`);
          line({ type, ...data });
        });
    });
  }
  source.addEventListener('error', (e: Event & { code?: number; message?: string }) => {
    process.stderr.write(`hotconf: ${base}/v1/events: ${e.message ?? 'connection error'}${e.code ? ` (HTTP ${e.code})` : ''}; retrying\n`);
  });
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
  });
  source.close();
  await queue;
  return EXIT.OK;
}

dirOptions(program.command('watch').description('print each committed change as one JSON line, until interrupted'))
  .option('--values', 'include the (redacted) values of the changed configs')
  .option('--url <url>', 'stream from a running sidecar (http://HOST:PORT; token from $HOTCONF_HTTP_TOKEN) instead of watching the disk')
  .action(async (flags: DirFlags & { values?: boolean; url?: string }) => {
    if (flags.url !== undefined) {
      process.exitCode = await watchSidecar(flags.url);
      return;
    }
    const settings = await oneShotSettings(flags);
    const ac = new AbortController();
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => ac.abort());
    let hot;
    try {
      // Logs go to stderr: stdout carries only the NDJSON stream.
      hot = await createHotconf({ ...(await hotconfOptionsOf(settings)), logger: daemonLogger({ log: { level: 'warn' } }, 2), signal: ac.signal });
    } catch (err) {
      if (err instanceof InitialLoadError) {
        for (const e of err.errors) process.stderr.write(`${escapeControl(e.message)}\n`);
        process.exitCode = EXIT.INVALID;
        return;
      }
      throw err;
    }
    const line = (obj: unknown) => process.stdout.write(`${JSON.stringify(obj)}\n`);
    const hashes = (names: readonly string[], snap: ReturnType<typeof hot.snapshot>) =>
      Object.fromEntries(names.map((n) => [n, snap.configs.get(n)?.hash]));
    line({ type: 'snapshot', version: hot.version, configs: hashes([...hot.snapshot().configs.keys()], hot.snapshot()) });
    for await (const change of hot.changes({ signal: ac.signal })) {
      const out: Record<string, unknown> = {
        type: 'change',
        version: change.version,
        changed: change.changed,
        removed: change.removed,
        hashes: hashes(change.changed, change.current),
        time: new Date(change.current.committedAt).toISOString(),
      };
      if (flags.values) {
        out.values = Object.fromEntries(
          change.changed.map((n) => {
            const entry = change.current.configs.get(n)!;
            return [n, redact(entry.value, entry.secrets)];
          }),
        );
      }
      line(out);
    }
    await hot.close();
  });

program
  .command('types')
  .description('generate TypeScript declarations from the schemas: a type per config and Configs, for createHotconf<Configs>(…)')
  .addOption(new Option('-c, --config <file>', 'the daemon settings file (hotconf.yaml): its schemaDir').env('HOTCONF_CONFIG'))
  .option('--schema-dir <dir>', "directory of <name>.schema.json files (default: ./hotconf.yaml's, else ./schemas)")
  .option('--out <file>', 'write the declarations to this file (default: print them)')
  .option('--check', 'exit 1 when --out is out of date with the schemas (for CI), naming what changed; write nothing')
  .addHelpText('after', '\nExit codes: 0 ok (or up to date), 1 out of date (--check), 2 usage error or a bad schema, 3 bad settings or no schema directory.')
  .action(async (flags: { config?: string; schemaDir?: string; out?: string; check?: boolean }) => {
    if (flags.check && flags.out === undefined) {
      process.stderr.write('hotconf: types --check compares a file: pass --out FILE (the committed declarations)\n');
      process.exitCode = EXIT.USAGE;
      return;
    }
    // Where the schemas are, as for `check`: --schema-dir > $HOTCONF_SCHEMA_DIR > the settings file > ./schemas.
    let schemaDir = flags.schemaDir ?? (process.env.HOTCONF_SCHEMA_DIR || undefined);
    let strict: { schemaStrict?: boolean; unknownFormats?: (typeof UNKNOWN_FORMATS)[number] } = {};
    const settingsFile = flags.config ?? (await stat('hotconf.yaml').then((s) => (s.isFile() ? 'hotconf.yaml' : undefined), () => undefined));
    if (settingsFile !== undefined) {
      const settings = await oneShotSettings({ config: settingsFile, ...(schemaDir === undefined ? {} : { schemaDir }) });
      schemaDir = settings.schemaDir;
      strict = { schemaStrict: settings.schemaStrict, unknownFormats: settings.unknownFormats };
    }
    schemaDir ??= 'schemas';
    const command = ['hotconf types', ...(flags.config === undefined ? [] : ['--config', flags.config]), ...(flags.schemaDir === undefined ? [] : ['--schema-dir', flags.schemaDir]), ...(flags.out === undefined ? [] : ['--out', flags.out])]
      .map((w) => (w.startsWith('hotconf') || /^[\w./@:=+-]+$/.test(w) ? w : `'${w.replaceAll("'", "'\\''")}'`))
      .join(' ');
    const { typesCommand } = await import('./types.js'); // the generator, prettier and lodash: only for this command
    process.exitCode = await typesCommand({ schemaDir, ...strict, command, version: pkg.version, out: flags.out, check: flags.check });
  });

program
  .command('reload')
  .description("send SIGHUP to a running daemon and wait for that reload's outcome: exit 0 applied, 1 refused (systemd's ExecReload=)")
  .requiredOption('--pid <pid>', "the daemon's process id ($MAINPID in a unit)", wholeNumber)
  .option('--timeout-ms <ms>', 'give up waiting after this long (default: 25000 ms, under the unit\'s TimeoutStartSec=30s)', wholeNumber)
  .action(async (flags: { pid: number; timeoutMs?: number }) => {
    const wait = await reloadAndWait(flags.pid, { timeoutMs: flags.timeoutMs ?? 25_000 });
    if (!wait.done) {
      process.stderr.write(`hotconf: ${wait.message}\n`);
      process.exitCode = EXIT.CANNOT_RUN;
      return;
    }
    const { outcome } = wait;
    for (const problem of outcome.problems) process.stderr.write(`${problem}\n`);
    const summary = `process ${outcome.pid}: version ${outcome.version}, ${outcome.durationMs} ms`;
    if (outcome.ok) process.stdout.write(`hotconf: reloaded (${summary})\n`);
    else process.stderr.write(`hotconf: reload failed (${summary}): ${outcome.problems.length} problem(s) above; what was refused keeps its last good value\n`);
    process.exitCode = outcome.ok ? EXIT.OK : EXIT.INVALID;
  });

fleetCommands(program, { dirOptions, etcdOptions, findConfig, flagLayer });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
    process.exitCode = ok ? EXIT.OK : EXIT.USAGE;
  } else {
    process.stderr.write(`hotconf: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = EXIT.CANNOT_RUN;
  }
}
