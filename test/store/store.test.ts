// The store's snapshots: versions, atomic commit, structural sharing, immutability (DESIGN.md points 2 and 6).
import { describe, expect, test } from 'vitest';
import { HotconfError } from '../../src/errors.js';
import { deepFreeze, Store, type EntryInput } from '../../src/store/index.js';

/** An entry whose hash is its JSON, as a caller hashing the parsed content would compute it. */
function entry(name: string, value: unknown, extra: Partial<EntryInput> = {}): EntryInput {
  return { name, value, hash: JSON.stringify(value), path: `config/${name}.yaml`, ...extra };
}

describe('versions', () => {
  test('a new store holds the empty version 0', () => {
    const store = new Store();
    expect(store.version).toBe(0);
    expect(store.snapshot().version).toBe(0);
    expect(store.snapshot().configs.size).toBe(0);
    expect(store.snapshot().sourceRevision).toBeUndefined();
    expect(store.get('app')).toBeUndefined();
  });

  test('each commit that changes something is exactly one version more', () => {
    const store = new Store();
    for (let i = 1; i <= 10; i++) {
      const change = store.commit({ set: [entry('app', { i }), entry('db', { i })] });
      expect(change?.version).toBe(i);
      expect(change?.current.version).toBe(i);
      expect(change?.previous.version).toBe(i - 1);
      expect(store.version).toBe(i);
    }
  });

  test('a commit whose hashes are all unchanged uses no version and returns undefined', () => {
    const store = new Store();
    store.commit({ set: [entry('app', { port: 1 })] });
    const before = store.snapshot();
    expect(store.commit({ set: [entry('app', { port: 1 })] })).toBeUndefined();
    expect(store.commit({ remove: ['missing'] })).toBeUndefined();
    expect(store.commit({})).toBeUndefined();
    expect(store.version).toBe(1);
    expect(store.snapshot()).toBe(before);
  });

  test('changed lists added and re-hashed names, sorted; unchanged names are not listed', () => {
    const store = new Store();
    store.commit({ set: [entry('keep', 1), entry('edit', 1)] });
    const change = store.commit({ set: [entry('zeta', 1), entry('keep', 1), entry('edit', 2), entry('alpha', 1)] });
    expect(change?.changed).toEqual(['alpha', 'edit', 'zeta']);
    expect(change?.removed).toEqual([]);
  });

  test('a removed name is gone from the new snapshot and listed in removed, sorted', () => {
    const store = new Store();
    store.commit({ set: [entry('a', 1), entry('b', 2), entry('c', 3)] });
    const change = store.commit({ remove: ['c', 'a', 'not-there'] });
    expect(change?.removed).toEqual(['a', 'c']);
    expect(change?.changed).toEqual([]);
    expect(store.get('a')).toBeUndefined();
    expect(store.snapshot().configs.has('c')).toBe(false);
    expect(store.get('b')).toBe(2);
    expect(change?.previous.get('a')).toBe(1);
  });

  test('an entry records the version in which it last changed', () => {
    const store = new Store();
    store.commit({ set: [entry('a', 1), entry('b', 1)] });
    store.commit({ set: [entry('a', 2), entry('b', 1)] });
    expect(store.snapshot().configs.get('a')?.version).toBe(2);
    expect(store.snapshot().configs.get('b')?.version).toBe(1);
  });

  test('an entry keeps its path and secrets; secrets default to []', () => {
    const store = new Store();
    store.commit({ set: [entry('a', { pw: 'x' }, { secrets: ['/pw'] }), entry('b', 1)] });
    const a = store.snapshot().configs.get('a');
    expect(a?.path).toBe('config/a.yaml');
    expect(a?.secrets).toEqual(['/pw']);
    expect(store.snapshot().configs.get('b')?.secrets).toEqual([]);
  });
});

describe('sourceRevision', () => {
  test('a commit carries its source revision into the new snapshot', () => {
    const store = new Store();
    store.commit({ set: [entry('a', 1)], sourceRevision: '41' });
    expect(store.snapshot().sourceRevision).toBe('41');
  });

  test('a new revision without changes replaces the snapshot at the same version, and the old one is untouched', () => {
    const store = new Store();
    store.commit({ set: [entry('a', 1)], sourceRevision: '41' });
    const before = store.snapshot();
    expect(store.commit({ set: [entry('a', 1)], sourceRevision: '42' })).toBeUndefined();
    const after = store.snapshot();
    expect(after).not.toBe(before);
    expect(after.version).toBe(1);
    expect(after.sourceRevision).toBe('42');
    expect(after.configs).toBe(before.configs);
    expect(after.committedAt).toBe(before.committedAt);
    expect(before.sourceRevision).toBe('41');
  });

  test('a no-op commit without a revision keeps the current revision', () => {
    const store = new Store();
    store.commit({ set: [entry('a', 1)], sourceRevision: '41' });
    const before = store.snapshot();
    store.commit({ set: [entry('a', 1)] });
    expect(store.snapshot()).toBe(before);
  });
});

describe('structural sharing', () => {
  test('an entry whose hash is unchanged keeps its ConfigEntry object and value reference', () => {
    const store = new Store();
    store.commit({ set: [entry('a', { n: 1 }), entry('b', { big: [1, 2, 3] })] });
    const v1 = store.snapshot();
    store.commit({ set: [entry('a', { n: 2 }), entry('b', { big: [1, 2, 3] })] });
    const v2 = store.snapshot();
    expect(v2.configs.get('b')).toBe(v1.configs.get('b'));
    expect(v2.get('b')).toBe(v1.get('b'));
    expect(v2.configs.get('a')).not.toBe(v1.configs.get('a'));
  });
});

describe('immutability', () => {
  test('a committed value is deep-frozen: writing to it, nested objects or nested arrays throws', () => {
    const store = new Store();
    store.commit({ set: [entry('app', { server: { port: 80 }, hosts: [{ name: 'a', tags: ['x'] }] })] });
    const app = store.get('app') as { server: { port: number }; hosts: { name: string; tags: string[] }[] };
    expect(() => {
      app.server.port = 81;
    }).toThrow(TypeError);
    expect(() => app.hosts.push({ name: 'b', tags: [] })).toThrow(TypeError);
    expect(() => {
      (app.hosts[0] as { name: string }).name = 'z';
    }).toThrow(TypeError);
    expect(() => app.hosts[0]?.tags.push('y')).toThrow(TypeError);
    expect(() => {
      delete (app as Partial<typeof app>).server;
    }).toThrow(TypeError);
    expect(store.get('app')).toEqual({ server: { port: 80 }, hosts: [{ name: 'a', tags: ['x'] }] });
  });

  test('a snapshot, its configs map, its entries and a change cannot be modified', () => {
    const store = new Store();
    const change = store.commit({ set: [entry('a', 1)] });
    const snap = store.snapshot();
    const configs = snap.configs as Map<string, unknown>;
    expect(() => configs.set('b', {})).toThrow(TypeError);
    expect(() => configs.delete('a')).toThrow(TypeError);
    expect(() => configs.clear()).toThrow(TypeError);
    expect(() => {
      (snap as { version: number }).version = 9;
    }).toThrow(TypeError);
    expect(() => {
      (snap.configs.get('a') as { value: unknown }).value = 2;
    }).toThrow(TypeError);
    expect(() => (snap.configs.get('a')?.secrets as string[]).push('/x')).toThrow(TypeError);
    expect(() => (change?.changed as string[]).push('x')).toThrow(TypeError);
    expect(() => {
      (change as { version: number }).version = 9;
    }).toThrow(TypeError);
    expect(snap.get('a')).toBe(1);
    expect(snap.configs.size).toBe(1);
  });

  test('a held snapshot never changes after later commits', () => {
    const store = new Store();
    store.commit({ set: [entry('a', { n: 1 }), entry('b', { n: 1 })] });
    const held = store.snapshot();
    store.commit({ set: [entry('a', { n: 2 }), entry('c', { n: 1 })], remove: ['b'] });
    store.commit({ remove: ['a'] });
    expect(held.version).toBe(1);
    expect([...held.configs.keys()]).toEqual(['a', 'b']);
    expect(held.get('a')).toEqual({ n: 1 });
    expect(held.get('b')).toEqual({ n: 1 });
    expect(held.get('c')).toBeUndefined();
  });

  test('the caller cannot change a committed value through the object it passed in', () => {
    const store = new Store();
    const value = { list: [1, 2] };
    store.commit({ set: [entry('a', value)] });
    expect(() => value.list.push(3)).toThrow(TypeError);
    expect(store.get('a')).toEqual({ list: [1, 2] });
  });
});

describe('atomic commit', () => {
  test('every snapshot holds one whole batch: previous and current never mix', () => {
    const store = new Store();
    const snapshots = [store.snapshot()];
    for (let i = 1; i <= 20; i++) {
      const change = store.commit({ set: [entry('a', i), entry('b', i), entry('c', i)] });
      expect(change?.previous).toBe(snapshots.at(-1));
      snapshots.push(store.snapshot());
    }
    snapshots.slice(1).forEach((snap, index) => {
      expect(['a', 'b', 'c'].map((n) => snap.get(n))).toEqual([index + 1, index + 1, index + 1]);
    });
  });

  test('a rejected commit (a name set twice, or set and removed) leaves the store untouched', () => {
    const store = new Store();
    store.commit({ set: [entry('a', 1)] });
    const before = store.snapshot();
    expect(() => store.commit({ set: [entry('b', 1), entry('b', 2)] })).toThrow(
      expect.objectContaining({ code: 'E_OPTIONS' }),
    );
    expect(() => store.commit({ set: [entry('a', 2)], remove: ['a'] })).toThrow(HotconfError);
    expect(store.snapshot()).toBe(before);
    expect(store.get('b')).toBeUndefined();
  });
});

describe('close', () => {
  test('commit after close() throws E_CLOSED; close() is idempotent', async () => {
    const store = new Store();
    await store.close();
    await store.close();
    await store[Symbol.asyncDispose]();
    expect(() => store.commit({ set: [entry('a', 1)] })).toThrow(expect.objectContaining({ code: 'E_CLOSED' }));
    expect(store.version).toBe(0);
  });

  test('`await using` closes the store', async () => {
    let escaped: Store | undefined;
    {
      await using store = new Store();
      escaped = store;
    }
    expect(() => escaped.commit({ set: [entry('a', 1)] })).toThrow(expect.objectContaining({ code: 'E_CLOSED' }));
  });
});

describe('deepFreeze', () => {
  test('freezes a 10,000-deep object and array chain without overflowing the stack', () => {
    const root: { next?: unknown; list: unknown[] } = { list: [] };
    let node = root;
    let list = root.list;
    for (let i = 0; i < 10_000; i++) {
      const child = { list: [] as unknown[] };
      node.next = child;
      node = child;
      const inner: unknown[] = [];
      list.push(inner);
      list = inner;
    }
    deepFreeze(root);
    expect(Object.isFrozen(node)).toBe(true);
    expect(Object.isFrozen(list)).toBe(true);
  });

  test('handles cyclic and shared references', () => {
    const shared = { n: 1 };
    const a: { self?: unknown; x: object; y: object } = { x: shared, y: [shared] };
    a.self = a;
    expect(deepFreeze(a)).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.isFrozen(shared)).toBe(true);
    expect(Object.isFrozen(a.y)).toBe(true);
  });

  test('returns primitives as they are, does not call getters, and tolerates typed arrays', () => {
    expect(deepFreeze(5)).toBe(5);
    expect(deepFreeze(null)).toBe(null);
    let called = false;
    const withGetter = {
      get g() {
        called = true;
        return {};
      },
      bytes: new Uint8Array([1, 2]),
    };
    deepFreeze(withGetter);
    expect(called).toBe(false);
    expect(Object.isFrozen(withGetter)).toBe(true);
  });
});
