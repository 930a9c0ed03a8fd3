// The package as a user imports it (the built dist/, by the package's own name): `import 'hotconf'` is the light
// library and loads no shell; the shells are reached through their subpath exports.
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { ROOT } from './cli-helpers.js';

/** Runs `code` as an ES module in a child Node started in the package root (so `hotconf` resolves to it); every
 *  module URL it resolves is written to stderr by a resolve hook. */
async function runTraced(code: string): Promise<{ status: number | null; stdout: string; loaded: string[] }> {
  await using tmp = await tempDir();
  const hooks = await tmp.write(
    'hooks.mjs',
    `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  process.stderr.write('LOADED ' + r.url + '\\n');
  return r;
}
`,
  );
  const register = await tmp.write('register.mjs', `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  const child = spawn(process.execPath, ['--import', pathToFileURL(register).href, '--input-type=module', '-e', code], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const loaded = stderr
    .split('\n')
    .filter((l) => l.startsWith('LOADED '))
    .map((l) => l.slice('LOADED '.length));
  if (status !== 0) throw new Error(`node exited with ${status}: ${stderr.split('\n').filter((l) => !l.startsWith('LOADED ')).join('\n')}`);
  return { status, stdout, loaded };
}

const HEAVY = /\/dist\/(http|publish|metrics|daemon|cli)\/|\/node_modules\/(fastify|prom-client|etcd3|@grpc|commander|pino-pretty|json-schema-to-typescript|prettier)\//;

it("import 'hotconf' loads no shell: no http, publish, metrics, daemon or cli module, none of fastify, prom-client, etcd3, commander, pino-pretty", async () => {
  // Both loaders are asked: the ESM resolve hook sees every import, CommonJS's cache every require() below them.
  const { stdout, loaded } = await runTraced(
    `const m = await import('hotconf');
const { createRequire } = await import('node:module');
const cjs = Object.keys(createRequire(import.meta.url).cache);
console.log(JSON.stringify({ names: Object.keys(m), cjs }));`,
  );
  const { names, cjs } = JSON.parse(stdout) as { names: string[]; cjs: string[] };
  expect(loaded.some((u) => u.endsWith('/dist/index.js'))).toBe(true);
  const all = [...loaded, ...cjs];
  expect(all.filter((u) => HEAVY.test(u))).toEqual([]);
  // Nor, until they are needed (issue 16), the parsers and validators: ajv, yaml, re2js, and pino (a default logger).
  expect(all.filter((u) => /\/node_modules\/(ajv|ajv-formats|ajv-draft-04|yaml|re2js|pino)\//.test(u))).toEqual([]);
  expect(names).toContain('createHotconf');
  for (const shell of ['startHttpServer', 'parseListen', 'HotconfMetrics', 'METRIC_NAMES', 'startPublisher']) expect(names).not.toContain(shell);
});

it('a library that loads a directory loads yaml, ajv and pino then, and still no shell', async () => {
  await using tmp = await tempDir();
  await tmp.write('config/app.yaml', 'port: 8080\n');
  await tmp.write('schemas/app.schema.json', JSON.stringify({ type: 'object', properties: { port: { type: 'integer', pattern: '^x' } } }));
  const { stdout, loaded } = await runTraced(
    `const { createHotconf } = await import('hotconf');
const hot = await createHotconf({ configDir: ${JSON.stringify(tmp.file('config'))}, schemaDir: ${JSON.stringify(tmp.file('schemas'))} });
const value = hot.get('app');
await hot.close();
const { createRequire } = await import('node:module');
console.log(JSON.stringify({ value, cjs: Object.keys(createRequire(import.meta.url).cache) }));`,
  );
  const { value, cjs } = JSON.parse(stdout) as { value: unknown; cjs: string[] };
  expect(value).toEqual({ port: 8080 });
  const all = [...loaded, ...cjs];
  // The tracer sees the packages a library user does load, or the test above proves nothing.
  for (const pkg of ['yaml', 'ajv', 'pino']) expect(all.some((u) => u.includes(`/node_modules/${pkg}/`))).toBe(true);
  expect(all.filter((u) => HEAVY.test(u))).toEqual([]);
});

it('the shells are subpath exports: hotconf/http, hotconf/publish, hotconf/metrics', async () => {
  const { stdout } = await runTraced(
    `const out = {};
for (const p of ['hotconf/http', 'hotconf/publish', 'hotconf/metrics']) out[p] = Object.keys(await import(p)).sort();
console.log(JSON.stringify(out));`,
  );
  expect(JSON.parse(stdout)).toEqual({
    'hotconf/http': ['parseListen', 'startHttpServer'],
    'hotconf/publish': ['startPublisher'],
    'hotconf/metrics': ['HotconfMetrics', 'METRIC_NAMES'],
  });
});
