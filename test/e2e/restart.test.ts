// The client protocol across a daemon restart (issue 14, point 1): versions restart at 1 in every process, so a
// client's id from the old process must get a reset (SSE) or a full answer (long-poll) from the new one, never a
// replay of unrelated events or a 304. Real daemons (child processes), real HTTP, clients written as the README
// tells a client to behave.
import { expect, it } from 'vitest';
import { world } from '../hotconf/fixtures.js';
import { sleep, until } from '../helpers.js';
import { startHotconf, type Daemon } from './cli-helpers.js';

type Values = Map<string, unknown>;

/** A long-poll client of one config as the README describes it: keeps the value, the epoch and the version it
 *  came with, sends `after=<epoch>:<version>` back, and retries when the sidecar is away. */
function longPoller(base: () => string, name: string) {
  const state = { value: undefined as unknown, id: undefined as string | undefined, polls: 0, stop: false };
  const loop = (async () => {
    while (!state.stop) {
      try {
        const after = state.id === undefined ? '' : `&after=${state.id}`;
        const res = await fetch(`${base()}/v1/configs/${name}?wait=2${after}`, { signal: AbortSignal.timeout(10_000) });
        state.polls++;
        if (res.status === 200) {
          state.value = await res.json();
          state.id = `${res.headers.get('hotconf-epoch')}:${res.headers.get('x-hotconf-version')}`;
        } else if (res.status !== 304) {
          await sleep(100);
        }
      } catch {
        await sleep(100); // the sidecar is restarting
      }
    }
  })();
  return { state, stop: async () => ((state.stop = true), await loop) };
}

/** An SSE client as the README describes it, with the reconnect in the test's hands: keeps every config's value
 *  and the last event id; on hello without state or on reset it refetches everything, on change the named ones. */
function sseClient(base: () => string) {
  const values: Values = new Map();
  let lastId: string | undefined;
  const seen: string[] = [];
  let abort = new AbortController();
  const refetch = async (names?: readonly string[], removed: readonly string[] = []) => {
    const list = (await (await fetch(`${base()}/v1/configs`)).json()) as { configs: Array<{ name: string }> };
    const wanted = names ?? list.configs.map((c) => c.name);
    if (names === undefined) for (const n of [...values.keys()]) if (!wanted.includes(n)) values.delete(n);
    for (const n of removed) values.delete(n);
    for (const n of wanted) values.set(n, await (await fetch(`${base()}/v1/configs/${n}`)).json());
  };
  const connect = async (): Promise<void> => {
    abort = new AbortController();
    const res = await fetch(`${base()}/v1/events`, { headers: lastId === undefined ? {} : { 'Last-Event-ID': lastId }, signal: abort.signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const field = (f: string) => [...block.matchAll(/^(\w+): ?(.*)$/gm)].find((m) => m[1] === f)?.[2];
          const type = field('event');
          if (type === undefined) continue;
          const data = JSON.parse(field('data') ?? '{}') as { changed?: string[]; removed?: string[] };
          seen.push(`${type} ${field('id')}`);
          if (type === 'reset' || (type === 'hello' && values.size === 0)) await refetch();
          else if (type === 'change') await refetch(data.changed ?? [], data.removed ?? []);
          lastId = field('id');
        }
      }
    } catch {
      // the stream was cut (the daemon stopped, or the test disconnected it)
    }
  };
  return { values, seen, lastId: () => lastId, connect, disconnect: () => abort.abort() };
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

it('clients holding ids from a stopped daemon end on the current value of every config after it restarts, without a later edit', async () => {
  await using w = await world();
  const schema = { type: 'object', properties: { n: { type: 'integer' } } };
  await w.schema('app', schema);
  await w.schema('other', schema);
  await w.config('app.yaml', 'n: 1\n');
  await w.config('other.yaml', 'n: 1\n');
  const port = await freePort();
  const base = () => `http://127.0.0.1:${port}`;
  const run = () => startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', `127.0.0.1:${port}`]);
  const stop = async (d: Daemon) => {
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  };
  const status = async () => (await (await fetch(`${base()}/v1/status`)).json()) as { epoch: string; version: number };
  const edit = async (name: string, n: number) => {
    const before = (await status()).version;
    await w.configAtomic(`${name}.yaml`, `n: ${n}\n`);
    await until(async () => (await status()).version > before, `${name} = ${n} committed`);
  };
  const disk = { app: 1, other: 1 };
  const holds = (values: { get(n: string): unknown }) => values.get('app') !== undefined && (values.get('app') as { n: number }).n === disk.app && (values.get('other') as { n: number } | undefined)?.n === disk.other;

  let a: Daemon | undefined = run();
  let b: Daemon | undefined;
  const pollApp = longPoller(base, 'app');
  const pollOther = longPoller(base, 'other');
  const late = sseClient(base);
  const early = sseClient(base);
  let earlyRunning: Promise<void> | undefined;
  let earlyOn = true;
  let watcher: Daemon | undefined;
  try {
    await a.line((l) => l.msg === 'http listening', 'daemon A listening');
    const epochA = (await status()).epoch;
    const lateStream = late.connect();
    // The early client reconnects on its own as soon as the stream ends, as EventSource does (every 200 ms here).
    earlyRunning = (async () => {
      while (earlyOn) {
        await early.connect().catch(() => undefined);
        await sleep(200);
      }
    })();
    watcher = startHotconf(['watch', '--url', base()]);
    await watcher.line((l) => l.type === 'hello', 'hotconf watch says hello');

    await edit('app', (disk.app = 2));
    await edit('other', (disk.other = 2));
    await until(() => holds(late.values) && holds(early.values), 'the SSE clients on A\'s last values');
    await until(() => (pollApp.state.value as { n?: number } | undefined)?.n === 2 && (pollOther.state.value as { n?: number } | undefined)?.n === 2, 'the long-polls on A\'s last values');
    const lateId = late.lastId()!;
    expect(lateId).toBe(`${epochA}:${(await status()).version}`);

    await stop(a);
    a = undefined;
    await lateStream; // the late client is off-line until the test reconnects it

    // B starts on the same content, then the change that matters (app) and more changes that name only `other`,
    // until B's version has passed the late client's last id.
    b = run();
    await b.line((l) => l.msg === 'http listening', 'daemon B listening');
    const epochB = (await status()).epoch;
    expect(epochB).not.toBe(epochA);
    await edit('app', (disk.app = 3));
    while ((await status()).version <= Number(lateId.split(':')[1])) await edit('other', ++disk.other);
    await edit('other', ++disk.other);

    // Without epochs the late client was replayed B's events after its version (only `other`) and kept app = 2;
    // the long-poll of app waited on `after` = A's version and answered 304.
    const lateAgain = late.connect();
    await until(() => holds(late.values), 'the late SSE client on the current value of every config', { timeoutMs: 15_000 });
    await until(() => holds(early.values), 'the early SSE client on the current value of every config', { timeoutMs: 15_000 });
    await until(
      () => (pollApp.state.value as { n?: number } | undefined)?.n === disk.app && (pollOther.state.value as { n?: number } | undefined)?.n === disk.other,
      'the long-polls on the current value of every config',
      { timeoutMs: 15_000 },
    );
    expect(pollApp.state.id?.startsWith(`${epochB}:`)).toBe(true);
    // It got there by a reset from B (the first event on reconnecting), not by a replay of B's events.
    const afterReconnect = late.seen.slice(late.seen.indexOf(`change ${lateId}`) + 1);
    expect(afterReconnect[0]).toMatch(new RegExp(`^reset ${epochB}:\\d+$`));
    // A bare numeric id (a client from before epochs) is a reset too, never a replay.
    const bare = await fetch(`${base()}/v1/events`, { headers: { 'Last-Event-ID': '1' } });
    const text = await readUntil(bare, 'event:');
    expect(text).toMatch(/^retry: \d+\n\nid: [0-9a-f]+:\d+\nevent: reset\n/);

    // hotconf watch --url followed the restart: a reset line with B's whole state, and no version printed twice.
    const resetLine = await watcher.line((l) => l.type === 'reset' && l.epoch === epochB, 'hotconf watch prints the reset', 15_000);
    expect(Object.keys(resetLine.hashes as object).sort()).toEqual(['app', 'other']);
    const printed = watcher.lines.filter((l) => l.type === 'change' || l.type === 'reset').map((l) => `${String(l.epoch)}:${String(l.version)}`);
    expect(new Set(printed).size).toBe(printed.length);
    late.disconnect();
    await lateAgain;
  } finally {
    late.disconnect();
    await pollApp.stop();
    await pollOther.stop();
    if (a) await stop(a);
    if (b) await stop(b);
    a = b = undefined;
    earlyOn = false;
    early.disconnect();
    await earlyRunning;
    watcher?.signal('SIGINT');
    await watcher?.exited;
  }
}, 60_000);

async function readUntil(res: Response, marker: string): Promise<string> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while (!text.includes(marker) || !text.endsWith('\n\n')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  return text;
}
