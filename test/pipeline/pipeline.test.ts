// The pipeline against an in-memory source: no watcher, no etcd, no timing. Both batch policies, the retry of
// held names, keepOnDelete, a full listing, the source's revision, and the failure of each stage (read,
// parse, schema, an unexpected error, the store) — the promises of DESIGN.md points 1 to 3, once, for any source.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ReadError } from '../../src/errors.js';
import { ConfigParser } from '../../src/load/worker.js';
import { Pipeline, type BatchResult, type PipelineSettings } from '../../src/pipeline/index.js';
import type { EntryRead, Source, SourceBatch, SourceStatusBase } from '../../src/source/index.js';
import { Store } from '../../src/store/index.js';
import { SchemaRegistry } from '../../src/validate/index.js';
import { memoryLogger, tempDir, until, type TempDir } from '../helpers.js';
import { SERVICE_SCHEMA } from '../hotconf/fixtures.js';

/** YAML text, the string 'unsettled', a ReadError (refused by the source), or any other Error (thrown by read). */
type Entry = string | Error;

/** A source whose entries live in a map and whose batches are pushed by the test. */
class FakeSource implements Source {
  readonly entries = new Map<string, Entry>();
  readonly reads: string[] = [];
  readonly settledSeqs: number[] = [];
  resyncs = 0;
  #seq = 0;
  #queue: SourceBatch[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  readonly initial: SourceBatch;

  constructor(entries: Record<string, Entry>) {
    for (const [k, v] of Object.entries(entries)) this.entries.set(k, v);
    this.initial = this.batch(Object.keys(entries));
  }

  batch(names: string[], extra: Partial<SourceBatch> = {}): SourceBatch {
    return { seq: this.#seq++, names: new Set(names), full: false, reasons: new Set(['event']), firstHintAt: performance.now(), ...extra };
  }

  /** Changes entries (undefined deletes) and queues one batch naming them. */
  push(changes: Record<string, Entry | undefined>, extra: Partial<SourceBatch> = {}): void {
    for (const [k, v] of Object.entries(changes)) {
      if (v === undefined) this.entries.delete(k);
      else this.entries.set(k, v);
    }
    this.#queue.push(this.batch(Object.keys(changes), extra));
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SourceBatch> {
    while (!this.#closed) {
      const next = this.#queue.shift();
      if (next) yield next;
      else await new Promise<void>((r) => (this.#wake = r));
    }
  }

  read(name: string): Promise<EntryRead> {
    this.reads.push(name);
    const e = this.entries.get(name);
    if (e === undefined) return Promise.resolve({ kind: 'missing' });
    if (e === 'unsettled') return Promise.resolve({ kind: 'unsettled', shown: `fake:${name}` });
    if (e instanceof ReadError) return Promise.resolve({ kind: 'error', shown: `fake:${name}`, errors: [e] });
    if (e instanceof Error) return Promise.reject(e);
    return Promise.resolve({ kind: 'bytes', bytes: Buffer.from(e), format: 'yaml', path: `fake:${name}`, shown: `fake:${name}` });
  }

  settled(batch: SourceBatch): Promise<void> {
    this.settledSeqs.push(batch.seq);
    return Promise.resolve();
  }

  resync(): Promise<void> {
    this.resyncs++;
    return Promise.resolve();
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }

  status(): SourceStatusBase {
    return { kind: 'fake', connected: true };
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

let schemas: TempDir;
let parser: ConfigParser;
let store: Store;
let settings: PipelineSettings;
let log: Awaited<ReturnType<typeof memoryLogger>>;
let results: BatchResult[];

beforeEach(async () => {
  schemas = await tempDir();
  for (const name of ['a', 'b', 'c']) await schemas.write(`${name}.schema.json`, JSON.stringify(SERVICE_SCHEMA));
  parser = new ConfigParser();
  store = new Store({ logger: pino({ level: 'silent' }) });
  settings = { batchPolicy: 'all-or-nothing', maxFileBytes: 1_048_576, keepOnDelete: false, concurrency: 4 };
  log = await memoryLogger();
  results = [];
});

afterEach(async () => {
  await store.close();
  await parser.close();
  await schemas[Symbol.asyncDispose]();
});

function pipeline(): Pipeline {
  const registry = new SchemaRegistry({ schemaDir: schemas.dir, useDefaults: false });
  const p = new Pipeline({
    store,
    stages: { parser, registry, maxDepth: 64, maxAliasCount: 100, requireSchema: true },
    schemaDir: schemas.dir,
    settings: () => settings,
    logger: log.logger,
  });
  p.onBatch((r) => results.push(r));
  return p;
}

/** The initial listing is a 'request' batch: every schema is read with it. */
const initial = (src: FakeSource): SourceBatch => ({ ...src.initial, reasons: new Set(['request']) });

describe('pipeline (any source)', () => {
  test('the initial batch reads every name, commits the valid ones as one version, and settles the source', async () => {
    const src = new FakeSource({ a: 'port: 1', b: 'port: 2' });
    const p = pipeline();
    const errors = await p.process(src, initial(src), 'per-file');
    expect(errors).toEqual([]);
    expect(store.version).toBe(1);
    expect(store.get('a')).toEqual({ port: 1 });
    expect(store.get('b')).toEqual({ port: 2 });
    expect(src.settledSeqs).toEqual([0]);
  });

  test('all-or-nothing: one invalid config holds back the batch; its names are retried and apply once valid', async () => {
    const src = new FakeSource({ a: 'port: 1', b: 'port: 2' });
    const p = pipeline();
    await p.process(src, initial(src), 'per-file');
    src.push({ a: 'port: 10', b: 'port: nope' });
    await p.process(src, src.batch([]), 'all-or-nothing'); // nothing new: held names wait for a real change
    expect(store.version).toBe(1);
    const errors = await p.process(src, src.batch(['a', 'b']), 'all-or-nothing');
    expect(errors.map((e) => e.code)).toEqual(['E_SCHEMA']);
    expect(errors[0]!.message).toMatch(/^fake:b:1:7: \/port: must be integer/);
    expect(store.get('a')).toEqual({ port: 1 });
    expect(results.at(-1)).toMatchObject({ committed: false, held: ['a', 'b'] });
    expect(p.problems.get('a')?.state).toBe('pending');
    expect(p.problems.get('b')?.state).toBe('error');
    // A later batch that names only `c` retries the held names too.
    src.entries.set('b', 'port: 20');
    src.entries.set('c', 'port: 3');
    await p.process(src, src.batch(['c']), 'all-or-nothing');
    expect(store.version).toBe(2);
    expect(store.snapshot().configs.get('a')?.version).toBe(2);
    expect([store.get('a'), store.get('b'), store.get('c')]).toEqual([{ port: 10 }, { port: 20 }, { port: 3 }]);
    expect(p.problems.size).toBe(0);
  });

  test('per-file: the valid configs of a batch apply, the invalid one keeps its last good value', async () => {
    const src = new FakeSource({ a: 'port: 1', b: 'port: 2' });
    const p = pipeline();
    await p.process(src, initial(src), 'per-file');
    src.push({ a: 'port: 10', b: 'port: [' });
    await p.process(src, src.batch(['a', 'b']), 'per-file');
    expect(store.get('a')).toEqual({ port: 10 });
    expect(store.get('b')).toEqual({ port: 2 });
    expect(p.problems.get('b')).toMatchObject({ state: 'error', file: 'fake:b' });
    expect(p.problems.get('b')!.errors[0]!.code).toBe('E_PARSE');
  });

  test('a read error and an unsettled entry refuse nothing else under per-file, and hold the batch under all-or-nothing', async () => {
    const src = new FakeSource({ a: 'port: 1', b: 'port: 2' });
    const p = pipeline();
    await p.process(src, initial(src), 'per-file');
    src.entries.set('a', 'port: 10');
    src.entries.set('b', new ReadError('E_TOO_LARGE', { file: 'fake:b' }, 'is too large'));
    await p.process(src, src.batch(['a', 'b']), 'all-or-nothing');
    expect(store.get('a')).toEqual({ port: 1 });
    src.entries.set('b', 'unsettled');
    await p.process(src, src.batch(['b']), 'all-or-nothing');
    expect(store.get('a')).toEqual({ port: 1 });
    expect(p.problems.get('b')?.state).toBe('pending');
    await p.process(src, src.batch(['b']), 'per-file');
    expect(store.get('a')).toEqual({ port: 10 });
  });

  test('a removed config leaves the store, or stays as `deleted` with keepOnDelete', async () => {
    const src = new FakeSource({ a: 'port: 1', b: 'port: 2' });
    const p = pipeline();
    await p.process(src, initial(src), 'per-file');
    settings = { ...settings, keepOnDelete: true };
    src.push({ a: undefined });
    await p.process(src, src.batch(['a']), 'all-or-nothing');
    expect(store.get('a')).toEqual({ port: 1 });
    expect(p.problems.get('a')?.state).toBe('deleted');
    settings = { ...settings, keepOnDelete: false };
    src.push({ b: undefined });
    await p.process(src, src.batch(['b']), 'all-or-nothing');
    expect(store.get('b')).toBeUndefined();
    expect(store.snapshot().configs.has('b')).toBe(false);
  });

  test('a full listing removes what the store holds and the listing lacks, and carries the revision', async () => {
    const src = new FakeSource({ a: 'port: 1', b: 'port: 2' });
    const p = pipeline();
    await p.process(src, { ...initial(src), revision: '7' }, 'per-file');
    expect(store.snapshot().sourceRevision).toBe('7');
    src.entries.delete('b');
    await p.process(src, src.batch(['a'], { full: true, revision: '9' }), 'all-or-nothing');
    expect(store.snapshot().configs.has('b')).toBe(false);
    expect(store.snapshot().sourceRevision).toBe('9');
    // A batch with no names but a new revision still records it, without a version.
    const version = store.version;
    await p.process(src, src.batch([], { revision: '12' }), 'all-or-nothing');
    expect(store.snapshot().sourceRevision).toBe('12');
    expect(store.version).toBe(version);
  });

  test('a full listing also forgets a refused config that is gone (its event may have been lost)', async () => {
    const src = new FakeSource({ a: 'port: 1', c: 'port: nope' });
    const p = pipeline();
    await p.process(src, initial(src), 'per-file');
    expect(p.problems.get('c')?.state).toBe('error');
    src.entries.delete('c');
    await p.process(src, src.batch(['a'], { full: true }), 'all-or-nothing');
    expect(p.problems.has('c')).toBe(false);
    expect(p.currentErrors()).toEqual([]);
  });

  test('an entry over maxFileBytes is refused by the pipeline whatever the source does', async () => {
    const src = new FakeSource({ a: 'port: 1' });
    const p = pipeline();
    await p.process(src, initial(src), 'per-file');
    settings = { ...settings, maxFileBytes: 8 };
    src.push({ a: 'port: 65535' });
    const errors = await p.process(src, src.batch(['a']), 'per-file');
    expect(errors.map((e) => [e.code, e.message])).toEqual([['E_TOO_LARGE', 'fake:a: is too large: 11 bytes, over the limit of 8 bytes']]);
    expect(store.get('a')).toEqual({ port: 1 });
  });

  test('a changed schema re-validates the configs that use it', async () => {
    const src = new FakeSource({ a: 'port: 5' });
    const p = pipeline();
    await p.process(src, initial(src), 'per-file');
    const file = await schemas.write('a.schema.json', JSON.stringify({ ...SERVICE_SCHEMA, properties: { ...SERVICE_SCHEMA.properties, port: { type: 'integer', maximum: 3 } } }));
    src.reads.length = 0;
    const errors = await p.process(src, src.batch([], { schemas: new Set([file]) }), 'all-or-nothing');
    expect(src.reads).toEqual(['a']);
    expect(errors.map((e) => e.code)).toEqual(['E_SCHEMA']);
    expect(store.get('a')).toEqual({ port: 5 });
  });

  test('run(): an unexpected failure of a stage is logged, the source asked to look again, and the loop goes on', async () => {
    const src = new FakeSource({ a: 'port: 1' });
    const p = pipeline();
    await p.process(src, initial(src), 'per-file');
    const loop = p.run(src);
    src.push({ a: new Error('disk on fire') });
    await until(() => src.resyncs === 1, 'a resync after the failure');
    expect(log.lines.some((l) => l.msg === 'batch failed unexpectedly; looking at everything again')).toBe(true);
    src.push({ a: 'port: 2' });
    await until(() => store.get('a') !== undefined && (store.get('a') as { port: number }).port === 2, 'the next batch to commit');
    expect(p.batchInFlightMs).toBeUndefined();
    expect(p.lastBatchAt).toBeTypeOf('number');
    await src.close();
    await loop;
  });

  test('run(): a store that fails to commit does not end the loop', async () => {
    const src = new FakeSource({ a: 'port: 1' });
    const p = pipeline();
    await p.process(src, initial(src), 'per-file');
    const loop = p.run(src);
    await store.close();
    src.push({ a: 'port: 2' });
    await until(() => src.resyncs === 1, 'the failed commit to be reported');
    expect(log.lines.find((l) => l.msg === 'batch failed unexpectedly; looking at everything again')?.err).toMatchObject({ code: 'E_CLOSED' });
    await src.close();
    await loop;
  });

  test('a throwing batch listener harms neither the batch nor other listeners', async () => {
    const src = new FakeSource({ a: 'port: 1' });
    const p = pipeline();
    p.onBatch(() => {
      throw new Error('listener bug');
    });
    await p.process(src, initial(src), 'per-file');
    expect(store.version).toBe(1);
    expect(results).toHaveLength(1);
    expect(log.lines.some((l) => l.msg === 'batch listener failed')).toBe(true);
  });
});
