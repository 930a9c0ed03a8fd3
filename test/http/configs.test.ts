// The sidecar's read API as a client drives it over loopback: list, values with ETags, long-polls, status,
// reload, and the refusals (unknown names, traversal attempts, wrong routes and methods) as JSON errors.
import { describe, expect, it } from 'vitest';
import { until } from '../helpers.js';
import { world } from '../hotconf/fixtures.js';
import { rawRequest, serve, svc } from './fixtures.js';

const errorBody = (body: unknown) => (body as { error?: { code?: unknown; message?: unknown } }).error;

async function longPolls(server: { metrics: { longPolls: { get(): Promise<{ values: { value: number }[] }> } } }) {
  return (await server.metrics.longPolls.get()).values[0]?.value ?? 0;
}

describe('GET /v1/configs', () => {
  it('lists every config with its hash and status, and the snapshot version', async () => {
    await using w = await world();
    await w.schema('app');
    await w.schema('db/primary');
    await w.schema('bad');
    await w.config('app.yaml', svc(1));
    await w.config('db/primary.yaml', 'port: 5432\n');
    await w.config('bad.yaml', 'port: "not a number"\n');
    // per-file: under all-or-nothing, a re-check batching app.yaml with bad.yaml would show app as pending.
    await using s = await serve(w, {}, { startWithValid: true, batchPolicy: 'per-file' });
    const res = await s.get('/v1/configs');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { version: number; sourceRevision: unknown; configs: unknown[] };
    const snap = s.hot.snapshot();
    expect(body).toEqual({
      version: snap.version,
      epoch: snap.epoch,
      sourceRevision: null,
      release: null,
      configs: [
        { name: 'app', hash: snap.configs.get('app')!.hash, status: 'ok' },
        { name: 'bad', hash: null, status: 'error' },
        { name: 'db/primary', hash: snap.configs.get('db/primary')!.hash, status: 'ok' },
      ],
    });
  });
});

describe('GET /v1/configs/:name', () => {
  it('serves the value as JSON with ETag, X-Hotconf-Version and Cache-Control: no-cache', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 8080\nhost: example.org\n');
    await using s = await serve(w);
    const res = await s.get('/v1/configs/app');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('etag')).toBe(`"${s.hot.snapshot().configs.get('app')!.hash}"`);
    expect(res.headers.get('x-hotconf-version')).toBe(String(s.hot.version));
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(await res.json()).toEqual({ port: 8080, host: 'example.org' });
  });

  it('answers 304 without a body when If-None-Match holds the current ETag, 200 once it changed', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const etag = (await s.get('/v1/configs/app')).headers.get('etag')!;
    const same = await s.get('/v1/configs/app', { headers: { 'If-None-Match': etag } });
    expect(same.status).toBe(304);
    expect(await same.text()).toBe('');
    expect(same.headers.get('x-hotconf-version')).toBe(String(s.hot.version));
    expect((await s.get('/v1/configs/app', { headers: { 'If-None-Match': `"other", W/${etag}` } })).status).toBe(304);
    await w.configAtomic('app.yaml', 'port: 2\n');
    await until(() => s.hot.get('app') !== undefined && (s.hot.get('app') as { port: number }).port === 2, 'new value');
    const changed = await s.get('/v1/configs/app', { headers: { 'If-None-Match': etag } });
    expect(changed.status).toBe(200);
    expect(await changed.json()).toEqual({ port: 2 });
  });

  it('serves names with slashes (config/db/primary.yaml is db/primary), however deep', async () => {
    await using w = await world();
    const deep = `${Array.from({ length: 8 }, (_, i) => `level${i}-${'x'.repeat(200)}`).join('/')}/leaf`;
    await w.schema('db/primary');
    await w.config('db/primary.yaml', 'port: 5432\n');
    await w.config(`${deep}.json`, '{"deep":true}');
    await using s = await serve(w, {}, { requireSchema: false });
    const res = await s.get('/v1/configs/db/primary');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ port: 5432 });
    const deepRes = await s.get(`/v1/configs/${deep}`);
    expect(deepRes.status).toBe(200);
    expect(await deepRes.json()).toEqual({ deep: true });
  });

  it('serves a config whose value is a bare string as JSON', async () => {
    await using w = await world();
    await w.config('motd.yaml', 'hello world\n');
    await using s = await serve(w, {}, { requireSchema: false });
    const res = await s.get('/v1/configs/motd');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toBe('hello world');
  });

  it('refuses unknown names and traversal attempts with a 404 JSON body, never reading outside the store', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await w.tmp.write('outside.yaml', 'port: 2\n');
    await using s = await serve(w, {}, { requireSchema: false });
    const paths = [
      '/v1/configs/nope',
      '/v1/configs/..%2f..%2fetc%2fpasswd',
      '/v1/configs/../x',
      '/v1/configs/../outside',
      '/v1/configs/..%2foutside',
      '/v1/configs/%2e%2e/outside',
      '/v1/configs/%2E%2E%2Foutside',
      '/v1/configs/%252e%252e%252foutside',
      '/v1/configs/app%00',
      '/v1/configs/%00',
      '/v1/configs/app/..',
      '/v1/configs/./app',
      '/v1/configs//app',
      '/v1/configs/app/',
      '/v1/configs/',
      '/v1/configs/..%5coutside',
      '/v1/configs/%5c..%5coutside',
      '/v1/configs/C:%5cWindows',
    ];
    for (const p of paths) {
      const res = await rawRequest(s.server, p);
      expect({ p, status: res.status }).toEqual({ p, status: 404 });
      expect(res.headers['content-type'], p).toMatch(/^application\/json/);
      expect(errorBody(JSON.parse(res.body)), p).toMatchObject({ code: 'E_NOT_FOUND' });
      expect(res.body, p).not.toContain('port');
    }
  });

  it('rejects malformed percent-encoding with a 400 JSON body', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const res = await rawRequest(s.server, '/v1/configs/%zz');
    expect(res.status).toBe(400);
    expect(errorBody(JSON.parse(res.body))).toMatchObject({ code: 'E_BAD_REQUEST' });
  });
});

describe('long-poll (?wait=&after=)', () => {
  it('answers at once when the config changed after the given version', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const started = performance.now();
    const res = await s.get('/v1/configs/app?wait=20&after=0');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ port: 1 });
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('wakes as soon as the config changes, long before its wait ends', async () => {
    await using w = await world();
    await w.schema('app');
    await w.schema('other');
    await w.config('app.yaml', 'port: 1\n');
    await w.config('other.yaml', 'port: 1\n');
    await using s = await serve(w);
    const version = s.hot.version;
    const started = performance.now();
    const poll = s.get(`/v1/configs/app?wait=25&after=${version}`);
    await until(async () => (await longPolls(s.server)) === 1, 'the poll is waiting');
    // A change to another config does not answer it.
    await w.configAtomic('other.yaml', 'port: 2\n');
    await until(() => s.hot.version > version, 'other committed');
    expect(await longPolls(s.server)).toBe(1);
    await w.configAtomic('app.yaml', 'port: 2\n');
    const res = await poll;
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ port: 2 });
    expect(Number(res.headers.get('x-hotconf-version'))).toBe(s.hot.version);
    expect(res.headers.get('etag')).toBe(`"${s.hot.snapshot().configs.get('app')!.hash}"`);
    expect(await longPolls(s.server)).toBe(0);
  });

  it('waits on If-None-Match as well as on after', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const etag = (await s.get('/v1/configs/app')).headers.get('etag')!;
    const poll = s.get('/v1/configs/app?wait=25', { headers: { 'If-None-Match': etag } });
    await until(async () => (await longPolls(s.server)) === 1, 'the poll is waiting');
    await w.configAtomic('app.yaml', 'port: 3\n');
    const res = await poll;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ port: 3 });
  });

  it('answers 304 when nothing changed before its wait ends', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const started = performance.now();
    const res = await s.get(`/v1/configs/app?wait=0.3&after=${s.hot.version}`);
    expect(res.status).toBe(304);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(res.headers.get('etag')).toBe(`"${s.hot.snapshot().configs.get('app')!.hash}"`);
    expect(await longPolls(s.server)).toBe(0);
  });

  it('shortens a wait longer than maxWaitSeconds', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w, { maxWaitSeconds: 0.2 });
    const res = await s.get(`/v1/configs/app?wait=3600&after=${s.hot.version}`);
    expect(res.status).toBe(304);
  });

  it('stops waiting when the client goes away', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const abort = new AbortController();
    const poll = s.get(`/v1/configs/app?wait=60&after=${s.hot.version}`, { signal: abort.signal });
    await until(async () => (await longPolls(s.server)) === 1, 'the poll is waiting');
    abort.abort();
    await expect(poll).rejects.toThrow();
    await until(async () => (await longPolls(s.server)) === 0, 'the waiter is released');
  });

  it('answers 404 when the config is removed while waiting', async () => {
    await using w = await world();
    await w.schema('app');
    await w.schema('keep');
    const file = await w.config('app.yaml', 'port: 1\n');
    await w.config('keep.yaml', 'port: 1\n');
    await using s = await serve(w);
    const poll = s.get(`/v1/configs/app?wait=25&after=${s.hot.version}`);
    await until(async () => (await longPolls(s.server)) === 1, 'the poll is waiting');
    const { rm } = await import('node:fs/promises');
    await rm(file);
    const res = await poll;
    expect(res.status).toBe(404);
    expect(errorBody(await res.json())).toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('waits on an id of its own epoch (after=<epoch>:<version> or after=&epoch=) and says its epoch in Hotconf-Epoch', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const { epoch, version } = s.hot.snapshot();
    expect(epoch).toMatch(/^[0-9a-f]{16}$/);
    for (const q of [`after=${epoch}:${version}`, `after=${version}&epoch=${epoch}`]) {
      const res = await s.get(`/v1/configs/app?wait=0.3&${q}`);
      expect({ q, status: res.status }).toEqual({ q, status: 304 });
      expect(res.headers.get('hotconf-epoch')).toBe(epoch);
    }
    expect((await s.get('/v1/configs/app')).headers.get('hotconf-epoch')).toBe(epoch);
  });

  // Versions restart at 1 in every process: an id another process issued says nothing of what the client holds.
  it('answers an id from another process (another epoch, or a bare version this one never reached) at once with the value, never 304', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const { epoch, version } = s.hot.snapshot();
    const etag = (await s.get('/v1/configs/app')).headers.get('etag')!;
    for (const q of [`after=0badc0de:${version}`, `after=${version}&epoch=0badc0de`, `after=${version + 30}`]) {
      for (const headers of [{}, { 'If-None-Match': etag }]) {
        const started = performance.now();
        const res = await s.get(`/v1/configs/app?wait=20&${q}`, { headers });
        expect({ q, headers, status: res.status }).toEqual({ q, headers, status: 200 });
        expect(await res.json()).toEqual({ port: 1 });
        expect(res.headers.get('hotconf-epoch')).toBe(epoch);
        expect(performance.now() - started).toBeLessThan(10_000);
      }
    }
    expect(await longPolls(s.server)).toBe(0);
  });

  it('rejects a wait or after that is not a number with 400', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    for (const q of ['wait=soon', 'wait=-1', 'after=x', 'after=-2', 'after=ab:', 'after=a%20b:1', 'epoch=a%3Ab']) {
      const res = await s.get(`/v1/configs/app?${q}`);
      expect({ q, status: res.status }).toEqual({ q, status: 400 });
      expect(errorBody(await res.json())).toMatchObject({ code: 'E_BAD_REQUEST' });
    }
  });
});

describe('status, reload, probes', () => {
  it('GET /v1/status reports each config with file:line:col and pointer, without values', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    await w.configAtomic('app.yaml', 'port: 99999\n');
    await until(() => s.hot.status().errors === 1, 'error reported');
    const body = (await (await s.get('/v1/status')).json()) as { ready: boolean; errors: number; configs: { name: string; state: string; error: Record<string, unknown> }[] };
    expect(body.ready).toBe(true);
    expect(body.errors).toBe(1);
    expect(body).toMatchObject({ version: s.hot.version, epoch: s.hot.snapshot().epoch });
    expect(body.configs[0]).toMatchObject({ name: 'app', state: 'error', error: { code: 'E_SCHEMA', line: 1, pointer: '/port' } });
    expect(body.configs[0]!.error.message).toMatch(/app\.yaml:1:\d+: \/port/);
    expect(JSON.stringify(body)).not.toContain('99999');
  });

  it('POST /v1/reload answers 200 with the version when all is valid and 422 with the errors when not', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const ok = await s.get('/v1/reload', { method: 'POST' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ version: s.hot.version, errors: [] });
    await w.config('app.yaml', 'port: nope\n');
    const bad = await s.get('/v1/reload', { method: 'POST' });
    expect(bad.status).toBe(422);
    const body = (await bad.json()) as { version: number; errors: { code: string; file: string }[] };
    expect(body.version).toBe(s.hot.version);
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0]).toMatchObject({ code: 'E_SCHEMA' });
    expect(s.hot.get('app')).toEqual({ port: 1 });
  });

  it('GET /healthz is always 200; GET /readyz is 200 while hotconf is ready and 503 once it is closed', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    expect(await (await s.get('/healthz')).json()).toEqual({ ok: true });
    const ready = await s.get('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, version: s.hot.version });
    await s.hot.close();
    expect((await s.get('/readyz')).status).toBe(503);
    expect((await s.get('/healthz')).status).toBe(200);
    const reload = await s.get('/v1/reload', { method: 'POST' });
    expect(reload.status).toBe(503);
    expect(errorBody(await reload.json())).toMatchObject({ code: 'E_CLOSED' });
  });
});

describe('requests that match nothing', () => {
  it('unknown routes get 404 JSON; wrong methods 405 JSON with Allow; oversized bodies 413 JSON', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const unknown = await s.get('/v2/nothing');
    expect(unknown.status).toBe(404);
    expect(errorBody(await unknown.json())).toEqual({ code: 'E_NOT_FOUND', message: 'no such route' });

    for (const [method, path, allow] of [
      ['DELETE', '/v1/configs/app', 'GET, HEAD'],
      ['PUT', '/v1/configs', 'GET, HEAD'],
      ['GET', '/v1/reload', 'POST'],
      ['POST', '/metrics', 'GET, HEAD'],
    ] as const) {
      const res = await s.get(path, { method });
      expect({ method, path, status: res.status }).toEqual({ method, path, status: 405 });
      expect(res.headers.get('allow')).toBe(allow);
      expect(errorBody(await res.json())).toMatchObject({ code: 'E_METHOD_NOT_ALLOWED' });
    }

    const big = await s.get('/v1/reload', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ x: 'y'.repeat(64 * 1024) }) });
    expect(big.status).toBe(413);
    expect(errorBody(await big.json())).toMatchObject({ code: 'E_TOO_LARGE' });
  });
});
