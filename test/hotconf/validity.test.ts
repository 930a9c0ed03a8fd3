// DESIGN.md point 1: only valid config is ever applied; the last good value stays and the failure is reported.
import { describe, expect, it } from 'vitest';
import { until } from '../helpers.js';
import { start, world } from './fixtures.js';

describe('only valid config is applied (point 1)', () => {
  it('invalid YAML keeps the last good value and reports file:line:col', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 80\n');
    await using hot = await start(w);
    expect(hot.get('svc')).toEqual({ port: 80 });
    const v = hot.version;

    await w.configAtomic('svc.yaml', 'port: 81\nhost: [unclosed\n');
    const st = await until(() => hot.status().configs.find((c) => c.name === 'svc' && c.state === 'error'), 'svc in error');
    expect(hot.get('svc')).toEqual({ port: 80 });
    expect(hot.version).toBe(v);
    expect(st.error?.code).toBe('E_PARSE');
    expect(st.error?.file).toMatch(/config\/svc\.yaml$/);
    expect(st.error?.line).toBe(3);
    expect(st.error?.message).toMatch(/svc\.yaml:3:\d+: /);
    expect(st.hash).toBe(hot.snapshot().configs.get('svc')!.hash);
  });

  it('a schema violation keeps the last good value and reports the JSON pointer at its line and column', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 80\n');
    await using hot = await start(w);

    await w.configAtomic('svc.yaml', '# comment\nhost: example\nport: 70000\n');
    const st = await until(() => hot.status().configs.find((c) => c.name === 'svc' && c.state === 'error'), 'svc in error');
    expect(hot.get('svc')).toEqual({ port: 80 });
    expect(st.error).toMatchObject({ code: 'E_SCHEMA', line: 3, col: 7, pointer: '/port' });
    expect(st.error?.message).toMatch(/svc\.yaml:3:7: \/port: must be <= 65535$/);
    // and it is logged with the same location
    const logged = hot.logs.lines.find((l) => Array.isArray(l.errors));
    expect(JSON.stringify(logged)).toContain('"pointer":"/port"');
  });

  it('an unknown property is reported at its key', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 80\n');
    await using hot = await start(w);
    await w.configAtomic('svc.yaml', 'port: 80\nprot: 81\n');
    const st = await until(() => hot.status().configs.find((c) => c.state === 'error'), 'error');
    expect(st.error).toMatchObject({ code: 'E_SCHEMA', line: 2, col: 1, pointer: '/prot' });
  });

  it('fixing the file applies it and clears the error', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 80\n');
    await using hot = await start(w);
    await w.configAtomic('svc.yaml', 'port: -1\n');
    await until(() => hot.status().errors === 1, 'error');
    await w.configAtomic('svc.yaml', 'port: 82\n');
    await until(() => (hot.get('svc') as { port: number } | undefined)?.port === 82, 'fixed value');
    expect(hot.status().errors).toBe(0);
    expect(hot.status().configs[0]!.state).toBe('ok');
  });

  it('a config without a schema is an error by default, and accepted with requireSchema: false', async () => {
    await using w = await world();
    await w.config('free.yaml', 'anything: [1, 2]\n');
    await expect(start(w)).rejects.toMatchObject({ code: 'E_INITIAL_LOAD', errors: [{ code: 'E_NO_SCHEMA' }] });
    await using hot = await start(w, { requireSchema: false });
    expect(hot.get('free')).toEqual({ anything: [1, 2] });
  });

  it('schema defaults are filled in when useDefaults asks for them, and only then', async () => {
    await using w = await world();
    await w.schema('d', { type: 'object', properties: { level: { type: 'string', default: 'info' } } });
    await w.config('d.yaml', '{}\n');
    await using hot = await start(w, { useDefaults: true });
    expect(hot.get('d')).toEqual({ level: 'info' });
    await using plain = await start(w);
    expect(plain.get('d')).toEqual({});
  });

  it('a schema change re-validates the configs that use it', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 80\n');
    await using hot = await start(w, { useDefaults: true });
    await w.schema('svc', { type: 'object', properties: { port: { type: 'integer', minimum: 1000 } } });
    const st = await until(() => hot.status().configs.find((c) => c.state === 'error'), 'error under the new schema');
    expect(st.error).toMatchObject({ code: 'E_SCHEMA', pointer: '/port' });
    expect(hot.get('svc')).toEqual({ port: 80 });
    await w.schema('svc', { type: 'object', properties: { port: { type: 'integer' }, extra: { default: 1 } } });
    await until(() => hot.status().errors === 0, 'valid again');
    expect(hot.get('svc')).toEqual({ port: 80, extra: 1 });
  });

  it('a broken schema file is reported and keeps the configs it governs at their last good value', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 80\n');
    await using hot = await start(w);
    await w.tmp.write('schemas/svc.schema.json', '{ "type": "object", ');
    const st = await until(() => hot.status().configs.find((c) => c.state === 'error'), 'error');
    expect(st.error?.code).toBe('E_SCHEMA_INVALID');
    expect(hot.get('svc')).toEqual({ port: 80 });
  });

  it('two files with one name are an error for that name, never a silent pick', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 80\n');
    await using hot = await start(w);
    await w.config('svc.json', '{"port": 90}');
    const st = await until(() => hot.status().configs.find((c) => c.state === 'error'), 'conflict');
    expect(st.error?.code).toBe('E_DUPLICATE_NAME');
    expect(st.error?.message).toMatch(/svc\.yaml.*svc\.json|svc\.json.*svc\.yaml/);
    expect(hot.get('svc')).toEqual({ port: 80 });
  });

  it('names follow the directory layout: config/db/primary.yml is db/primary', async () => {
    await using w = await world();
    await w.schema('db/primary');
    await w.config('db/primary.yml', 'port: 5432\n');
    await using hot = await start(w);
    expect(hot.get('db/primary')).toEqual({ port: 5432 });
    expect(hot.snapshot().configs.get('db/primary')!.path).toBe(w.tmp.file('config/db/primary.yml'));
  });
});
