// snapshot().configs shares its entries between versions (a commit costs what it changes): whatever the
// sequence of commits, each snapshot's configs read exactly as a plain Map built the same way would, in the
// same order, and an older snapshot never sees a later commit.
import { inspect } from 'node:util';
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { Store, type EntryInput } from '../../src/store/index.js';

const entry = (name: string, v: number): EntryInput => ({ name, value: { v }, hash: `${name}:${v}`, path: `config/${name}.yaml` });

/** What a Map reads as, through the whole read interface, compared with a model Map of name → v. */
function readsAs(configs: ReadonlyMap<string, { value: unknown }>, model: Map<string, number>): void {
  const expected = [...model].map(([name, v]) => [name, { v }]);
  expect([...configs].map(([name, e]) => [name, e.value])).toEqual(expected);
  expect([...configs.entries()].map(([name]) => name)).toEqual([...model.keys()]);
  expect([...configs.keys()]).toEqual([...model.keys()]);
  expect([...configs.values()].map((e) => e.value)).toEqual([...model.values()].map((v) => ({ v })));
  const seen: string[] = [];
  configs.forEach((e, name, map) => {
    expect(map).toBe(configs);
    expect(e.value).toEqual({ v: model.get(name) });
    seen.push(name);
  });
  expect(seen).toEqual([...model.keys()]);
  expect(configs.size).toBe(model.size);
  for (const name of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'zz']) {
    expect(configs.has(name)).toBe(model.has(name));
    expect(configs.get(name)?.value).toEqual(model.has(name) ? { v: model.get(name) } : undefined);
  }
}

// 48 names: enough for the changes since the shared base to outgrow it and be folded into a new one (> 32).
const NAMES = [...'abcdefgh', ...Array.from({ length: 40 }, (_, i) => `n${i}`)];

test('every snapshot reads as a plain Map built by the same sets and deletes, older snapshots unchanged', () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), names: fc.uniqueArray(fc.constantFrom(...NAMES), { maxLength: 12 }), v: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ kind: fc.constant('remove' as const), names: fc.uniqueArray(fc.constantFrom(...NAMES), { maxLength: 6 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      const store = new Store();
      const model = new Map<string, number>();
      const history: Array<[ReadonlyMap<string, { value: unknown }>, Map<string, number>]> = [];
      for (const o of ops) {
        if (o.kind === 'set') {
          store.commit({ set: o.names.map((n) => entry(n, o.v)) });
          for (const n of o.names) model.set(n, o.v);
        } else {
          store.commit({ remove: o.names });
          for (const n of o.names) model.delete(n);
        }
        readsAs(store.snapshot().configs, model);
        history.push([store.snapshot().configs, new Map(model)]);
      }
      for (const [configs, then] of history) readsAs(configs, then);
    }),
    { numRuns: 300 },
  );
});

test('at 10,000 configs, many one-config commits later, every name reads right and in Map order', () => {
  const store = new Store();
  const model = new Map<string, number>();
  store.commit({ set: Array.from({ length: 10_000 }, (_, i) => entry(`c${i}`, 0)) });
  for (let i = 0; i < 10_000; i++) model.set(`c${i}`, 0);
  const first = store.snapshot().configs;
  for (let k = 1; k <= 500; k++) {
    const name = `c${(k * 7919) % 10_000}`;
    if (k % 5 === 0) {
      store.commit({ remove: [name] });
      model.delete(name);
    } else {
      store.commit({ set: [entry(name, k)] });
      model.set(name, k);
    }
  }
  const configs = store.snapshot().configs;
  expect(configs.size).toBe(model.size);
  expect([...configs.keys()]).toEqual([...model.keys()]);
  for (const [name, v] of model) expect(configs.get(name)?.value).toEqual({ v });
  expect(first.size).toBe(10_000);
  expect([...first.values()].every((e) => (e.value as { v: number }).v === 0)).toBe(true);
});

test('configs is a Map that refuses changes, and util.inspect shows its entries', () => {
  const store = new Store();
  store.commit({ set: [entry('app', 1), entry('db', 2)] });
  const configs = store.snapshot().configs as Map<string, unknown>;
  expect(configs).toBeInstanceOf(Map);
  expect(() => configs.set('x', {})).toThrow(TypeError);
  expect(() => configs.delete('app')).toThrow(TypeError);
  expect(() => configs.clear()).toThrow(TypeError);
  expect(Object.isFrozen(configs)).toBe(true);
  expect(new Map(configs).size).toBe(2);
  const shown = inspect(configs, { depth: 0 });
  expect(shown).toMatch(/^Map\(2\) \{/);
  expect(shown).toContain("'app' =>");
  expect(shown).toContain("'db' =>");
});
