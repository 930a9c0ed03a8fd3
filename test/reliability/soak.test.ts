// RELIABILITY.md section 4, soak: changes across 100 files, with subscribers of every kind, a changes() consumer
// and SSE clients attached, for a bounded time in CI (HOTCONF_SOAK_SECONDS, default 40) or up to a number of
// changes (HOTCONF_SOAK_CHANGES=100000). RSS, heap (after a forced GC), open handles and listener counts are
// sampled; after a warm-up their first and last quarters are compared. Every round settles on the disk's values.
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { createHotconf, type Change } from '../../src/index.js';
import { startHttpServer } from '../../src/http/index.js';
import { until } from '../helpers.js';
import { world } from '../hotconf/fixtures.js';

const FILES = 100;
/** Files saved at once. */
const WRITERS = 20;
const SSE_CLIENTS = 10;
const targetChanges = Number(process.env.HOTCONF_SOAK_CHANGES ?? 0);
const budgetMs = targetChanges > 0 ? Infinity : Number(process.env.HOTCONF_SOAK_SECONDS ?? 40) * 1000;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

interface Sample {
  changes: number;
  /** Active resources by type (FSReqCallback, TCPSocketWrap, Timeout…). */
  types: Record<string, number>;
  rssMiB: number;
  heapMiB: number;
  handles: number;
  listeners: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Median of the first and last quarter of `samples` (after warm-up) and the growth between them, in %. */
function growth(samples: Sample[], key: Exclude<keyof Sample, 'types'>) {
  const q = Math.max(1, Math.floor(samples.length / 4));
  const first = median(samples.slice(0, q).map((s) => s[key]));
  const last = median(samples.slice(-q).map((s) => s[key]));
  return { first, last, pct: first === 0 ? 0 : ((last - first) / first) * 100 };
}

/** An SSE client (ids are `<epoch>:<version>`) that remembers only the versions it saw (in order) and whether they ever went backwards. */
function sseClient(url: string) {
  const st = { last: -1, events: 0, backwards: 0, ended: false, tail: '' };
  const req = http.get(`${url}/v1/events`, { agent: false }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      st.tail += d;
      const cut = st.tail.lastIndexOf('\n\n');
      if (cut < 0) return;
      for (const m of st.tail.slice(0, cut).matchAll(/^id: (?:[0-9a-f]+:)?(\d+)$/gm)) {
        const id = Number(m[1]);
        if (id < st.last) st.backwards++;
        st.last = id;
        st.events++;
      }
      st.tail = st.tail.slice(cut + 2);
    });
    res.on('end', () => (st.ended = true));
  });
  req.on('error', () => (st.ended = true));
  return { st, close: () => req.destroy() };
}

/** A subscriber that checks the order of what it is given. */
function follower() {
  const f = { last: 0, calls: 0, backwards: 0 };
  return {
    f,
    handler: (c: Change) => {
      if (c.version <= f.last) f.backwards++;
      f.last = c.version;
      f.calls++;
    },
  };
}

it(`soak: ${targetChanges > 0 ? `${targetChanges} changes` : `${budgetMs / 1000} s of changes`} across ${FILES} files with subscribers and ${SSE_CLIENTS} SSE clients; memory, handles and listeners stay flat`, async () => {
  await using w = await world();
  const names = Array.from({ length: FILES }, (_, i) => `c${String(i).padStart(2, '0')}`);
  for (const name of names) {
    await w.schema(name);
    await w.config(`${name}.yaml`, 'port: 80\nn: 0\n');
  }
  // A logger that keeps nothing (a memory logger would itself grow), counting problems only.
  let problems = 0;
  const logger = pino({ level: 'warn' }, { write: () => void problems++ });
  const hot = await createHotconf({ configDir: w.configDir, schemaDir: w.schemaDir, debounceMs: 10, logger });
  const server = await startHttpServer(hot, { listen: '127.0.0.1:0', logger });
  const clients = Array.from({ length: SSE_CLIENTS }, () => sseClient(server.url));
  try {
    const all = follower();
    const slow = follower();
    const some = follower();
    const selected = follower();
    hot.onConfigChange(all.handler);
    hot.onConfigChange(async (c) => {
      await new Promise((r) => setImmediate(r));
      slow.handler(c);
    });
    hot.onConfigChange(names.slice(0, 10), some.handler);
    hot.onConfigChange((snap) => (snap.get('c99') as { n?: number } | undefined)?.n, selected.handler);
    hot.onConfigChange(() => {
      throw new Error('a faulty subscriber, for the record');
    });
    const iterated = { last: 0, backwards: 0 };
    const consumer = (async () => {
      for await (const c of hot.changes()) {
        if (c.version <= iterated.last) iterated.backwards++;
        iterated.last = c.version;
      }
    })();
    await until(() => clients.every((c) => c.st.events > 0), 'SSE hellos');

    const values = new Array<number>(FILES).fill(0);
    const samples: Sample[] = [];
    const settleMs: number[] = [];
    let changes = 0;
    const started = performance.now();
    const sample = () => {
      gc();
      const mem = process.memoryUsage();
      const types: Record<string, number> = {};
      for (const t of process.getActiveResourcesInfo()) types[t] = (types[t] ?? 0) + 1;
      samples.push({
        changes,
        types,
        rssMiB: mem.rss / 2 ** 20,
        heapMiB: mem.heapUsed / 2 ** 20,
        // File-system requests in flight (a verify sweep, a re-stat) come and go; handles are what can leak.
        handles: process.getActiveResourcesInfo().filter((t) => !t.startsWith('FSReq')).length,
        listeners:
          hot.stats.subscribers +
          hot.stats.iterators +
          server.app.server.eventNames().reduce((sum, e) => sum + server.app.server.listenerCount(e), 0) +
          process.eventNames().reduce((sum, e) => sum + process.listenerCount(e), 0),
      });
    };
    const done = () => (targetChanges > 0 ? changes >= targetChanges : performance.now() - started >= budgetMs);
    let round = 0;
    while (!done()) {
      round++;
      // 1 to 100 distinct files, saved 20 at a time: batches of every size, each file's last value known.
      const picked = [...names.keys()].sort(() => Math.random() - 0.5).slice(0, 1 + Math.floor(Math.random() * FILES));
      for (let i = 0; i < picked.length; i += WRITERS) {
        await Promise.all(
          picked.slice(i, i + WRITERS).map((f) => {
            values[f] = ++changes;
            return w.configAtomic(`${names[f]}.yaml`, `port: 80\nn: ${values[f]}\n`);
          }),
        );
      }
      const wrote = performance.now();
      await until(
        () => names.every((name, f) => (hot.get(name) as { n: number }).n === values[f]),
        `round ${round}: the store equals the disk`,
        { timeoutMs: 20_000, intervalMs: 2 },
      );
      settleMs.push(performance.now() - wrote);
      if (round % 5 === 0) sample();
    }
    sample();
    const elapsedS = (performance.now() - started) / 1000;

    // Everyone caught up with the last version, in order.
    const v = hot.version;
    await until(() => all.f.last === v && slow.f.last === v && iterated.last === v, 'subscribers at the last version');
    await until(() => clients.every((c) => c.st.last === v), 'SSE clients at the last version', { timeoutMs: 20_000 });
    for (const f of [all.f, slow.f, some.f, selected.f]) expect(f.backwards).toBe(0);
    expect(iterated.backwards).toBe(0);
    expect(clients.every((c) => c.st.backwards === 0 && !c.st.ended)).toBe(true);
    expect(some.f.calls).toBeGreaterThan(0);
    expect(selected.f.calls).toBeGreaterThan(0);

    // Flat after warm-up: the first fifth of the samples is warm-up.
    const steady = samples.slice(Math.floor(samples.length / 5));
    const rss = growth(steady, 'rssMiB');
    const heap = growth(steady, 'heapMiB');
    const handles = growth(steady, 'handles');
    const listeners = growth(steady, 'listeners');
    const sorted = [...settleMs].sort((a, b) => a - b);
    const report = {
      changes,
      rounds: round,
      versions: v,
      seconds: Math.round(elapsedS),
      changesPerSecond: Math.round(changes / elapsedS),
      samples: samples.length,
      rssMiB: { first: +rss.first.toFixed(1), last: +rss.last.toFixed(1), growthPct: +rss.pct.toFixed(1) },
      heapMiB: { first: +heap.first.toFixed(1), last: +heap.last.toFixed(1), growthPct: +heap.pct.toFixed(1) },
      handles: { first: handles.first, last: handles.last, firstByType: steady[0]?.types, lastByType: samples.at(-1)?.types },
      listeners: { first: listeners.first, last: listeners.last },
      settleMs: { p50: Math.round(sorted[Math.floor(sorted.length / 2)]!), p99: Math.round(sorted[Math.floor(sorted.length * 0.99)]!), max: Math.round(sorted.at(-1)!) },
      subscriberErrors: hot.stats.subscriberErrors,
      sseEventsPerClient: clients[0]!.st.events,
    };
    console.log(`soak: ${JSON.stringify(report)}`);
    expect(samples.length).toBeGreaterThanOrEqual(8);
    // Generous ceilings: they catch a leak (growth with the number of changes), not noise.
    expect(heap.pct).toBeLessThan(50);
    expect(rss.pct).toBeLessThan(50);
    expect(handles.last).toBeLessThanOrEqual(handles.first + 10);
    expect(listeners.last).toBe(listeners.first);
    // The faulty subscriber was called for every version and counted, and only its failures were logged.
    expect(hot.stats.subscriberErrors).toBe(all.f.calls);
    expect(problems).toBe(hot.stats.subscriberErrors);
    await hot.close();
    await consumer;
  } finally {
    for (const c of clients) c.close();
    await server.close();
    await hot.close();
  }
}, 30 * 60_000);
