// `hotconf run` and `hotconf check` meeting the schemas of issue 13: a catastrophic pattern, a validator that
// throws, and a schema fixed after it failed. The daemon stays responsive and healthy configs keep committing.
import { expect, it } from 'vitest';
import { world } from '../hotconf/fixtures.js';
import { until } from '../helpers.js';
import { hotconf, startHotconf } from './cli-helpers.js';

interface Status {
  configs: Array<{ name: string; state: string; error?: { code: string; message: string } }>;
}

const REDOS = { type: 'object', properties: { a: { type: 'string', pattern: '^(a+)+$' } } };
// legal 2020-12; ajv recurses without end when it validates anything against it
const LOOP = { $id: 'https://example.com/loop', $dynamicAnchor: 'n', allOf: [{ $ref: '#/$defs/d' }], $defs: { d: { $dynamicRef: '#n' } } };
const SHARED_BROKEN = { $id: 'https://example.com/shared', type: 'object', properties: { n: { $ref: '#/$defs/missing' } } };
const SHARED_FIXED = { $id: 'https://example.com/shared', type: 'object', properties: { n: { type: 'integer' } } };

it('a ReDoS pattern, a throwing validator and a schema fixed after a failure: the daemon answers, healthy configs commit', async () => {
  await using w = await world();
  await w.schema('svc');
  await w.schema('evil', REDOS);
  await w.schema('loop', LOOP);
  await w.schema('shared', SHARED_BROKEN);
  await w.schema('user', { $ref: 'https://example.com/shared' });
  await w.config('svc.yaml', 'port: 80\n');
  await w.config('evil.yaml', 'a: aaaa\n');
  await w.config('user.yaml', 'n: 1\n');
  await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0', '--start-with-valid', '--batch-policy', 'per-file']);
  const url = String((await d.line((l) => l.msg === 'http listening', 'the API listening')).url);
  const status = async () => (await (await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(5000) })).json()) as Status;
  const stateOf = async (name: string) => (await status()).configs.find((c) => c.name === name);
  const port = async () => ((await (await fetch(`${url}/v1/configs/svc`)).json()) as { port: number }).port;
  expect((await stateOf('user'))?.error?.message).toMatch(/names .*shared\.schema\.json, which is invalid/);

  // While the bad configs go through, /healthz keeps answering (each probe with its own generous deadline:
  // before re2js, this one value froze the process for ~11 s).
  let probing = true;
  const probes = (async () => {
    let answered = 0;
    while (probing) {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(3000) });
      expect(res.status).toBe(200);
      answered++;
    }
    return answered;
  })();
  try {
    await w.configAtomic('evil.yaml', `a: ${'a'.repeat(32)}!\n`);
    await w.configAtomic('loop.yaml', 'anything: 1\n');
    const evil = await until(async () => ((await stateOf('evil'))?.state === 'error' ? stateOf('evil') : undefined), 'the ReDoS value refused');
    expect(evil?.error).toMatchObject({ code: 'E_SCHEMA' });
    expect(evil?.error?.message).toMatch(/\/a: must match pattern/);
    const loop = await until(async () => ((await stateOf('loop'))?.state === 'error' ? stateOf('loop') : undefined), 'the throwing validator reported');
    expect(loop?.error).toMatchObject({ code: 'E_SCHEMA_INVALID' });
    expect(loop?.error?.message).toMatch(/the validator threw RangeError: Maximum call stack size exceeded/);

    // a healthy config still commits
    await w.configAtomic('svc.yaml', 'port: 81\n');
    await until(async () => (await port()) === 81, 'svc commits next to the bad ones');

    // reload() reports the throwing config, and the daemon does not loop on "batch failed unexpectedly"
    const reload = await fetch(`${url}/v1/reload`, { method: 'POST' });
    expect(reload.status).toBe(422);
    const body = (await reload.json()) as { errors: Array<{ code: string; message: string }> };
    expect(body.errors.map((e) => e.code)).toContain('E_SCHEMA_INVALID');
    expect(d.lines.filter((l) => /unexpectedly/.test(String(l.msg))).length).toBe(0);

    // the schema that failed is fixed: it compiles, the config sharing it commits (no "already exists")
    await w.schema('shared', SHARED_FIXED);
    await until(async () => (await stateOf('user'))?.state === 'ok', 'user commits under the fixed schema');
    await w.schema('shared', SHARED_BROKEN);
    d.signal('SIGHUP');
    const again = await until(async () => ((await stateOf('user'))?.state === 'error' ? stateOf('user') : undefined), 'broken again');
    expect(again?.error?.message).not.toMatch(/already exists/);
    await w.schema('shared', SHARED_FIXED);
    d.signal('SIGHUP');
    await until(async () => (await stateOf('user'))?.state === 'ok', 'fixed again');
  } finally {
    probing = false;
  }
  expect(await probes).toBeGreaterThan(0);

  // hotconf check reports the throwing validator as a config error: exit 1, not 3
  const checked = await hotconf(['check', '--config-dir', w.configDir, '--schema-dir', w.schemaDir]);
  expect(checked.code).toBe(1);
  expect(checked.stdout).toMatch(/loop\.yaml: its schema .*could not validate it: the validator threw RangeError/);
  expect(checked.stdout).toMatch(/evil\.yaml:1:4: \/a: must match pattern/);
});

it('strict mode and defaults are opt-ins of the CLI and of hotconf.yaml', async () => {
  await using w = await world();
  // lint-worthy (no `type: object` beside `properties`) but valid JSON Schema, with a default
  await w.schema('lax', { properties: { level: { type: 'string', default: 'info' } } });
  await w.config('lax.yaml', 'other: 1\n');
  const dirs = ['--config-dir', w.configDir, '--schema-dir', w.schemaDir];
  expect(await hotconf(['check', ...dirs])).toMatchObject({ code: 0 });
  const strict = await hotconf(['check', ...dirs, '--strict-schemas']);
  expect(strict.code).toBe(1);
  expect(strict.stdout).toMatch(/its schema is invalid: .*lax\.schema\.json.*strict mode: missing type "object" for keyword "properties"/);
  const settings = await w.tmp.write('hotconf.yaml', 'schemaStrict: true\n');
  expect(await hotconf(['check', '--config', settings, ...dirs])).toMatchObject({ code: 1 });

  expect(JSON.parse((await hotconf(['get', 'lax', '--json', ...dirs])).stdout)).toEqual({ other: 1 });
  expect(JSON.parse((await hotconf(['get', 'lax', '--json', '--use-defaults', ...dirs])).stdout)).toEqual({ other: 1, level: 'info' });
  const withDefaults = await w.tmp.write('defaults.yaml', 'useDefaults: true\n');
  expect(JSON.parse((await hotconf(['get', 'lax', '--json', '--config', withDefaults, ...dirs])).stdout)).toEqual({ other: 1, level: 'info' });
});
