// RELIABILITY.md section 3, HTTP faults: the sidecar API over real loopback TCP against malformed and oversized
// requests, slow-loris clients, 1,000 concurrent SSE clients, path traversal, and a check that the bearer token is
// compared in constant time by construction (fixed-length digests through crypto.timingSafeEqual).
import * as crypto from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { sleep, until } from '../helpers.js';
import { world } from '../hotconf/fixtures.js';
import { rawRequest, serve, svc, TOKEN } from '../http/fixtures.js';

// A pass-through spy: the server's own calls to timingSafeEqual are recorded, the comparison is Node's.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

const port = (url: string) => Number(new URL(url).port);

/** Sends raw bytes on a fresh connection; resolves with everything the server sent back until it closed (or `ms`). */
function rawExchange(url: string, payload: string | Buffer, ms = 5000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port(url), '127.0.0.1');
    let text = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    };
    const timer = setTimeout(done, ms);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.on('error', done);
    socket.on('close', done);
    socket.write(payload);
  });
}

const statusOf = (response: string) => Number(/^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1] ?? 0);

async function appWorld() {
  const w = await world();
  await w.schema('app');
  await w.config('app.yaml', svc(1));
  return w;
}

describe('malformed and oversized requests', { timeout: 60_000 }, () => {
  it('each is answered 4xx (or the connection closed), never 5xx, and the server serves normally afterwards', async () => {
    await using w = await appWorld();
    await using s = await serve(w);
    // Connection: close, so that an answered request ends its exchange at once.
    const H = 'Host: localhost\r\nConnection: close\r\n';
    const cases: Array<[string, string | Buffer, number[]]> = [
      ['garbage request line', 'GARBAGE\r\n\r\n', [400]],
      ['binary garbage', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)), [0, 400]],
      ['unknown HTTP version', `GET /healthz HTTP/9.9\r\n${H}\r\n`, [400, 505]],
      ['header line without a colon', `GET /healthz HTTP/1.1\r\n${H}NoColonHere\r\n\r\n`, [400]],
      ['control character in a header', `GET /healthz HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n`, [400]],
      ['NUL in the path', `GET /v1/configs/app\x00 HTTP/1.1\r\n${H}\r\n`, [400]],
      ['20 KB header', `GET /healthz HTTP/1.1\r\n${H}Cookie: ${'c'.repeat(20_000)}\r\n\r\n`, [431]],
      ['100 KB URL', `GET /v1/configs/${'a'.repeat(100_000)} HTTP/1.1\r\n${H}\r\n`, [0, 404, 414, 431]],
      ['10,000 query parameters', `GET /v1/configs/app?${'a=1&'.repeat(3000)} HTTP/1.1\r\n${H}\r\n`, [200, 400]],
      ['Content-Length and Transfer-Encoding (smuggling)', `POST /v1/reload HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, [400]],
      ['negative Content-Length', `POST /v1/reload HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, [400]],
      ['two different Content-Lengths', `POST /v1/reload HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab`, [400]],
      ['broken chunked body', `POST /v1/reload HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n0\r\n\r\n`, [400]],
      ['1 MiB body', `POST /v1/reload HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n${'x'.repeat(1_048_576)}`, [413]],
      ['malformed JSON body', `POST /v1/reload HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{"a":`, [400]],
      ['__proto__ in a JSON body', `POST /v1/reload HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 27\r\n\r\n{"__proto__":{"polluted":1}}`, [400]],
      ['unsupported media type', `POST /v1/reload HTTP/1.1\r\n${H}Content-Type: application/x-evil\r\nContent-Length: 2\r\n\r\nhi`, [415]],
      ['bad percent-encoding', `GET /v1/configs/%E0%A4%A HTTP/1.1\r\n${H}\r\n`, [400, 404]],
      ['absolute-form URL to another host', `GET http://evil.example/v1/configs/app HTTP/1.1\r\n${H}\r\n`, [200, 400, 404]],
      ['CONNECT', `CONNECT evil.example:443 HTTP/1.1\r\n${H}\r\n`, [0, 400, 404, 405]],
    ];
    const seen: string[] = [];
    for (const [what, payload, expected] of cases) {
      const status = statusOf(await rawExchange(s.url, payload));
      seen.push(`${what}: ${status || 'closed'}`);
      expect(expected, `${what}: got ${status || 'no response (closed)'}`).toContain(status);
    }
    // 100 pipelined requests in one write: 100 answers, in order.
    const keep = 'Host: localhost\r\n';
    const pipelined = await rawExchange(s.url, `GET /healthz HTTP/1.1\r\n${keep}\r\n`.repeat(99) + `GET /healthz HTTP/1.1\r\n${H}\r\n`);
    expect(pipelined.match(/HTTP\/1\.1 200/g)).toHaveLength(100);
    console.log(`malformed requests: ${cases.length} kinds + 100 pipelined → ${seen.join('; ')}`);
    // The server is fine, the config untouched, nothing polluted, no internal error logged.
    expect(await (await s.get('/v1/configs/app')).json()).toMatchObject({ port: 80, n: 1 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(s.logs.lines.filter((l) => Number(l.level) >= 50)).toEqual([]);
  });
});

describe('slow-loris', { timeout: 60_000 }, () => {
  it('100 clients trickling their headers and 50 trickling a body are cut after requestTimeoutMs, while others are served', async () => {
    await using w = await appWorld();
    await using s = await serve(w, { requestTimeoutMs: 1500 });
    const sockets: net.Socket[] = [];
    const closed = new Set<net.Socket>();
    const answers: string[] = [];
    const trickle = (first: string, byte: string) => {
      const socket = net.connect(port(s.url), '127.0.0.1');
      sockets.push(socket);
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => answers.push(d));
      socket.on('error', () => undefined);
      socket.on('close', () => closed.add(socket));
      socket.write(first);
      const timer = setInterval(() => {
        if (!socket.destroyed) socket.write(byte);
      }, 200);
      socket.on('close', () => clearInterval(timer));
    };
    try {
      for (let i = 0; i < 100; i++) trickle('GET /v1/events HTTP/1.1\r\nHost: localhost\r\nX-Slow: ', 'a');
      for (let i = 0; i < 50; i++) trickle('POST /v1/reload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"a":"', 'b');
      // During the attack: probes, reads and event streams work.
      for (let i = 0; i < 5; i++) {
        expect((await s.get('/healthz')).status).toBe(200);
        expect((await rawRequest({ url: s.url }, '/v1/configs/app')).status).toBe(200);
        await sleep(100);
      }
      const started = performance.now();
      await until(() => closed.size === sockets.length, `all ${sockets.length} slow clients cut`, { timeoutMs: 20_000, intervalMs: 50 });
      console.log(`slow-loris: ${sockets.length} trickling clients cut ${Math.round(performance.now() - started)} ms after the probes (requestTimeoutMs 1500)`);
      expect(answers.join('')).not.toMatch(/HTTP\/1\.1 5\d\d/);
      expect((await s.get('/v1/configs/app')).status).toBe(200);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  it('an event stream and a long-poll outlive requestTimeoutMs: it bounds receiving a request, not answering it', async () => {
    await using w = await appWorld();
    await using s = await serve(w, { requestTimeoutMs: 500 });
    const res = await fetch(`${s.url}/v1/events`);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const poll = rawRequest({ url: s.url }, `/v1/configs/app?wait=3&after=${s.hot.version}`);
    await sleep(2000);
    await w.configAtomic('app.yaml', svc(2));
    expect((await poll).status).toBe(200);
    let text = '';
    const decoder = new TextDecoder();
    while (!text.includes('event: change')) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the event stream ended early: ${text}`);
      text += decoder.decode(value, { stream: true });
    }
    await reader.cancel();
  });
});

describe('1,000 concurrent SSE clients', { timeout: 60_000 }, () => {
  it('every client gets every change in order, the server closes them all promptly, and no client is left behind', async () => {
    await using w = await appWorld();
    await using s = await serve(w);
    const CLIENTS = 1000;
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    const streams: Array<{ text: string; ended: boolean; req: http.ClientRequest }> = [];
    for (let i = 0; i < CLIENTS; i++) {
      const st = { text: '', ended: false, req: undefined as unknown as http.ClientRequest };
      st.req = http.get(`${s.url}/v1/events`, { agent }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (d: string) => (st.text += d));
        res.on('end', () => (st.ended = true));
        res.on('error', () => (st.ended = true));
      });
      st.req.on('error', () => (st.ended = true));
      streams.push(st);
    }
    await until(() => streams.every((st) => st.text.includes('event: hello')), `${CLIENTS} hellos`, { timeoutMs: 30_000, intervalMs: 50 });
    const v0 = s.hot.version;
    for (let n = 2; n <= 6; n++) {
      const before = s.hot.version;
      await w.configAtomic('app.yaml', svc(n));
      await until(() => s.hot.version > before, `commit ${n}`);
    }
    const last = s.hot.version;
    await until(() => streams.every((st) => st.text.includes(`id: ${s.hot.snapshot().epoch}:${last}\n`)), 'every client at the last version', { timeoutMs: 30_000, intervalMs: 50 });
    for (const st of streams) {
      const ids = [...st.text.matchAll(/^id: [0-9a-f]+:(\d+)$/gm)].map((m) => Number(m[1]));
      // hello at v0, then each version once, in order (a burst may coalesce, never reorder)
      expect(ids[0]).toBe(v0);
      expect(ids.at(-1)).toBe(last);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      expect(new Set(ids).size).toBe(ids.length);
    }
    expect((await s.get('/healthz')).status).toBe(200);
    const t0 = performance.now();
    await s.server.close();
    const closeMs = performance.now() - t0;
    await until(() => streams.every((st) => st.ended), 'every stream ended', { timeoutMs: 15_000, intervalMs: 50 });
    console.log(`1000 SSE clients: ${last - v0} versions each, all in order; server close() took ${Math.round(closeMs)} ms`);
    agent.destroy();
  }, 90_000);
});

describe('path traversal on /v1/configs/:name', { timeout: 60_000 }, () => {
  it('40 traversal spellings never serve a file outside the store, and never a 5xx', async () => {
    await using w = await appWorld();
    const CANARY = 'canary-outside-configdir-7731';
    // Readable YAML that would be a config if hotconf ever read outside configDir.
    await writeFile(path.join(w.tmp.dir, 'outside.yaml'), `port: 1\nsecret: ${CANARY}\n`);
    await writeFile(path.join(w.schemaDir, 'leak.yaml'), `port: 1\nsecret: ${CANARY}\n`);
    await using s = await serve(w);
    const names = [
      '../outside', '..%2foutside', '%2e%2e/outside', '%2e%2e%2foutside', '..%252foutside', '%252e%252e%252foutside',
      '..\\outside', '..%5coutside', '%c0%ae%c0%ae/outside', '%c0%af', '..%c0%afoutside', '.%2e/outside', '%2e./outside',
      '....//outside', '..;/outside', 'app/../../outside', 'app/%2e%2e/%2e%2e/outside', '%2fetc%2fpasswd', '/etc/passwd',
      '//etc/passwd', '..%00/outside', 'app%00', 'app%00.yaml', '../schemas/leak', '..%2fschemas%2fleak', '../../../../../../etc/passwd',
      '%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..%u2216outside', '%uff0e%uff0e/outside', '%e2%80%a5/outside', '%ef%bc%8e%ef%bc%8e/outside',
      'app/..', 'app/.', './app', '.%2fapp', '~/outside', '%7e/outside', 'app%2f..%2f..%2foutside', '.../outside', '..../outside',
    ];
    const statuses = new Map<number, number>();
    for (const name of names) {
      const res = await rawRequest({ url: s.url }, `/v1/configs/${name}`);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      expect(res.body, name).not.toContain(CANARY);
      expect(res.body, name).not.toContain('root:');
      expect(res.status, name).toBeGreaterThanOrEqual(400);
      expect(res.status, name).toBeLessThan(500);
    }
    console.log(`traversal: ${names.length} spellings → ${[...statuses].map(([k, v]) => `${v}× ${k}`).join(', ')}`);
    expect((await s.get('/v1/configs/app')).status).toBe(200);
  });
});

describe('bearer token comparison', { timeout: 60_000 }, () => {
  it('is constant-time by construction: every check is crypto.timingSafeEqual over two 32-byte digests, whatever the length of the guess', async () => {
    await using w = await appWorld();
    await using s = await serve(w, { token: TOKEN });
    const spy = vi.mocked(crypto.timingSafeEqual);
    const guesses = ['x', TOKEN.slice(0, -1), `${TOKEN.slice(0, -1)}X`, `X${TOKEN.slice(1)}`, `${TOKEN}x`, 'y'.repeat(8000), TOKEN];
    for (const guess of guesses) {
      spy.mockClear();
      const res = await fetch(`${s.url}/v1/configs/app`, { headers: { Authorization: `Bearer ${guess}` } });
      await res.body?.cancel();
      expect(res.status, guess.slice(0, 20)).toBe(guess === TOKEN ? 200 : 401);
      expect(spy).toHaveBeenCalledTimes(1);
      const [a, b] = spy.mock.calls[0]! as [Buffer, Buffer];
      expect([a.length, b.length]).toEqual([32, 32]);
    }
    // A header that is not a bearer token never reaches a comparison of secrets at all.
    spy.mockClear();
    expect((await fetch(`${s.url}/v1/configs/app`, { headers: { Authorization: 'Basic abc' } })).status).toBe(401);
    expect(spy).not.toHaveBeenCalled();
  });
});
