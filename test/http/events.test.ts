// GET /v1/events: every committed version reaches every client in order, a reconnecting client gets exactly
// what it missed (or a reset when that is no longer known), and a client that stops reading is dropped
// without slowing the commits or anyone else.
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BatchResult } from '../../src/index.js';
import { until } from '../helpers.js';
import { world } from '../hotconf/fixtures.js';
import { serve, subscribe } from './fixtures.js';

/** The SSE id of the server's current version: `<epoch>:<version>`. */
const idOf = (s: { hot: { snapshot(): { epoch: string; version: number } } }) => `${s.hot.snapshot().epoch}:${s.hot.snapshot().version}`;
/** The version half of an SSE id. */
const versionOf = (id: string) => Number(id.split(':')[1]);

async function gauge(metric: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await metric.get()).values[0]?.value ?? 0;
}

/** Reads a raw event stream with fetch until `done(text)` holds; returns the text. */
async function readStream(url: string, headers: Record<string, string>, done: (text: string) => boolean, query = ''): Promise<string> {
  const abort = new AbortController();
  const res = await fetch(`${url}/v1/events${query}`, { headers, signal: abort.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    if (done(text)) break;
  }
  abort.abort();
  return text;
}

describe('GET /v1/events', () => {
  it('a new client gets retry and a hello with the current version, then keepalive comments', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w, { heartbeatMs: 50 });
    const text = await readStream(s.url, {}, (t) => t.includes(': keepalive\n\n'));
    const { epoch, version } = s.hot.snapshot();
    expect(text.startsWith(`retry: 2000\n\nid: ${epoch}:${version}\nevent: hello\ndata: {"epoch":"${epoch}","version":${version}}\n\n`)).toBe(true);
    expect(text).toContain(': keepalive\n\n');
  });

  it('delivers every version in order under a burst of 50 atomic writes, covering each commit', async () => {
    await using w = await world();
    const names = ['a', 'b', 'c', 'd', 'e'];
    for (const n of names) await w.schema(`svc/${n}`);
    for (const n of names) await w.config(`svc/${n}.yaml`, 'port: 1\n');
    await using s = await serve(w);
    const batches: BatchResult[] = [];
    s.hot.onBatch((b) => void (b.committed && batches.push(b)));
    using sub = subscribe(s.url);
    await until(() => sub.received.find((e) => e.type === 'hello'), 'hello');

    for (let i = 0; i < 50; i++) await w.configAtomic(`svc/${names[i % names.length]}.yaml`, `port: ${100 + i}\n`);
    await until(() => names.every((n, k) => (s.hot.get(`svc/${n}`) as { port: number } | undefined)?.port === 145 + k), 'disk converged');
    await until(() => sub.changes().at(-1)?.id === idOf(s), 'last event is the current version');

    const events = sub.changes();
    const ids = events.map((e) => versionOf(e.id));
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]!);
    for (const e of events) expect(e.id).toBe(`${s.hot.snapshot().epoch}:${e.data.version}`);
    expect(batches.length).toBeGreaterThan(0);
    for (const b of batches) {
      const carrier = events.find((e) => e.data.version >= b.version);
      expect(carrier, `an event for version ${b.version}`).toBeDefined();
      for (const name of b.changed) expect(carrier!.data.changed).toContain(name);
    }
    const last = events.at(-1)!;
    for (const [name, hash] of Object.entries(last.data.hashes!)) expect(hash).toBe(s.hot.snapshot().configs.get(name)!.hash);
    expect(sub.received.filter((e) => e.type !== 'change').map((e) => e.type)).toEqual(['hello']);
  });

  it('a client resuming with Last-Event-ID gets exactly the events it missed, then the live ones', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    const first = subscribe(s.url);
    const hello = await until(() => first.received.find((e) => e.type === 'hello'), 'hello');
    const seen = versionOf(hello.id);
    first.close();

    for (let port = 2; port <= 4; port++) {
      const before = s.hot.version;
      await w.configAtomic('app.yaml', `port: ${port}\n`);
      await until(() => s.hot.version > before, `commit of port ${port}`);
    }
    using again = subscribe(s.url, { lastEventId: hello.id });
    await until(() => again.changes().length >= 3, 'the missed events');
    const before = s.hot.version;
    await w.configAtomic('app.yaml', 'port: 5\n');
    await until(() => s.hot.version > before && again.changes().at(-1)?.id === idOf(s), 'the live event');
    expect(again.received.map((e) => [e.type, versionOf(e.id)])).toEqual([1, 2, 3, 4].map((k) => ['change', seen + k]));
    expect(again.changes().map((e) => e.data.changed)).toEqual([['app'], ['app'], ['app'], ['app']]);
  });

  // The history is bounded by count, and by bytes: a replay must fit in what one client may have queued
  // (one event for `app` is about 150 bytes).
  it.each([
    ['historySize', { historySize: 2 }],
    ['clientBufferBytes', { clientBufferBytes: 400 }],
  ])('a client resuming from before the kept history (%s), or from an unknown version, gets a reset to refetch', async (_what, options) => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w, options);
    const start = s.hot.version;
    for (let port = 2; port <= 5; port++) {
      const before = s.hot.version;
      await w.configAtomic('app.yaml', `port: ${port}\n`);
      await until(() => s.hot.version > before, `commit of port ${port}`);
    }
    // History holds the last 2 events: resuming from current-2 still works, from current-3 does not.
    const { epoch, version } = s.hot.snapshot();
    using recent = subscribe(s.url, { lastEventId: `${epoch}:${version - 2}` });
    await until(() => recent.changes().length === 2, 'the two kept events');
    expect(recent.received.map((e) => e.type)).toEqual(['change', 'change']);
    // Also a reset: an id of another process (its epoch, even at a version this one has), and a bare number (a
    // client from before ids had an epoch: it cannot say which process it came from).
    for (const lastEventId of [`${epoch}:${start}`, `${epoch}:${version - 3}`, `${epoch}:${version + 10}`, `0123abcd:${version - 1}`, String(version - 1)]) {
      const text = await readStream(s.url, { 'Last-Event-ID': lastEventId }, (t) => t.includes('event: reset'));
      expect(text).toBe(`retry: 2000\n\nid: ${epoch}:${version}\nevent: reset\ndata: {"epoch":"${epoch}","version":${version}}\n\n`);
    }
    // The query parameter works as the header does (for clients that cannot set headers).
    const viaQuery = await readStream(s.url, {}, (t) => t.includes('event: reset'), `?lastEventId=${epoch}:${start}`);
    expect(viaQuery).toContain(`event: reset\ndata: {"epoch":"${epoch}","version":${version}}`);
  });

  it('a client that stops reading is dropped with a reset, without delaying commits or other clients', async () => {
    await using w = await world();
    // Events are only names and hashes; long names (nested directories) make them big enough to fill the
    // kernel's socket buffers (several MB on loopback) in a few commits.
    const deep = Array.from({ length: 14 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(230)}`).join('/');
    await mkdir(path.join(w.configDir, deep), { recursive: true });
    const files = Array.from({ length: 40 }, (_, i) => `${deep}/c${i}.json`);
    for (const f of files) await w.config(f, '{"n":0}');
    await using s = await serve(w, { clientBufferBytes: 64 * 1024 }, { requireSchema: false });
    const metrics = s.server.metrics;

    using healthy = subscribe(s.url);
    await until(() => healthy.received.find((e) => e.type === 'hello'), 'healthy hello');
    const stalled = net.connect(Number(new URL(s.url).port), '127.0.0.1');
    await new Promise<void>((resolve) => stalled.once('connect', resolve));
    stalled.write('GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n');
    stalled.pause();
    await until(async () => (await gauge(metrics.sseClients)) === 2, 'both clients connected');

    let commits = 0;
    while ((await gauge(metrics.sseDropped)) === 0) {
      expect(commits, 'the stalled client was never dropped').toBeLessThan(100);
      const before = s.hot.version;
      commits++;
      await Promise.all(files.map((f) => w.configAtomic(f, `{"n":${commits}}`)));
      await until(() => s.hot.version > before && files.every((f) => (s.hot.get(f.slice(0, -5)) as { n: number }).n === commits), `commit ${commits}`);
      // The healthy client keeps up with every commit while the other one stalls.
      await until(() => healthy.changes().at(-1)?.id === idOf(s), `healthy client at version ${s.hot.version}`);
    }
    expect(await gauge(metrics.sseClients)).toBe(1);
    expect(s.logs.lines.some((l) => l.msg === 'event stream client too slow; dropped')).toBe(true);

    // Commits and the healthy client go on.
    const before = s.hot.version;
    await w.configAtomic(files[0]!, '{"n":-1}');
    await until(() => s.hot.version > before && healthy.changes().at(-1)?.id === idOf(s), 'healthy after the drop');

    // If the stalled client ever reads again, its stream ends with a reset telling it to refetch.
    let received = '';
    stalled.setEncoding('utf8');
    stalled.on('data', (chunk: string) => (received += chunk));
    stalled.resume();
    await new Promise<void>((resolve) => stalled.once('end', resolve));
    expect(received.slice(-200)).toMatch(/event: reset\ndata: \{"epoch":"[0-9a-f]+","version":\d+\}\n\n/);
    stalled.destroy();
  }, 60_000);

  it('refuses clients over maxClients with 503', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w, { maxClients: 1 });
    using one = subscribe(s.url);
    await until(() => one.received.find((e) => e.type === 'hello'), 'hello');
    const res = await fetch(`${s.url}/v1/events`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: 'E_TOO_MANY_CLIENTS' } });
  });

  it('close() ends event streams and long-polls promptly and is idempotent', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using s = await serve(w);
    using sub = subscribe(s.url);
    await until(() => sub.received.find((e) => e.type === 'hello'), 'hello');
    const poll = s.get(`/v1/configs/app?wait=60&after=${s.hot.version}`);
    await until(async () => (await gauge(s.server.metrics.longPolls)) === 1, 'the poll is waiting');
    const started = performance.now();
    await Promise.all([s.server.close(), s.server.close()]);
    expect(performance.now() - started).toBeLessThan(5000);
    const res = await poll;
    expect(res.status).toBe(503);
    await s.server.close();
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });
});
