// The promise of src/source/index.ts, proved from outside src/: a third source needs nothing but the Source
// interface and the shared BatchQueue. An in-memory map of name → YAML text is written here, in the test, and
// handed to the real createHotconf through its `source` option: facade, pipeline, store, schemas and parser
// are the ones every user runs, and nothing in src/ knows this source.
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
// Only the package's public surface: what a user writing a source has.
import { BatchQueue, createHotconf, type EntryRead, type Source, type SourceBatch, type SourceStatusBase } from '../../src/index.js';
import { tempDir, until } from '../helpers.js';

interface MemorySourceStatus extends SourceStatusBase {
  readonly kind: 'memory';
  readonly connected: true;
}

/** The third source: configs held in a map. Hints go through the real BatchQueue, as etcd's do. */
class MemorySource implements Source<MemorySourceStatus> {
  readonly initial: SourceBatch;
  readonly #entries: Map<string, string>;
  readonly #queue = new BatchQueue<true>({ debounceMs: 0 });

  constructor(entries: Record<string, string>) {
    this.#entries = new Map(Object.entries(entries));
    // A 'request' batch: the pipeline reads every schema of its schema directory with it.
    this.initial = { seq: 0, names: new Set(this.#entries.keys()), full: true, reasons: new Set(['request']), firstHintAt: performance.now() };
  }

  /** Changes one entry and hints its name, as a watch event would. */
  set(name: string, text: string): void {
    this.#entries.set(name, text);
    this.#queue.add([[name, true]], 'event');
  }

  /** Drops an entry without a hint: a lost event, which only resync() can repair. */
  forget(name: string): void {
    this.#entries.delete(name);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SourceBatch> {
    for await (const b of this.#queue) {
      const full = b.full || b.overflowed;
      yield {
        seq: b.seq,
        names: new Set(full ? this.#entries.keys() : b.items.keys()),
        full,
        reasons: b.reasons,
        firstHintAt: b.firstHintAt,
      };
    }
  }

  read(name: string): Promise<EntryRead> {
    const text = this.#entries.get(name);
    if (text === undefined) return Promise.resolve({ kind: 'missing' });
    const shown = `memory:${name}`;
    // Fresh bytes per read: the parser may move (detach) large buffers to its worker.
    return Promise.resolve({ kind: 'bytes', bytes: Buffer.from(text), format: 'yaml', path: shown, shown });
  }

  /** A full listing, released at once; resolves once the pipeline is done with it. */
  resync(): Promise<void> {
    return this.#queue.request([...this.#entries.keys()].map((name) => [name, true] as const), 'request', { replace: true });
  }

  ping(): Promise<void> {
    return this.#queue.ping();
  }

  status(): MemorySourceStatus {
    return { kind: 'memory', connected: true };
  }

  close(): Promise<void> {
    this.#queue.close();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const SCHEMA = { type: 'object', additionalProperties: false, required: ['port'], properties: { port: { type: 'integer', minimum: 1, maximum: 65535 } } };

/** createHotconf over a MemorySource: the source option is the only wiring. */
async function world(entries: Record<string, string>) {
  const schemas = await tempDir();
  for (const name of Object.keys(entries)) await schemas.write(`${name}.schema.json`, JSON.stringify(SCHEMA));
  const source = new MemorySource(entries);
  const hot = await createHotconf({ source: () => Promise.resolve(source), schemaDir: schemas.dir, batchPolicy: 'per-file', logger: pino({ level: 'silent' }) });
  return {
    source,
    hot,
    async [Symbol.asyncDispose]() {
      await hot.close();
      await schemas[Symbol.asyncDispose]();
    },
  };
}

describe('a third source needs only the Source interface (an in-memory map through the real createHotconf)', () => {
  test('its initial listing commits as the first version', async () => {
    await using w = await world({ a: 'port: 1', b: 'port: 2' });
    expect(w.hot.version).toBe(1);
    expect([w.hot.get('a'), w.hot.get('b')]).toEqual([{ port: 1 }, { port: 2 }]);
    expect(w.hot.status().source).toEqual({ kind: 'memory', connected: true });
  });

  test('a change it pushes commits exactly one new version', async () => {
    await using w = await world({ a: 'port: 1', b: 'port: 2' });
    w.source.set('a', 'port: 10');
    await until(() => w.hot.version === 2, 'the change to be committed');
    await w.hot.ping(); // a later batch went through: nothing else was committed meanwhile
    expect(w.hot.version).toBe(2);
    expect(w.hot.snapshot().configs.get('a')).toMatchObject({ value: { port: 10 }, version: 2 });
    expect(w.hot.snapshot().configs.get('b')?.version).toBe(1);
  });

  test('an invalid value keeps the last good one and is reported with the name the source gave it', async () => {
    await using w = await world({ a: 'port: 1' });
    w.source.set('a', 'port: nope');
    const status = await until(() => w.hot.status().configs.find((c) => c.state === 'error'), 'the problem to be reported');
    expect(status).toMatchObject({ name: 'a', file: 'memory:a', error: { code: 'E_SCHEMA', file: 'memory:a', line: 1, col: 7 } });
    expect(w.hot.get('a')).toEqual({ port: 1 });
    expect(w.hot.version).toBe(1);
  });

  test('reload() asks it for a full listing: a name deleted without an event is removed', async () => {
    await using w = await world({ a: 'port: 1', b: 'port: 2' });
    w.source.forget('b');
    expect(w.hot.get('b')).toEqual({ port: 2 }); // no hint, no change
    await w.hot.reload(); // resolves once the pipeline has processed the full batch
    expect(w.hot.snapshot().configs.has('b')).toBe(false);
    expect(w.hot.get('a')).toEqual({ port: 1 });
    expect(w.hot.version).toBe(2);
  });

  test('close() closes it and ends every changes() iterator', async () => {
    await using w = await world({ a: 'port: 1' });
    const it = w.hot.changes();
    const next = it.next();
    await w.hot.close();
    await expect(next).resolves.toEqual({ done: true, value: undefined });
    expect(() => w.source.set('a', 'port: 2')).not.toThrow(); // a closed queue ignores hints
    await expect(w.hot.reload()).rejects.toMatchObject({ code: 'E_CLOSED' });
  });
});
