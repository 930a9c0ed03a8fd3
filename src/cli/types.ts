// `hotconf types`: TypeScript declarations from the schema directory, for `createHotconf<Configs>(…)`. Every schema
// is first judged by hotconf's own registry (a schema the daemon would refuse generates nothing, and its error says
// file:line:col); then json-schema-to-typescript writes one type per config, named by the naming rule, and the map
// `Configs` keyed by config name. Loaded only by this command (main.ts imports it on demand): neither `import
// 'hotconf'` nor `hotconf run`/`check` loads the generator, prettier or lodash.
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile, rename, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { walkConfigFiles } from '../load/walk.js';
import { displayPath, escapeControl, isInside, schemaNameOf, toPosix } from '../names.js';
import { dialectOf } from '../validate/dialects.js';
import { SchemaRegistry, type UnknownFormats } from '../validate/index.js';

export interface TypesOptions {
  /** The schema directory (absolute or relative to the working directory). */
  schemaDir: string;
  schemaStrict?: boolean | undefined;
  unknownFormats?: UnknownFormats | undefined;
  /** The command that regenerates the file, as the header and `--check` show it. */
  command: string;
  /** hotconf's version, for the header. */
  version: string;
}

/** One schema file the declarations come from. */
export interface SchemaSource {
  readonly name: string;
  /** Path relative to the schema directory, `/`-separated. */
  readonly file: string;
  readonly sha256: string;
}

export interface GeneratedTypes {
  readonly text: string;
  readonly schemas: readonly SchemaSource[];
}

/** The schemas cannot give declarations: each problem is one line naming the file and what is wrong. */
export class TypesError extends Error {
  /** 2 for a bad schema, 3 when there is nothing to read (no such directory): the CLI's exit codes. */
  constructor(
    readonly problems: readonly string[],
    readonly exitCode: 2 | 3 = 2,
  ) {
    super(problems.join('\n'));
  }
}

/** The map type's name, and the root the generator is handed (a schema whose properties refer to each config's). */
const MAP_TYPE = 'Configs';

/**
 * The type of a config, by the naming rule: its name's words (split at `/`, `.`, `-`, `_`, spaces, …) capitalized
 * and joined: `db/primary` → `DbPrimary`, `app.v2` → `AppV2`. A name that would not start a TypeScript identifier
 * gets `Config` in front. The generator makes a name unique (`DbPrimary1`) when two configs give the same one.
 */
export function typeNameOf(name: string): string {
  const words = name.split(/[^A-Za-z0-9]+/).filter((w) => w !== '');
  const joined = words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
  return /^[A-Za-z]/.test(joined) ? joined : `Config${joined}`;
}

/** Lists, judges and hashes the schemas, then generates the declarations. Throws TypesError for a bad schema. */
export async function generateTypes(options: TypesOptions): Promise<GeneratedTypes> {
  const schemaDir = path.resolve(options.schemaDir);
  if (!(await stat(schemaDir).then((s) => s.isDirectory(), () => false))) {
    throw new TypesError([`hotconf: ${displayPath(schemaDir)}: no such schema directory`], 3);
  }
  const problems: string[] = [];
  const files = new Map<string, string>(); // config name -> absolute file
  for await (const file of walkConfigFiles(schemaDir, { extensions: ['.json'], onTooDeep: (dir) => problems.push(`${displayPath(dir)}: lies too deep below the schema directory to be read`) })) {
    const name = schemaNameOf(toPosix(path.relative(schemaDir, file)));
    if (name !== undefined) files.set(name, file);
  }
  const names = [...files.keys()].sort();
  if (names.length === 0) problems.push(`${displayPath(schemaDir)}: no <name>.schema.json file in the schema directory`);

  // The registry judges every schema as the daemon would: JSON, its draft's meta-schema, every $ref resolvable.
  const registry = new SchemaRegistry({
    schemaDir,
    schemaStrict: options.schemaStrict ?? false,
    unknownFormats: options.unknownFormats ?? 'ignore',
    displayPath,
  });
  await registry.reload(files.values());
  for (const name of names) {
    const error = registry.schemaError(name);
    if (error) problems.push(escapeControl(error.message));
  }
  if (problems.length > 0) throw new TypesError(problems);

  // The bytes hashed are the bytes the declarations are generated from: the generator reads them from here.
  const documents = new Map<string, unknown>(); // absolute file -> parsed schema
  const byId = new Map<string, string>(); // $id (no fragment) -> absolute file
  const schemas: SchemaSource[] = [];
  for (const name of names) {
    const file = files.get(name)!;
    const bytes = await readFile(file);
    let schema: unknown;
    try {
      schema = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new TypesError([`${displayPath(file)}: changed while it was read (no longer JSON); run again`]);
    }
    documents.set(file, schema);
    const id = typeof schema === 'object' && schema !== null ? ((schema as { $id?: unknown; id?: unknown }).$id ?? (schema as { id?: unknown }).id) : undefined;
    if (typeof id === 'string' && !id.startsWith('#')) byId.set(id.replace(/#.*$/, ''), file);
    schemas.push({ name, file: toPosix(path.relative(schemaDir, file)), sha256: createHash('sha256').update(bytes).digest('hex') });
  }

  const body = await compileAll(schemaDir, names, files, documents, byId);
  return { text: header(options, schemaDir, schemas) + body, schemas };
}

/** The generated file's first lines: what made it, from what, and how to make it again. */
function header(options: TypesOptions, schemaDir: string, schemas: readonly SchemaSource[]): string {
  const lines = [
    `// Generated by hotconf ${options.version} (\`${options.command}\`). Do not edit: change the schemas and run it again.`,
    `// \`${options.command.includes(' --out ') ? options.command.replace(' --out ', ' --check --out ') : 'hotconf types --check --out FILE'}\` exits 1 when this file is out of date (for CI).`,
    `// From the schemas in ${escapeControl(toPosix(displayPath(schemaDir)))}/ (sha-256, file):`,
    ...schemas.map((s) => `//   ${s.sha256}  ${escapeControl(s.file)}`),
    '/* eslint-disable */',
    '',
  ];
  return `${lines.join('\n')}\n`;
}

const SCHEMA_LINE = /^\/\/ {3}([0-9a-f]{64}) {2}(.+)$/;

/** The schema files a generated file names in its header (file → sha-256). */
export function schemasOfHeader(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('//') && !line.startsWith('/*')) break;
    const m = SCHEMA_LINE.exec(line);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

/** What is stale in `committed` compared to `fresh`: empty when it is up to date. Header lines other than the
 *  schema list (the version, the command) do not count. */
export function staleness(committed: string, fresh: GeneratedTypes): string[] {
  const was = schemasOfHeader(committed);
  const out: string[] = [];
  for (const s of fresh.schemas) {
    const old = was.get(escapeControl(s.file));
    if (old === undefined) out.push(`${escapeControl(s.name)}: new schema ${escapeControl(s.file)}`);
    else if (old !== s.sha256) out.push(`${escapeControl(s.name)}: ${escapeControl(s.file)} changed`);
  }
  const now = new Set(fresh.schemas.map((s) => escapeControl(s.file)));
  for (const file of [...was.keys()].sort()) {
    if (!now.has(file)) out.push(`${escapeControl(schemaNameOf(file) ?? file)}: ${escapeControl(file)} is gone`);
  }
  if (out.length === 0 && bodyOf(committed) !== bodyOf(fresh.text)) {
    out.push('the declarations differ from what this hotconf generates from the same schemas (edited by hand, or made by another version)');
  }
  return out;
}

function bodyOf(text: string): string {
  const i = text.indexOf('/* eslint-disable */\n');
  return i < 0 ? text : text.slice(i);
}

/**
 * One run of the generator over every config, so that a schema referred to from several configs is one type and
 * names are unique across the file. Its root is a schema whose property `<name>` refers to the config's schema;
 * its interface becomes the type alias `Configs` (an interface is not assignable to `Record<string, unknown>`, the
 * constraint of `createHotconf<T>`). Schemas are served from memory, each under one URL (its `$id`, else its file
 * URL), so that a schema reached by path and by `$id` is one type: nothing outside the schema directory is read,
 * and nothing is fetched.
 */
async function compileAll(
  schemaDir: string,
  names: readonly string[],
  files: ReadonlyMap<string, string>,
  documents: ReadonlyMap<string, unknown>,
  byId: ReadonlyMap<string, string>,
): Promise<string> {
  const { compile } = await import('json-schema-to-typescript').catch((err: NodeJS.ErrnoException) => {
    // An optional dependency (25 MB with prettier): a production image leaves it out (npm ci --omit=optional).
    if (err.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('json-schema-to-typescript')) throw err;
    throw new TypesError([
      'hotconf types needs json-schema-to-typescript, an optional dependency of hotconf that is not installed here ' +
        '(installed with --omit=optional?): run `npm install --include=optional`, or `npm install --save-dev json-schema-to-typescript@16.0.0` in your project',
    ], 3);
  });
  const idOf = new Map([...byId].map(([id, file]) => [file, id]));
  /** The one URL of each schema: its `$id`, else its file URL. */
  const urlOf = (file: string) => idOf.get(file) ?? pathToFileURL(file).href;
  const fileOf = (url: string): string | undefined => {
    const bare = url.replace(/#.*$/, '');
    if (byId.has(bare)) return byId.get(bare);
    if (bare.startsWith('file:')) return fileURLToPath(bare);
    return path.isAbsolute(bare) ? bare : undefined;
  };
  const nameOfFile = new Map([...files].map(([n, f]) => [f, n]));
  const serve = (url: string): unknown => {
    let file = fileOf(url);
    if (file !== undefined && !documents.has(file) && documents.has(decodeURIComponent(file))) file = decodeURIComponent(file);
    const schema = file === undefined ? undefined : documents.get(file);
    if (file === undefined || schema === undefined) {
      const where = file !== undefined && isInside(file, schemaDir) ? 'is not a <name>.schema.json file of the schema directory' : 'is outside the schema directory (hotconf never fetches schemas)';
      throw new Error(`$ref ${url} ${where}`);
    }
    // References are made absolute against the schema's own URL (as ajv resolves them), then named by the one URL
    // of the schema they reach.
    // A whole schema file may be a boolean: `true` takes anything (unknown), `false` nothing (never).
    const object = schema === true ? { tsType: 'unknown' } : schema === false ? { tsType: 'never' } : structuredClone(schema);
    const copy = forGenerator(object, (ref) => {
      if (ref.startsWith('#')) return ref;
      let abs: URL;
      try {
        abs = new URL(ref, urlOf(file));
      } catch {
        return ref;
      }
      const target = fileOf(abs.href);
      return target !== undefined && documents.has(target) ? urlOf(target) + abs.hash : abs.href;
    });
    if (typeof copy === 'object' && copy !== null && typeof (copy as Record<string, unknown>).$ref === 'string') rootRef(copy as Record<string, unknown>);
    // The config's type is named by the naming rule, whatever its title says.
    const name = nameOfFile.get(file);
    if (name !== undefined && typeof copy === 'object' && copy !== null) {
      const top = copy as Record<string, unknown>;
      top.title = typeNameOf(name);
      const own = typeof top.description === 'string' ? `\n\n${top.description}` : '';
      top.description = `The config \`${escapeControl(name)}\` (${escapeControl(toPosix(path.relative(schemaDir, file)))}).${own}`;
    }
    return copy;
  };
  const rootOf = (some: readonly string[]) => ({
    title: MAP_TYPE,
    type: 'object' as const,
    additionalProperties: false,
    required: [...some],
    properties: Object.fromEntries(some.map((n) => [n, { $ref: urlOf(files.get(n)!) }])),
  });
  const run = async (some: readonly string[]): Promise<string> => {
    const said: string[] = [];
    const consoleError = console.error;
    // The generator prints what it refuses, then throws an error without a message: both make the error here.
    console.error = (...args: unknown[]) => said.push(args.map((a) => (Array.isArray(a) ? a.join(' ') : String(a))).join(' '));
    try {
      return await compile(rootOf(some), MAP_TYPE, {
        bannerComment: '',
        cwd: schemaDir,
        additionalProperties: true,
        unknownAny: true,
        strictIndexSignatures: false,
        declareExternallyReferenced: true,
        enableConstEnums: false,
        format: true,
        style: { singleQuote: true, printWidth: 120, semi: true, trailingComma: 'all', bracketSpacing: true, tabWidth: 2, useTabs: false },
        $refOptions: {
          resolve: {
            external: true,
            file: false,
            http: false,
            hotconf: { order: 1, canRead: true, read: (f: { url: string }) => serve(f.url) },
          },
        },
      });
    } catch (err) {
      const why = [...said, err instanceof Error ? err.message : String(err)].filter((m) => m.trim() !== '').join('; ');
      // Bounded: the generator's messages can quote a whole schema.
      const first = escapeControl(why.split('\n')[0]!.trim());
      throw new Error(first.length > 300 ? `${first.slice(0, 300)}…` : first || 'failed without a message');
    } finally {
      console.error = consoleError;
    }
  };
  try {
    return asTypeAlias(await run(names));
  } catch {
    // Which configs? Each alone says (only on failure: one run is the cost of a good directory).
    const problems: string[] = [];
    for (const name of names) {
      await run([name]).catch((err: unknown) => {
        problems.push(`${displayPath(files.get(name)!)}: json-schema-to-typescript cannot generate a type from it: ${(err as Error).message}`);
      });
    }
    if (problems.length === 0) problems.push(`${displayPath(schemaDir)}: json-schema-to-typescript cannot generate declarations from these schemas together`);
    throw new TypesError(problems);
  }
}

/** Kept beside a root `$ref` of a draft before 2019-09, where every other keyword next to `$ref` is ignored. */
const ANNOTATIONS = ['$schema', '$id', 'id', 'title', 'description', 'definitions', '$defs', '$comment'];

/**
 * A schema whose root is a `$ref` (`{"$ref": "#/definitions/config", "definitions": …}`, common in SchemaStore)
 * reached from another schema defeats the generator's resolver; `allOf: [{$ref}]` means the same. Before 2019-09,
 * keywords beside `$ref` are ignored (so they are dropped here); from 2019-09 on, they apply too (so they stay).
 */
function rootRef(top: Record<string, unknown>): void {
  const dialect = dialectOf(top);
  const early = typeof dialect === 'object' && (dialect.dialect === 'draft-04' || dialect.dialect === 'draft-07');
  const ref = top.$ref;
  delete top.$ref;
  if (early) for (const k of Object.keys(top)) if (!ANNOTATIONS.includes(k)) delete top[k];
  top.allOf = [...(Array.isArray(top.allOf) ? (top.allOf as unknown[]) : []), { $ref: ref }];
}

/** `export interface Configs {…}` → `export type Configs = {…};` (the generator writes the root first). */
function asTypeAlias(text: string): string {
  const start = text.indexOf(`export interface ${MAP_TYPE} {\n`);
  const end = text.indexOf('\n}\n', start);
  if (start < 0 || end < 0) throw new Error(`json-schema-to-typescript wrote no interface ${MAP_TYPE}`);
  return `${text.slice(0, start)}export type ${MAP_TYPE} = {\n${text.slice(start + `export interface ${MAP_TYPE} {\n`.length, end)}\n};\n${text.slice(end + 3)}`;
}

/** Keywords whose value is a schema, an array of schemas, or an object of schemas (2020-12 and before). */
const ONE = ['additionalItems', 'additionalProperties', 'contains', 'else', 'if', 'not', 'propertyNames', 'then', 'unevaluatedItems', 'unevaluatedProperties', 'contentSchema'];
const MANY = ['allOf', 'anyOf', 'oneOf', 'prefixItems', 'items'];
const NAMED = ['$defs', 'definitions', 'dependencies', 'dependentSchemas', 'patternProperties', 'properties'];

/**
 * A schema as the generator understands it: every `$ref` rewritten by `ref` (made absolute), and 2020-12's tuples
 * (`prefixItems`, then `items` for the rest) written the way of the drafts before (`items` array,
 * `additionalItems`). What the generator cannot express (conditionals, `unevaluated*`, `$dynamicRef`) is left as
 * it is: the type is then wider than the schema, never narrower.
 */
function forGenerator(schema: unknown, ref: (ref: string) => string): unknown {
  const dialect = dialectOf(schema);
  const modern = typeof dialect === 'object' && dialect.dialect === '2020-12';
  const seen = new Set<unknown>();
  const walk = (node: unknown): void => {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || seen.has(node)) return;
    seen.add(node);
    const s = node as Record<string, unknown>;
    if (typeof s.$ref === 'string') s.$ref = ref(s.$ref);
    if (modern && Array.isArray(s.prefixItems)) {
      if (s.items !== undefined) s.additionalItems = s.items;
      s.items = s.prefixItems;
      delete s.prefixItems;
    }
    for (const k of ONE) walk(s[k]);
    for (const k of MANY) (Array.isArray(s[k]) ? (s[k] as unknown[]) : [s[k]]).forEach(walk);
    for (const k of NAMED) if (typeof s[k] === 'object' && s[k] !== null) Object.values(s[k]).forEach(walk);
  };
  walk(schema);
  return schema;
}

/** `hotconf types`: prints or writes the declarations, or (`check`) compares them with `out`. Returns the exit code. */
export async function typesCommand(options: TypesOptions & { out?: string | undefined; check?: boolean | undefined }): Promise<number> {
  let fresh: GeneratedTypes;
  try {
    fresh = await generateTypes(options);
  } catch (err) {
    if (!(err instanceof TypesError)) throw err;
    for (const p of err.problems) process.stderr.write(`${p}\n`);
    if (err.exitCode === 2) process.stderr.write(`hotconf: no declarations generated: ${err.problems.length} problem(s) with the schemas above\n`);
    return err.exitCode;
  }
  if (options.check) {
    const out = options.out!;
    const committed = await readFile(out, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    const stale = committed === undefined ? [`${displayPath(path.resolve(out))} does not exist`] : staleness(committed, fresh);
    if (stale.length === 0) {
      process.stdout.write(`${displayPath(path.resolve(out))} is up to date with ${fresh.schemas.length} schema(s)\n`);
      return 0;
    }
    process.stderr.write(`hotconf: ${displayPath(path.resolve(out))} is out of date with the schemas:\n`);
    for (const line of stale) process.stderr.write(`  ${line}\n`);
    process.stderr.write(`run \`${options.command}\` and commit the result\n`);
    return 1;
  }
  if (options.out === undefined) {
    process.stdout.write(fresh.text);
    return 0;
  }
  // Written whole or not at all: a reader (tsc --watch, an editor) never sees half a file.
  const target = path.resolve(options.out);
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.tmp`);
  await writeFile(tmp, fresh.text);
  await rename(tmp, target);
  process.stderr.write(`hotconf: wrote ${displayPath(target)}: ${fresh.schemas.length} config type(s) and ${MAP_TYPE}\n`);
  return 0;
}
