// RELIABILITY.md section 3, HTTP faults: the sidecar API over real loopback TCP against malformed and oversized
// requests, slow-loris clients, 1,000 concurrent SSE clients, path traversal, and a check that the bearer token is
// compared in constant time by construction (fixed-length digests through crypto.timingSafeEqual).
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { sleep, until } from '../helpers.js';
import { world } from '../hotconf/fixtures.js';
import { rawRequest, serve, svc } from '../http/fixtures.js';


const port = (url: string) => Number(new URL(url).port);

async function appWorld() {
  const w = await world();
  await w.schema('app');
  await w.config('app.yaml', svc(1));
  return w;
}

describe('slow-loris', () => {
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

