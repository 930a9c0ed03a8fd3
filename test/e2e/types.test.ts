// `hotconf types` as a user drives it: the real CLI (dist/cli/main.js) generates declarations from a schema
// directory, and the real tsc (--strict) compiles a consumer project against them and the built package (dist/):
// the right code compiles, a wrong property is the expected TS error at the expected position. Then `--check`,
// determinism, bad schemas, the load rules (only this command loads json-schema-to-typescript), vendored
// SchemaStore schemas, and the README's excerpt of the repository's own generated file.
import { cp, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir, type TempDir } from '../helpers.js';
import { childEnv, hotconf, ROOT, runCommand } from './cli-helpers.js';

const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const DIST = path.join(ROOT, 'dist', 'index.js');

/** Schemas in three dialects, with a `$ref` to another file's `$defs`, a secret, a tuple and an open map. */
const SCHEMAS: Record<string, unknown> = {
  'app.schema.json': {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'whatever the title says',
    type: 'object',
    additionalProperties: false,
    required: ['name', 'server'],
    properties: {
      name: { type: 'string' },
      server: { $ref: 'common.schema.json#/$defs/endpoint' },
      log: { enum: ['debug', 'info', 'warn'] },
      window: { type: 'array', prefixItems: [{ type: 'integer' }, { type: 'string' }], items: false, minItems: 2 },
    },
  },
  'common.schema.json': {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $defs: {
      endpoint: {
        type: 'object',
        additionalProperties: false,
        required: ['host', 'port'],
        properties: { host: { type: 'string' }, port: { type: 'integer', minimum: 1, maximum: 65535 } },
      },
    },
  },
  'db/primary.schema.json': {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    additionalProperties: false,
    required: ['host', 'port', 'password'],
    definitions: { pool: { type: 'object', additionalProperties: false, properties: { max: { type: 'integer' } } } },
    properties: {
      host: { type: 'string' },
      port: { type: 'integer' },
      password: { type: 'string', writeOnly: true },
      token: { type: 'string', 'x-hotconf-secret': true },
      pool: { $ref: '#/definitions/pool' },
    },
  },
  'features.schema.json': {
    $schema: 'http://json-schema.org/draft-04/schema#',
    type: 'object',
    required: ['flags'],
    properties: { flags: { type: 'object', additionalProperties: { type: 'boolean' } } },
  },
};

async function writeSchemas(tmp: TempDir, dir = 'schemas', order: string[] = Object.keys(SCHEMAS)): Promise<void> {
  for (const file of order) await tmp.write(`${dir}/${file}`, `${JSON.stringify(SCHEMAS[file], null, 2)}\n`);
}

/** The consumer: code a user writes against the generated Configs and the built package. */
const RIGHT = `import { createHotconf, type Change, type DeepReadonly } from '${DIST}';
import type { App, Configs, DbPrimary } from './config-types.js';

const hot = await createHotconf<Configs>({ configDir: 'config', schemaDir: 'schemas' });
const db = hot.get('db/primary');
if (db) {
  const port: number = db.port;
  const password: string = db.password; // a secret is typed as its value
  const token: string | undefined = db.token;
  const max: number | undefined = db.pool?.max;
  const whole: Readonly<DbPrimary> = db;
  console.log(port, password, token, max, whole);
}
hot.onConfigChange('app', (change: Change<Configs>) => {
  const app = change.current.get('app');
  const port: number | undefined = app?.server.port;
  const level: 'debug' | 'info' | 'warn' | undefined = app?.log;
  const first: number | undefined = app?.window?.[0];
  const before: DeepReadonly<App> | undefined = change.previous.get('app');
  const window: readonly [number, string] | undefined = before?.window; // a tuple keeps its positions
  console.log(port, level, first, before, window);
});
for await (const change of hot.changes()) {
  const flags = change.current.get('features')?.flags;
  const on: boolean | undefined = flags?.['dark-mode'];
  console.log(on);
  break;
}
await hot.close();
`;

/** Each wrong line, and the error tsc must give for it (code, and the marker's position). */
const WRONG: Array<{ line: string; code: string; marker: string }> = [
  { line: `const a = hot.get('db/primary')?.prot;`, code: 'TS2339', marker: 'prot' },
  { line: `const b: string | undefined = hot.get('db/primary')?.port;`, code: 'TS2322', marker: 'b:' },
  { line: `hot.onConfigChange('app', (c) => c.current.get('app')?.server.hots);`, code: 'TS2339', marker: 'hots' },
  { line: `hot.onConfigChange('nope', () => undefined);`, code: 'TS2769', marker: `'nope'` },
  // features is an open object (no additionalProperties: false), so `?.flag` would be allowed; its flags are booleans.
  { line: `for await (const c of hot.changes()) c.current.get('features')?.flags['x']?.toFixed();`, code: 'TS2339', marker: 'toFixed' },
  { line: `const d = hot.get('dbprimary');`, code: 'TS2345', marker: `'dbprimary'` },
];

function wrongFile(): { text: string; expected: string[] } {
  const head = `import { createHotconf } from '${DIST}';\nimport type { Configs } from './config-types.js';\nconst hot = await createHotconf<Configs>({ configDir: 'config', schemaDir: 'schemas' });\n`;
  const lines = WRONG.map((w) => w.line);
  const text = `${head}${lines.join('\n')}\nexport {};\n`;
  const offset = head.split('\n').length - 1;
  const expected = WRONG.map((w, i) => `wrong.ts(${offset + i + 1},${w.line.indexOf(w.marker) + 1}): error ${w.code}`);
  return { text, expected };
}

/** Compiles `files` (next to config-types.ts) with the repository's tsc, --strict, as a Node ESM project. */
async function tsc(tmp: TempDir, files: string[]): Promise<{ code: number | null; errors: string[]; out: string }> {
  const name = `tsconfig.${files.join('-').replace(/\W/g, '_')}.json`;
  await tmp.write(
    name,
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        lib: ['es2023', 'esnext.disposable'],
        skipLibCheck: true,
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
        types: ['node'],
      },
      files: ['config-types.ts', ...files],
    }),
  );
  const r = await runCommand(process.execPath, [TSC, '-p', name, '--pretty', 'false'], { cwd: tmp.dir, env: childEnv() });
  const errors = r.stdout.split('\n').flatMap((l) => /^(\S+\(\d+,\d+\): error TS\d+)/.exec(l)?.[1] ?? []);
  return { code: r.code, errors, out: r.stdout + r.stderr };
}

describe('hotconf types', () => {
  it('generates Configs and a type per config; a consumer compiles with tsc --strict, and a wrong property is the expected error', { timeout: 120_000 }, async () => {
    await using tmp = await tempDir();
    await tmp.write('package.json', JSON.stringify({ type: 'module' }));
    await writeSchemas(tmp);
    const gen = await hotconf(['types', '--schema-dir', 'schemas', '--out', 'config-types.ts'], { cwd: tmp.dir });
    expect(gen.code, gen.stderr).toBe(0);
    expect(gen.stdout).toBe('');
    const types = await readFile(tmp.file('config-types.ts'), 'utf8');
    // The map, keyed by config name, each to the type named by the naming rule (not by the schema's title).
    expect(types).toMatch(/^export type Configs = \{\n {2}app: App;\n {2}common: Common;\n {2}'db\/primary': DbPrimary;\n {2}features: Features;\n\};$/m);
    expect(types).not.toMatch(/WhateverTheTitleSays/);
    expect(types).toMatch(/^export interface DbPrimary \{$/m);
    // The header: generated, by what, from which files with their sha-256.
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256').update(await readFile(tmp.file('schemas/db/primary.schema.json'))).digest('hex');
    const { version } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(types.split('\n')[0]).toBe(`// Generated by hotconf ${version} (\`hotconf types --schema-dir schemas --out config-types.ts\`). Do not edit: change the schemas and run it again.`);
    expect(types).toContain(`\n//   ${sha}  db/primary.schema.json\n`);

    await tmp.write('right.ts', RIGHT);
    const { text, expected } = wrongFile();
    await tmp.write('wrong.ts', text);
    const [right, wrong] = await Promise.all([tsc(tmp, ['right.ts']), tsc(tmp, ['wrong.ts'])]);
    expect(right.code, right.out).toBe(0);
    expect(wrong.code).not.toBe(0);
    expect(wrong.errors, wrong.out).toEqual(expected);
  });

  it('--check: 0 when current, 1 after a schema change (naming the config and the command), 0 once regenerated', { timeout: 60_000 }, async () => {
    await using tmp = await tempDir();
    await writeSchemas(tmp);
    const args = ['types', '--schema-dir', 'schemas', '--out', 'src/config-types.ts'];
    expect((await hotconf(args, { cwd: tmp.dir })).code).toBe(0);
    const current = await hotconf([...args, '--check'], { cwd: tmp.dir });
    expect(current.code, current.stderr).toBe(0);
    expect(current.stdout).toBe('src/config-types.ts is up to date with 4 schema(s)\n');
    // Made by another hotconf version (or command line), from the same schemas, to the same declarations: current.
    const made = await readFile(tmp.file('src/config-types.ts'), 'utf8');
    const other = made.replace(/^\/\/ Generated by hotconf \S+ \(`[^`]*`\)/, '// Generated by hotconf 9.9.9 (`hotconf types --out src/config-types.ts`)');
    expect(other).not.toBe(made);
    await writeFile(tmp.file('src/config-types.ts'), other);
    expect((await hotconf([...args, '--check'], { cwd: tmp.dir })).code).toBe(0);

    const db = SCHEMAS['db/primary.schema.json'] as { properties: Record<string, unknown> };
    await tmp.write('schemas/db/primary.schema.json', JSON.stringify({ ...db, properties: { ...db.properties, replica: { type: 'string' } } }));
    await tmp.write('schemas/extra.schema.json', '{"type": "object"}');
    const before = await readFile(tmp.file('src/config-types.ts'), 'utf8');
    const stale = await hotconf([...args, '--check'], { cwd: tmp.dir });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toBe(
      'hotconf: src/config-types.ts is out of date with the schemas:\n' +
        '  db/primary: db/primary.schema.json changed\n' +
        '  extra: new schema extra.schema.json\n' +
        'run `hotconf types --schema-dir schemas --out src/config-types.ts` and commit the result\n',
    );
    expect(await readFile(tmp.file('src/config-types.ts'), 'utf8')).toBe(before); // --check writes nothing

    expect((await hotconf(args, { cwd: tmp.dir })).code).toBe(0);
    expect((await hotconf([...args, '--check'], { cwd: tmp.dir })).code).toBe(0);
    // A hand edit of the declarations is stale too, though every schema is the same.
    const now = await readFile(tmp.file('src/config-types.ts'), 'utf8');
    await writeFile(tmp.file('src/config-types.ts'), now.replace('replica?: string;', 'replica?: number;'));
    const edited = await hotconf([...args, '--check'], { cwd: tmp.dir });
    expect(edited.code).toBe(1);
    expect(edited.stderr).toMatch(/the declarations differ from what this hotconf generates/);
    // A removed schema, and a missing file.
    await writeFile(tmp.file('src/config-types.ts'), now);
    await (await import('node:fs/promises')).rm(tmp.file('schemas/extra.schema.json'));
    expect((await hotconf([...args, '--check'], { cwd: tmp.dir })).stderr).toMatch(/^ {2}extra: extra\.schema\.json is gone$/m);
    const missing = await hotconf(['types', '--schema-dir', 'schemas', '--out', 'nowhere.ts', '--check'], { cwd: tmp.dir });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nowhere\.ts is out of date with the schemas:\n {2}nowhere\.ts does not exist\n/);
    // --check without --out is a usage error.
    expect((await hotconf(['types', '--schema-dir', 'schemas', '--check'], { cwd: tmp.dir })).code).toBe(2);
  });

  it('is deterministic: the same schemas give byte-identical output, whatever order their files were written in', { timeout: 60_000 }, async () => {
    await using a = await tempDir();
    await using b = await tempDir();
    await writeSchemas(a);
    await writeSchemas(b, 'schemas', Object.keys(SCHEMAS).reverse());
    const [one, two, three] = await Promise.all([
      hotconf(['types', '--schema-dir', 'schemas'], { cwd: a.dir }),
      hotconf(['types', '--schema-dir', 'schemas'], { cwd: a.dir }),
      hotconf(['types', '--schema-dir', 'schemas'], { cwd: b.dir }),
    ]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout.length).toBeGreaterThan(500);
    expect(two.stdout).toBe(one.stdout);
    expect(three.stdout).toBe(one.stdout);
  });

  it('a bad schema is named with file:line:col and what is wrong; exit 2, and the output file is left as it was', { timeout: 60_000 }, async () => {
    await using tmp = await tempDir();
    await writeSchemas(tmp);
    await tmp.write('types.ts', '// the committed file\n');
    await tmp.write('schemas/features.schema.json', '{\n  "type": "object",\n  "properties": { "flags": { "type": "strnig" } }\n}\n');
    const bad = await hotconf(['types', '--schema-dir', 'schemas', '--out', 'types.ts'], { cwd: tmp.dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^schemas\/features\.schema\.json:3:\d+: .*type.*$/m);
    expect(bad.stderr).toMatch(/^hotconf: no declarations generated: 1 problem\(s\) with the schemas above$/m);
    expect(await readFile(tmp.file('types.ts'), 'utf8')).toBe('// the committed file\n');

    await tmp.write('schemas/features.schema.json', '{ "type": "object", ');
    const json = await hotconf(['types', '--schema-dir', 'schemas'], { cwd: tmp.dir });
    expect(json.code).toBe(2);
    expect(json.stderr).toMatch(/^schemas\/features\.schema\.json: .*not valid JSON/m);
    expect(json.stdout).toBe('');

    await tmp.write('schemas/features.schema.json', '{ "type": "object", "properties": { "x": { "$ref": "https://example.com/elsewhere.json" } } }');
    const ref = await hotconf(['types', '--schema-dir', 'schemas'], { cwd: tmp.dir });
    expect(ref.code).toBe(2);
    expect(ref.stderr).toMatch(/^schemas\/features\.schema\.json.*no schema in the schema directory has the \$id "https:\/\/example\.com\/elsewhere\.json"/m);

    const none = await hotconf(['types', '--schema-dir', 'missing'], { cwd: tmp.dir });
    expect(none.code).toBe(3); // cannot run, as every command says of a missing directory
    expect(none.stderr).toMatch(/missing: no such schema directory/);
  });

  it('finds the schemas as `check` does: --schema-dir, else $HOTCONF_SCHEMA_DIR, else hotconf.yaml, else ./schemas', { timeout: 60_000 }, async () => {
    await using tmp = await tempDir();
    await writeSchemas(tmp, 'elsewhere');
    await tmp.write('schemas/only.schema.json', '{"type": "object", "properties": {"x": {"type": "string"}}}');
    const names = (out: string) => /export type Configs = \{\n([\s\S]*?)\n\};/.exec(out)?.[1]?.split('\n').map((l) => l.trim());
    expect(names((await hotconf(['types'], { cwd: tmp.dir })).stdout)).toEqual(['only: Only;']);
    expect(names((await hotconf(['types'], { cwd: tmp.dir, env: { HOTCONF_SCHEMA_DIR: 'elsewhere' } })).stdout)).toHaveLength(4);
    await tmp.write('hotconf.yaml', 'configDir: config\nschemaDir: elsewhere\n');
    const fromFile = await hotconf(['types'], { cwd: tmp.dir });
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(names(fromFile.stdout)).toHaveLength(4);
    expect(names((await hotconf(['types', '--schema-dir', 'schemas'], { cwd: tmp.dir })).stdout)).toEqual(['only: Only;']);
    // A bad settings file is the usual settings error (exit 3).
    await tmp.write('hotconf.yaml', 'schemaDir: [1]\n');
    expect((await hotconf(['types'], { cwd: tmp.dir })).code).toBe(3);
  });
});

it('any schema a config may have: a boolean file, a non-object schema, names that are no identifiers, a clash with Configs', { timeout: 60_000 }, async () => {
  await using tmp = await tempDir();
  await tmp.write('schemas/anything.schema.json', 'true\n');
  await tmp.write('schemas/nothing.schema.json', 'false\n');
  await tmp.write('schemas/greeting.schema.json', '{"type": "string"}');
  await tmp.write('schemas/configs.schema.json', '{"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false}');
  await tmp.write('schemas/x/my-svc.v2.schema.json', '{"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false}');
  const gen = await hotconf(['types', '--schema-dir', 'schemas', '--out', 'config-types.ts'], { cwd: tmp.dir });
  expect(gen.code, gen.stderr).toBe(0);
  const types = await readFile(tmp.file('config-types.ts'), 'utf8');
  expect(/export type Configs = \{\n([\s\S]*?)\n\};/.exec(types)?.[1]).toBe(
    "  anything: Anything;\n  configs: Configs1;\n  greeting: Greeting;\n  nothing: Nothing;\n  'x/my-svc.v2': XMySvcV2;",
  );
  expect(types).toMatch(/^export type Anything = unknown;$/m);
  expect(types).toMatch(/^export type Nothing = never;$/m);
  expect(types).toMatch(/^export type Greeting = string;$/m);
  await tmp.write('package.json', JSON.stringify({ type: 'module' }));
  await tmp.write(
    'use.ts',
    `import { createHotconf } from '${DIST}';\nimport type { Configs } from './config-types.js';\nconst hot = await createHotconf<Configs>({ configDir: 'c', schemaDir: 'schemas' });\nconst g: string | undefined = hot.get('greeting');\nconst a: number | undefined = hot.get('x/my-svc.v2')?.a;\nconst b: number | undefined = hot.get('configs')?.a;\nexport { g, a, b };\n`,
  );
  const compiled = await tsc(tmp, ['use.ts']);
  expect(compiled.code, compiled.out).toBe(0);
});

/** Runs the CLI under a resolve hook that writes every module URL it resolves to stderr; returns those URLs. */
async function loadedBy(tmp: TempDir, args: string[]): Promise<{ code: number | null; loaded: string[] }> {
  const hooks = await tmp.write(
    'hooks.mjs',
    `export async function resolve(specifier, context, next) {\n  const r = await next(specifier, context);\n  process.stderr.write('LOADED ' + r.url + '\\n');\n  return r;\n}\n`,
  );
  const register = await tmp.write('register.mjs', `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  // CommonJS below an ESM import is required, not resolved: its cache is listed at exit too.
  const cjs = await tmp.write('cjs.cjs', `process.on('exit', () => { for (const k of Object.keys(require.cache)) process.stderr.write('LOADED ' + k + '\\n'); });\n`);
  const r = await runCommand(process.execPath, ['--import', pathToFileURL(register).href, '--require', cjs, path.join(ROOT, 'dist', 'cli', 'main.js'), ...args], {
    cwd: tmp.dir,
    env: childEnv(),
  });
  return { code: r.code, loaded: r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice(7)) };
}

const GENERATOR = /\/node_modules\/(json-schema-to-typescript|prettier|lodash|@apidevtools)\//;

it('only `hotconf types` loads json-schema-to-typescript: `check` and `run --help` do not', { timeout: 60_000 }, async () => {
  await using tmp = await tempDir();
  await writeSchemas(tmp);
  await tmp.write('config/app.yaml', 'name: x\nserver: { host: h, port: 1 }\n');
  const checked = await loadedBy(tmp, ['check', '--config-dir', 'config', '--schema-dir', 'schemas']);
  expect(checked.code).toBe(0);
  expect(checked.loaded.some((u) => u.includes('/node_modules/ajv/'))).toBe(true); // the tracer sees packages
  expect(checked.loaded.filter((u) => GENERATOR.test(u) || u.endsWith('/dist/cli/types.js'))).toEqual([]);
  const help = await loadedBy(tmp, ['run', '--help']);
  expect(help.loaded.filter((u) => GENERATOR.test(u))).toEqual([]);
  const types = await loadedBy(tmp, ['types', '--schema-dir', 'schemas']);
  expect(types.code).toBe(0);
  expect(types.loaded.some((u) => u.includes('/node_modules/json-schema-to-typescript/'))).toBe(true);
});

it('without the optional json-schema-to-typescript (npm ci --omit=optional), `hotconf types` says what is missing and how to add it', { timeout: 60_000 }, async () => {
  await using tmp = await tempDir();
  await writeSchemas(tmp);
  // An install of the package whose node_modules lacks the generator: the built dist/ and every other package.
  const pkg = path.join(tmp.dir, 'pkg');
  await cp(path.join(ROOT, 'dist'), path.join(pkg, 'dist'), { recursive: true });
  await cp(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
  await mkdir(path.join(pkg, 'node_modules'));
  for (const entry of await readdir(path.join(ROOT, 'node_modules'))) {
    if (entry !== 'json-schema-to-typescript') await symlink(path.join(ROOT, 'node_modules', entry), path.join(pkg, 'node_modules', entry));
  }
  const r = await runCommand(process.execPath, [path.join(pkg, 'dist', 'cli', 'main.js'), 'types', '--schema-dir', 'schemas', '--out', 'types.ts'], { env: childEnv(), cwd: tmp.dir });
  expect(r.code).toBe(3);
  expect(r.stderr).toContain('hotconf types needs json-schema-to-typescript, an optional dependency of hotconf that is not installed here');
  expect(r.stderr).toContain('npm install --save-dev json-schema-to-typescript@16.0.0');
  await expect(readFile(path.join(tmp.dir, 'types.ts'))).rejects.toMatchObject({ code: 'ENOENT' });
});

it('vendored SchemaStore schemas (draft-04, draft-07, 2020-12; $refs by $id and by path) give declarations tsc --strict accepts', { timeout: 180_000 }, async () => {
  await using tmp = await tempDir();
  const vendor = path.join(ROOT, 'test', 'vendor', 'schemastore', 'schemas');
  // stale: draft-04 whose root is a $ref; yamllint: 2020-12, root $ref and $defs; kustomization: draft-07, root
  // $ref; pre-commit-config: $refs into pre-commit-hooks.json's definitions, by a path relative to its $id.
  const names = ['stale', 'yamllint', 'kustomization', 'pre-commit-config', 'pre-commit-hooks', 'github-workflow'];
  for (const n of names) await cp(path.join(vendor, `${n}.json`), tmp.file(`schemas/${n}.schema.json`));
  const gen = await hotconf(['types', '--schema-dir', 'schemas', '--out', 'config-types.ts'], { cwd: tmp.dir });
  expect(gen.code, gen.stderr).toBe(0);
  const types = await readFile(tmp.file('config-types.ts'), 'utf8');
  expect(/export type Configs = \{\n([\s\S]*?)\n\};/.exec(types)?.[1]).toBe(
    "  'github-workflow': GithubWorkflow;\n  kustomization: Kustomization;\n  'pre-commit-config': PreCommitConfig;\n  'pre-commit-hooks': PreCommitHooks;\n  stale: Stale;\n  yamllint: Yamllint;",
  );
  await tmp.write('package.json', JSON.stringify({ type: 'module' }));
  await tmp.write(
    'use.ts',
    `import type { Configs } from './config-types.js';\ndeclare const c: Configs;\nconst days: number | undefined = c.stale.daysUntilStale;\nconst repos: unknown[] = c['pre-commit-config'].repos;\nexport { days, repos };\n`,
  );
  const compiled = await tsc(tmp, ['use.ts']);
  expect(compiled.code, compiled.out).toBe(0);
});

it("the README's excerpt of the generated file is what `hotconf types` makes of the repository's own schemas", { timeout: 60_000 }, async () => {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const excerpt = /<!-- generated by hotconf types: test\/e2e\/types\.test\.ts keeps it true -->\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(excerpt).toBeDefined();
  const gen = await hotconf(['types', '--schema-dir', 'schemas']);
  expect(gen.code, gen.stderr).toBe(0);
  // Every line of the excerpt, in order, from the output (the excerpt skips the header and other configs with `// …`).
  const parts = excerpt!.split(/^\/\/ …\n/m).filter((p) => p !== '');
  let at = 0;
  for (const part of parts) {
    const i = gen.stdout.indexOf(part, at);
    expect(i, `not in the output (after offset ${at}):\n${part}`).toBeGreaterThanOrEqual(0);
    at = i + part.length;
  }
});
