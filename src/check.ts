// One-shot validation without watching, committing or logging: `checkConfigs` (a dry run of a config tree for
// CI and `ExecStartPre=`, what `hotconf check` reports) and `validateOnce` (one file or value against one
// schema: the daemon's own settings). Both go through the pipeline's one document path.
import path from 'node:path';
import { mapLimit } from './async.js';
import { AppCheckError, capErrors, ConfigError, HotconfError, ReadError, type ConfigErrorJSON } from './errors.js';
import { parseConfig, readStable } from './load/index.js';
import { ConfigParser } from './load/worker.js';
import { MAX_WALK_DEPTH } from './load/walk.js';
import { displayPath, formatOf, isConfigName, SCHEMA_SUFFIX } from './names.js';
import { REDACTED } from './validate/index.js';
import { OPTION_DEFAULTS, resolveOptions, type HotconfOptions } from './options.js';
import { applyAppCheck, outcomeOf, unusableNameError, validateDocument, type DocumentStages } from './pipeline/index.js';
import { assertDirectories, FileTree } from './source/files/index.js';
import { SchemaRegistry } from './validate/index.js';

export interface CheckedConfig {
  readonly name: string;
  readonly file: string | undefined;
  readonly ok: boolean;
  /** The validated value (with `useDefaults`, defaults filled in); undefined when invalid. Contains secrets: redact before showing. */
  readonly value: unknown;
  readonly secrets: readonly string[];
  readonly errors: readonly ConfigErrorJSON[];
  /** With `keepSource`, a valid config's text exactly as validated (what `hotconf push` publishes). */
  readonly source?: string;
}

export interface CheckReport {
  readonly ok: boolean;
  readonly configs: readonly CheckedConfig[];
  /** Every problem, in name order, after the directories too deep to be looked into (`E_TOO_DEEP`: a check
   *  that cannot see every config does not pass). */
  readonly errors: readonly ConfigErrorJSON[];
}

/**
 * Validates the configs on disk as `createHotconf` would (all of them, or only `files`), without watching,
 * committing or logging: a dry run for CI and `ExecStartPre=`. With a `check` hook and the whole tree valid, the
 * hook judges the tree as a candidate version; its refusal is one `E_APP_CHECK` error naming the config dir.
 */
export async function checkConfigs(options: HotconfOptions, files?: readonly string[]): Promise<CheckReport> {
  const o = resolveOptions(options);
  if (o.etcd) throw new HotconfError('E_OPTIONS', 'checkConfigs validates a directory (configDir); for etcd, `hotconf push --dry-run` checks one');
  const tooDeep: ConfigError[] = [];
  const onTooDeep = (dir: string) => {
    if (tooDeep.length < 1_000) tooDeep.push(new ReadError('E_TOO_DEEP', { file: displayPath(dir) }, `directory lies deeper than ${MAX_WALK_DEPTH} levels below the config dir: the configs in it are not loaded`));
  };
  const tree = new FileTree(o.configDir!, o.schemaDir, { followExternalLinks: o.followExternalLinks, onTooDeep });
  await assertDirectories(tree.configDir, tree.schemaDir);
  const registry = new SchemaRegistry({
    schemaDir: tree.schemaDir ?? tree.configDir,
    useDefaults: o.useDefaults,
    schemaStrict: o.schemaStrict,
    unknownFormats: o.unknownFormats,
    maxSchemaBytes: o.maxSchemaBytes,
    ...(o.formats ? { formats: o.formats } : {}),
    displayPath,
    maxErrors: o.maxErrorsPerConfig,
    ...(o.logger ? { logger: o.logger.child({ module: 'validate' }) } : {}),
  });
  // Its parser worker, if a large file started one, is closed at the end of the scope.
  await using parser = new ConfigParser({ workerThresholdBytes: o.workerThresholdBytes });
  const stages: DocumentStages = { parser, registry, maxDepth: o.maxDepth, maxAliasCount: o.maxAliasCount, requireSchema: o.requireSchema };
  const listed = await tree.list();
  await registry.reload(listed.schemas);
  const names = new Set<string>();
  const unknown: ConfigError[] = [];
  for (const file of files ?? []) {
    const abs = path.resolve(file);
    const name = tree.nameOf(abs);
    if (name !== undefined) names.add(name);
    else unknown.push(new ReadError('E_NOT_FOUND', { file: displayPath(abs) }, `is not a config file under ${displayPath(tree.configDir)}`));
  }
  const wanted = files ? [...names].sort() : listed.names;
  const limits = { maxFileBytes: o.maxFileBytes };
  const keepSource = o.check !== undefined || o.keepSource;
  const outcomes = await mapLimit(wanted, o.concurrency, async (name) => outcomeOf(name, await tree.read(name, limits, () => undefined), stages, limits, keepSource));
  // The application check judges a whole tree, as the pipeline's candidate: only a check of every config, all valid.
  const appErrors: ConfigError[] = [];
  if (o.check && !files && outcomes.every((c) => c.kind === 'ok' && isConfigName(c.name))) {
    const { refused } = await applyAppCheck(o.check, outcomes, new Map(), false);
    if (refused !== undefined) appErrors.push(new AppCheckError('E_APP_CHECK', { file: displayPath(tree.configDir) }, refused));
  }
  const configs: CheckedConfig[] = outcomes.map((c): CheckedConfig => {
    if (c.kind !== 'removed' && !isConfigName(c.name)) {
      return { name: c.name, file: c.shown, ok: false, value: undefined, secrets: [], errors: [unusableNameError(c.name, c.shown).toJSON()] };
    }
    const failed = (file: string | undefined, errors: readonly ConfigErrorJSON[]) => ({ name: c.name, file, ok: false, value: undefined, secrets: [], errors });
    switch (c.kind) {
      case 'ok':
        return { name: c.name, file: c.shown, ok: true, value: c.value, secrets: c.secrets, errors: [], ...(c.source ? { source: c.source.text } : {}) };
      case 'error':
        return failed(c.shown, capErrors(c.errors, o.maxErrorsPerConfig).map((e) => e.toJSON()));
      case 'unsettled':
        return failed(c.shown, [new ReadError('E_UNSTABLE', { file: c.shown }, 'kept changing while being read').toJSON()]);
      case 'removed':
        return failed(undefined, [new ReadError('E_NOT_FOUND', { file: c.name }, 'not found').toJSON()]);
    }
  });
  const errors = [...unknown.map((e) => e.toJSON()), ...(files ? [] : tooDeep.map((e) => e.toJSON())), ...configs.flatMap((c) => c.errors), ...appErrors.map((e) => e.toJSON())];
  return { ok: errors.length === 0, configs, errors };
}

export type FileValidation =
  | { readonly ok: true; readonly value: unknown; readonly secrets: readonly string[] }
  | { readonly ok: false; readonly errors: readonly ConfigError[] };

/** validateOnce's registries by schema file and options, at most 8 (oldest dropped first). */
const ONCE_REGISTRIES = new Map<string, SchemaRegistry>();

/**
 * Reads one file with the pipeline's safety rules and validates it (or, given `value`, an in-memory value
 * reported under the name `file`) against one schema file. No watcher, no store.
 */
export async function validateOnce(
  file: string,
  schemaFile: string,
  options: {
    value?: unknown;
    maxFileBytes?: number;
    workerThresholdBytes?: number;
  } & Pick<HotconfOptions, 'useDefaults' | 'schemaStrict' | 'unknownFormats' | 'maxSchemaBytes' | 'formats'> = {},
): Promise<FileValidation> {
  const registryOptions = {
    schemaDir: path.dirname(schemaFile),
    useDefaults: options.useDefaults ?? OPTION_DEFAULTS.useDefaults,
    schemaStrict: options.schemaStrict ?? OPTION_DEFAULTS.schemaStrict,
    unknownFormats: options.unknownFormats ?? OPTION_DEFAULTS.unknownFormats,
    maxSchemaBytes: options.maxSchemaBytes ?? OPTION_DEFAULTS.maxSchemaBytes,
    ...(options.formats ? { formats: options.formats } : {}),
    displayPath,
  };
  // The registry (its compiled schema) is kept for the next call with the same schema file and options: the daemon
  // validates its settings file, then the merged settings, then again on every reload. reload() below still reads
  // the file each time, and compiles again only when its text changed. Custom formats (functions) are not kept.
  const key = options.formats ? undefined : JSON.stringify([path.resolve(schemaFile), registryOptions]);
  let registry = key === undefined ? undefined : ONCE_REGISTRIES.get(key);
  if (!registry) {
    registry = new SchemaRegistry(registryOptions);
    if (key !== undefined) {
      if (ONCE_REGISTRIES.size >= 8) ONCE_REGISTRIES.delete(ONCE_REGISTRIES.keys().next().value!);
      ONCE_REGISTRIES.set(key, registry);
    }
  }
  const name = registry.nameOfFile(schemaFile);
  if (name === undefined) throw new HotconfError('E_OPTIONS', `not a schema file (*${SCHEMA_SUFFIX}): ${schemaFile}`);
  await registry.reload([schemaFile]);
  await using parser = new ConfigParser({ workerThresholdBytes: options.workerThresholdBytes ?? OPTION_DEFAULTS.workerThresholdBytes });
  const stages: DocumentStages = { parser, registry, maxDepth: OPTION_DEFAULTS.maxDepth, maxAliasCount: OPTION_DEFAULTS.maxAliasCount, requireSchema: true };
  try {
    if ('value' in options) {
      // The value is judged; its JSON text only gives the positions of what is wrong.
      return await validateDocument(name, Buffer.from(JSON.stringify(options.value ?? null)), 'json', file, stages, { value: options.value });
    }
    const shown = displayPath(file);
    const { bytes } = await readStable(file, { maxFileBytes: options.maxFileBytes ?? OPTION_DEFAULTS.maxFileBytes, displayPath: shown });
    return await validateDocument(name, bytes, formatOf(file) ?? 'yaml', shown, stages);
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, errors: [err] };
    throw err;
  }
}

/**
 * A config's source text with the values at `secrets` (JSON pointers, as a validation found them) replaced by
 * `"[REDACTED]"` where they are written (through an alias: at the anchor too), comments and layout kept: for
 * `hotconf diff`. Undefined when the text cannot be parsed or a secret cannot be located: nothing of it may be
 * shown then.
 */
export function redactSourceText(bytes: Uint8Array, file: string, secrets: readonly string[]): string | undefined {
  const format = formatOf(file);
  if (format === undefined) return undefined;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? buf.subarray(3) : buf).toString('utf8');
  if (secrets.length === 0) return text;
  let parsed;
  try {
    parsed = parseConfig(buf, format, file);
  } catch {
    return undefined;
  }
  const spans: Array<[number, number]> = [];
  for (const pointer of secrets) {
    const found = parsed.spans?.(pointer);
    if (!found) return undefined;
    spans.push(...found);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let out = '';
  let at = 0;
  for (const [start, whole] of spans) {
    let end = whole;
    while (end > start && /\s/.test(text[end - 1]!)) end--; // a block scalar's range ends after its line break
    if (end <= at) continue; // inside a span already redacted (a secret within a secret object)
    out += text.slice(at, Math.max(at, start)) + JSON.stringify(REDACTED);
    at = end;
  }
  return out + text.slice(at);
}
