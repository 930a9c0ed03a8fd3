// changes(): the committed changes as an async iterator, coalescing for a slow consumer (DESIGN.md points 7 and 8).
import { describe, expect, test } from 'vitest';
import { until } from '../helpers.js';
import { Store, type Change, type EntryInput } from '../../src/store/index.js';

function entry(name: string, value: unknown): EntryInput {
  return { name, value, hash: JSON.stringify(value), path: `config/${name}.yaml` };
}

describe('changes()', () => {
  test('yields each commit in order to a consumer that keeps up', async () => {
    const store = new Store();
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const change of store.changes()) {
        seen.push(change.version);
        if (change.version === 3) break;
      }
    })();
    for (let i = 1; i <= 3; i++) {
      store.commit({ set: [entry('a', i)] });
      await until(() => seen.length === i, `version ${i}`);
    }
    await consumer;
    expect(seen).toEqual([1, 2, 3]);
  });

  test('starts from the snapshot current when changes() is called', async () => {
    const store = new Store();
    store.commit({ set: [entry('a', 1)] });
    const changes = store.changes();
    store.commit({ set: [entry('b', 1)] });
    const first = await changes.next();
    expect(first.value).toMatchObject({ version: 2, changed: ['b'] });
    expect((first.value as Change).previous.version).toBe(1);
    await changes.return?.();
  });

  test('a slow consumer gets one coalesced change to the latest version', async () => {
    const store = new Store();
    const changes = store.changes();
    store.commit({ set: [entry('a', 1), entry('gone', 1)] });
    const first = await changes.next();
    for (let i = 2; i <= 20; i++) store.commit({ set: [entry('a', i), entry(`n${i}`, i)] });
    store.commit({ remove: ['gone'] });
    const second = await changes.next();
    expect((first.value as Change).version).toBe(1);
    expect(second.value).toMatchObject({ version: 21, removed: ['gone'] });
    expect((second.value as Change).changed).toContain('a');
    expect((second.value as Change).changed).toHaveLength(20);
    expect((second.value as Change).previous.version).toBe(1);
    await changes.return?.();
  });

  test('a pending next() resolves when a commit arrives, after commit() returns', async () => {
    const store = new Store();
    const changes = store.changes();
    let resolved = false;
    const pending = changes.next().then((r) => {
      resolved = true;
      return r;
    });
    store.commit({ set: [entry('a', 1)] });
    expect(resolved).toBe(false);
    expect((await pending).value).toMatchObject({ version: 1 });
    await changes.return?.();
  });

  test('a net-zero span (added, then removed) is skipped, not yielded', async () => {
    const store = new Store();
    const changes = store.changes();
    store.commit({ set: [entry('tmp', 1)] });
    store.commit({ remove: ['tmp'] });
    const next = changes.next();
    store.commit({ set: [entry('real', 1)] });
    expect((await next).value).toMatchObject({ version: 3, changed: ['real'], removed: [] });
    await changes.return?.();
  });

  test('close() ends every iterator: pending and later next() are done', async () => {
    const store = new Store();
    const a = store.changes();
    const b = store.changes();
    const pending = a.next();
    expect(store.stats.iterators).toBe(2);
    await store.close();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect((await a.next()).done).toBe(true);
    expect((await b.next()).done).toBe(true);
    expect(store.stats.iterators).toBe(0);
    expect((await store.changes().next()).done).toBe(true);
  });

  test('a for-await loop ends when the store closes', async () => {
    const store = new Store();
    let ended = false;
    const consumer = (async () => {
      for await (const _change of store.changes()) {
        // consume
      }
      ended = true;
    })();
    await until(() => store.stats.iterators === 1, 'the iterator');
    await store.close();
    await consumer;
    expect(ended).toBe(true);
  });

  test('break in for-await releases the iterator', async () => {
    const store = new Store();
    store.commit({ set: [entry('a', 1)] });
    const consumer = (async () => {
      for await (const _change of store.changes()) break;
    })();
    await until(() => store.stats.iterators === 1, 'the iterator');
    store.commit({ set: [entry('a', 2)] });
    await consumer;
    expect(store.stats.iterators).toBe(0);
  });

  test('aborting the signal ends a pending next() and releases the iterator', async () => {
    const store = new Store();
    const controller = new AbortController();
    const changes = store.changes({ signal: controller.signal });
    const pending = changes.next();
    expect(store.stats.iterators).toBe(1);
    controller.abort();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(store.stats.iterators).toBe(0);
    store.commit({ set: [entry('a', 1)] });
    expect((await changes.next()).done).toBe(true);
  });

  test('an already aborted signal gives an iterator that is done at once', async () => {
    const store = new Store();
    const changes = store.changes({ signal: AbortSignal.abort() });
    expect(store.stats.iterators).toBe(0);
    expect((await changes.next()).done).toBe(true);
  });

  test('`await using` releases the iterator at the end of the block', async () => {
    const store = new Store();
    {
      await using changes = store.changes();
      store.commit({ set: [entry('a', 1)] });
      expect((await changes.next()).value).toMatchObject({ version: 1 });
      expect(store.stats.iterators).toBe(1);
    }
    expect(store.stats.iterators).toBe(0);
  });

  test('two iterators follow independently: a slow one does not hold back a fast one', async () => {
    const store = new Store();
    const fast = store.changes();
    const slow = store.changes();
    for (let i = 1; i <= 3; i++) {
      store.commit({ set: [entry('a', i)] });
      expect((await fast.next()).value).toMatchObject({ version: i });
    }
    expect((await slow.next()).value).toMatchObject({ version: 3 });
    await fast.return?.();
    await slow.return?.();
  });
});
