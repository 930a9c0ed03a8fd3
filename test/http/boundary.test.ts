// The sidecar's boundary (issue 18, points 4-6), over real loopback sockets: the Host allow-list against DNS
// rebinding, cross-site writes refused, and the limits on long-polls and connections answered 503 + Retry-After.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { startHttpServer } from '../../src/http/index.js';
import { tempDir, until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { rawRequest, serve, svc } from './fixtures.js';

async function appWorld() {
  const w = await world();
  await w.schema('app');
  await w.config('app.yaml', svc(1));
  return w;
}

const port = (url: string) => Number(new URL(url).port);

/** A raw HTTP/1.1 exchange on its own socket: what the server sent until it closed the connection (or `ms`). */
function exchange(url: string, request: string, ms = 5000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port(url), '127.0.0.1');
    let text = '';
    let closed = false;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(done, ms);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      done();
    });
    socket.write(request);
  });
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
const headerOf = (text: string, name: string) => new RegExp(`^${name}: (.*)\r$`, 'im').exec(text)?.[1];

describe('Host allow-list (DNS rebinding)', () => {
  it('answers loopback names, IP literals and the listen host with any port, and refuses other names with 421 on every route', async () => {
    await using w = await appWorld();
    await using s = await serve(w);
    const get = (host: string, route = '/v1/configs/app') => rawRequest(s.server, route, { headers: { host } });
    for (const host of ['localhost', 'localhost:8080', 'LOCALHOST:1', '127.0.0.1', `127.0.0.1:${port(s.url)}`, '[::1]', '[::1]:8080', '10.1.2.3:80']) {
      expect({ host, status: (await get(host)).status }).toEqual({ host, status: 200 });
    }
    for (const host of ['evil.example', 'evil.example:8080', 'localhost.evil.example', '127.0.0.1.nip.io', 'attacker.localhost.example:80']) {
      for (const route of ['/v1/configs/app', '/v1/configs', '/v1/status', '/metrics', '/v1/events', '/healthz']) {
        const res = await get(host, route);
        expect({ host, route, status: res.status }).toEqual({ host, route, status: 421 });
        expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'E_MISDIRECTED' } });
        expect(res.body).not.toContain('"port"');
      }
    }
    expect(s.logs.text()).toContain('request for another host refused');
  });

  it('accepts the names of allowedHosts (exact, or a .domain with its subdomains), and any name with *', async () => {
    await using w = await appWorld();
    const hot = await start(w);
    await using _hot = hot;
    await using named = await startHttpServer(hot, { listen: '127.0.0.1:0', logger: hot.logs.logger, allowedHosts: ['hotconf.internal', '.corp.example'] });
    for (const [host, status] of [
      ['hotconf.internal:8080', 200],
      ['HOTCONF.internal', 200],
      ['corp.example', 200],
      ['a.b.corp.example:1', 200],
      ['evilcorp.example', 421],
      ['hotconf.internal.evil.example', 421],
    ] as const) {
      expect({ host, status: (await rawRequest(named, '/v1/configs', { headers: { host } })).status }).toEqual({ host, status });
    }
    await using any = await startHttpServer(hot, { listen: '127.0.0.1:0', logger: hot.logs.logger, allowedHosts: ['*'] });
    expect((await rawRequest(any, '/v1/configs', { headers: { host: 'whatever.example' } })).status).toBe(200);
  });

  it('a unix-socket listener checks Host the same way (a proxy in front sends localhost, or is named in allowedHosts)', async () => {
    await using w = await appWorld();
    await using dir = await tempDir();
    const hot = await start(w);
    await using _hot = hot;
    const socketPath = dir.file('api.sock');
    await using _server = await startHttpServer(hot, { listen: `unix:${socketPath}`, logger: hot.logs.logger });
    expect((await rawRequest({ socketPath }, '/v1/configs/app', { headers: { host: 'localhost' } })).status).toBe(200);
    expect((await rawRequest({ socketPath }, '/v1/configs/app', { headers: { host: 'evil.example' } })).status).toBe(421);
  });
});

describe('cross-site writes', () => {
  it('refuses a text/plain form POST, a foreign Origin and Sec-Fetch-Site: cross-site without reloading; curl-style and same-origin POSTs reload', async () => {
    await using w = await appWorld();
    await using s = await serve(w, { allowedHosts: ['admin.corp.example'] });
    let reloads = 0;
    const reload = s.hot.reload.bind(s.hot);
    s.hot.reload = () => {
      reloads++;
      return reload();
    };
    const self = `127.0.0.1:${port(s.url)}`;
    const post = (headers: Record<string, string>, body = '') =>
      exchange(s.url, `POST /v1/reload HTTP/1.1\r\nHost: ${self}\r\nConnection: close\r\nContent-Length: ${body.length}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`);

    // What a web page can send without a preflight: a form (text/plain, urlencoded, multipart), with its Origin.
    const refused: Array<[Record<string, string>, string, number]> = [
      [{ 'Content-Type': 'text/plain' }, 'x=1', 415],
      [{ 'Content-Type': 'text/plain;charset=UTF-8', Origin: 'http://evil.example' }, 'x=1', 403],
      [{ 'Content-Type': 'application/x-www-form-urlencoded', Origin: 'http://evil.example' }, 'x=1', 403],
      [{ Origin: 'http://evil.example' }, '', 403],
      [{ Origin: 'null' }, '', 403],
      [{ Origin: 'http://127.0.0.1:1' }, '', 403], // another local site (another port) is another origin
      [{ 'Sec-Fetch-Site': 'cross-site' }, '', 403],
      [{ 'Sec-Fetch-Site': 'same-site', Origin: `http://${self}` }, '', 403],
    ];
    for (const [headers, body, status] of refused) {
      const res = await post(headers, body);
      expect({ headers, status: statusOf(res.text) }).toEqual({ headers, status });
    }
    expect(reloads).toBe(0);

    const accepted: Array<Record<string, string>> = [
      {}, // curl -X POST, the hotconf CLI
      { 'Content-Type': 'application/json' },
      { Origin: `http://${self}`, 'Sec-Fetch-Site': 'same-origin' },
      { 'Sec-Fetch-Site': 'none' },
      { Origin: 'https://admin.corp.example' }, // named in allowedHosts
    ];
    for (const headers of accepted) {
      const res = await post(headers, headers['Content-Type'] === undefined ? '' : '{}');
      expect({ headers, status: statusOf(res.text) }).toEqual({ headers, status: 200 });
    }
    expect(reloads).toBe(accepted.length);
    expect(s.logs.text()).toContain('cross-site request refused');
  });
});

describe('limits', () => {
  it('long-polls past maxLongPolls get 503 with Retry-After, and a slot freed is usable again', async () => {
    await using w = await appWorld();
    await using s = await serve(w, { maxLongPolls: 3 });
    const v = s.hot.version;
    const poll = `GET /v1/configs/app?wait=60&after=${v} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;
    const parked = Array.from({ length: 3 }, () => net.connect(port(s.url), '127.0.0.1').on('error', () => undefined));
    for (const socket of parked) socket.write(poll);
    await until(async () => /hotconf_long_polls 3\b/.test(await (await s.get('/metrics')).text()), '3 long-polls parked');

    const over = await exchange(s.url, poll);
    expect(statusOf(over.text)).toBe(503);
    expect(headerOf(over.text, 'Retry-After')).toBe('5');
    expect(over.text).toContain('E_TOO_MANY_CLIENTS');

    parked[0]!.destroy();
    await until(async () => /hotconf_long_polls 2\b/.test(await (await s.get('/metrics')).text()), 'a slot freed');
    const again = exchange(s.url, poll, 60_000);
    await until(async () => /hotconf_long_polls 3\b/.test(await (await s.get('/metrics')).text()), 'the new long-poll parked');
    await w.configAtomic('app.yaml', svc(2));
    expect(statusOf((await again).text)).toBe(200);
    for (const socket of parked) socket.destroy();
  });

  it('connections past maxConnections are answered 503 + Retry-After and closed; past the headroom they are closed unanswered', async () => {
    await using w = await appWorld();
    await using s = await serve(w, { maxConnections: 8 });
    const open: net.Socket[] = [];
    const connect = () =>
      new Promise<net.Socket>((resolve) => {
        const socket = net.connect(port(s.url), '127.0.0.1', () => resolve(socket));
        socket.on('error', () => undefined);
        open.push(socket);
      });
    try {
      for (let i = 0; i < 8; i++) await connect();
      const over = await exchange(s.url, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
      expect(statusOf(over.text)).toBe(503);
      expect(headerOf(over.text, 'Retry-After')).toBe('5');
      expect(over.text).toContain('E_TOO_MANY_CONNECTIONS');
      expect(over.closed).toBe(true);

      // Fill the headroom (a quarter of the limit: 2): the next connection is closed by Node without a byte.
      for (let i = 0; i < 2; i++) await connect();
      const dropped = await exchange(s.url, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
      expect(dropped).toEqual({ text: '', closed: true });

      // Once clients go away, requests are served again.
      for (const socket of open.splice(0)) socket.destroy();
      await until(async () => statusOf((await exchange(s.url, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')).text) === 200, 'served again');
    } finally {
      for (const socket of open) socket.destroy();
    }
  });
});
