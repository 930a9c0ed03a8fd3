// Who may read what: the bearer token guards every route but the probes, and secret values (schema
// writeOnly / x-hotconf-secret) never leave the process, over any route or in any log line, unless the
// operator opted in (token + allowSecrets) and the request asks for them.
import { describe, expect, it } from 'vitest';
import { HotconfError } from '../../src/index.js';
import { startHttpServer } from '../../src/http/index.js';
import { until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { NESTED_SECRET, rawRequest, SECRET, serve, subscribe, svc, TOKEN } from './fixtures.js';

const ROUTES: [method: string, path: string][] = [
  ['GET', '/v1/configs'],
  ['GET', '/v1/configs/app'],
  ['GET', '/v1/configs/app?secrets=true'],
  ['GET', '/v1/configs/app?wait=30&after=0'],
  ['GET', '/v1/events'],
  ['GET', '/v1/status'],
  ['GET', '/v1/errors'],
  ['GET', '/v1/history'],
  ['GET', '/v1/events?problems=true'],
  ['POST', '/v1/reload'],
  ['GET', '/metrics'],
  ['GET', '/no/such/route'],
  ['DELETE', '/v1/configs/app'],
];

describe('bearer token', () => {
  it('every route but /healthz and /readyz answers 401 JSON without the token or with a wrong one', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', svc(1));
    await using s = await serve(w, { token: TOKEN });
    const wrong = [
      undefined,
      'Bearer wrong-token',
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      'Bearer ',
      `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`,
      TOKEN,
    ];
    for (const [method, path] of ROUTES) {
      for (const authorization of wrong) {
        const res = await rawRequest(s.server, path, { method, headers: authorization === undefined ? {} : { authorization } });
        expect({ method, path, authorization, status: res.status }).toEqual({ method, path, authorization, status: 401 });
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        const body = JSON.parse(res.body) as { error: { code: string; message: string } };
        expect(Object.keys(body)).toEqual(['error']);
        expect(body.error.code).toBe('E_UNAUTHORIZED');
        expect(body.error.message).toMatch(/bearer token/);
        expect(res.body).not.toContain(SECRET);
      }
    }
    for (const path of ['/healthz', '/readyz']) {
      expect((await rawRequest(s.server, path)).status).toBe(200);
    }
    // With the token (any case for the scheme), the same routes answer.
    expect((await rawRequest(s.server, '/v1/configs', { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200);
    expect((await rawRequest(s.server, '/metrics', { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await rawRequest(s.server, '/v1/reload', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect(s.logs.text()).not.toContain(TOKEN);
  });

  it('the event stream accepts the token', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', svc(1));
    await using s = await serve(w, { token: TOKEN });
    using sub = subscribe(s.url, { token: TOKEN });
    await until(() => sub.received.find((e) => e.type === 'hello'), 'hello');
  });

  it('refuses an empty token, one with spaces, and allowSecrets without a token', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', svc(1));
    await using hot = await start(w);
    for (const options of [{ token: '' }, { token: 'two words' }, { allowSecrets: true }]) {
      const err = await startHttpServer(hot, { listen: '127.0.0.1:0', logger: hot.logs.logger, ...options }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HotconfError);
      expect((err as HotconfError).code).toBe('E_OPTIONS');
    }
  });
});

describe('secrets', () => {
  it('no secret appears in any response, event or log line (debug level), whatever happens', async () => {
    await using w = await world();
    await w.schema('app');
    await w.schema('db/primary');
    await w.config('app.yaml', svc(1));
    await w.config('db/primary.yaml', `port: 5432\npassword: ${SECRET}\n`);
    await using s = await serve(w);
    using sub = subscribe(s.url);
    await until(() => sub.received.find((e) => e.type === 'hello'), 'hello');

    // A valid change, a schema error on the secret's line, a parse error next to it, then valid again.
    await w.configAtomic('app.yaml', svc(2));
    await until(() => sub.changes().length === 1, 'first change event');
    await w.configAtomic('app.yaml', `port: 80\npassword: 12345\nnested:\n  token: ${NESTED_SECRET}\n`);
    await until(() => s.hot.status().errors === 1, 'schema error');
    await w.configAtomic('app.yaml', `port: 80\npassword: "${SECRET}\n`);
    await until(() => s.hot.status().configs.find((c) => c.name === 'app')?.error?.code === 'E_PARSE', 'parse error');
    await w.configAtomic('app.yaml', svc(3));
    await until(() => sub.changes().length === 2, 'second change event');

    const bodies: string[] = [];
    for (const path of ['/v1/configs', '/v1/configs/app', '/v1/configs/db/primary', '/v1/status', '/metrics', '/v1/configs/app?wait=0.1&after=0']) {
      const res = await s.get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      bodies.push(await res.text());
    }
    const reload = await s.get('/v1/reload', { method: 'POST' });
    bodies.push(await reload.text());
    const value = JSON.parse(bodies[1]!) as { password: string; nested: { token: string }; n: number };
    expect(value).toEqual({ port: 80, n: 3, password: '[REDACTED]', nested: { token: '[REDACTED]' } });
    expect(JSON.parse(bodies[2]!)).toEqual({ port: 5432, password: '[REDACTED]' });
    bodies.push(...sub.received.map((e) => e.raw));

    for (const text of [...bodies, s.logs.text()]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(NESTED_SECRET);
    }
    // The logs did record the requests at debug level: the absence above is not for want of logging.
    expect(s.logs.lines.some((l) => l.module === 'http' && l.msg === 'request')).toBe(true);
  });

  it('are served only with the token, allowSecrets and ?secrets=true, and then not cached', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', svc(1));
    await using s = await serve(w, { token: TOKEN, allowSecrets: true });
    const plain = await s.get('/v1/configs/app');
    expect(await plain.text()).not.toContain(SECRET);
    const res = await s.get('/v1/configs/app?secrets=true');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ port: 80, n: 1, password: SECRET, nested: { token: NESTED_SECRET } });
    expect(s.logs.text()).not.toContain(SECRET);
    expect(s.logs.text()).not.toContain(TOKEN);
  });

  it('?secrets=true is refused with 403 when the server does not allow secrets', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', svc(1));
    for (const options of [{}, { token: TOKEN }]) {
      await using s = await serve(w, options);
      const res = await s.get('/v1/configs/app?secrets=true');
      expect(res.status).toBe(403);
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ error: { code: 'E_FORBIDDEN' } });
      expect(text).not.toContain(SECRET);
    }
  });
});
