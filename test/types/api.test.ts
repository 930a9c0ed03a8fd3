// DESIGN.md "Types": the typed API is a promise too. `npx tsc --noEmit` (which covers test/) is the real check of
// every expectTypeOf and @ts-expect-error below; vitest runs the same file against a real instance on a temp dir,
// so that each typed call is also a call that works.
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  createHotconf,
  type AppCheck,
  type Candidate,
  type Change,
  type ChangeHandler,
  type DeepReadonly,
  type Hotconf,
  type HotconfOptions,
  type Snapshot,
  type SourceText,
  type Unsubscribe,
} from '../../src/index.js';
import { memoryLogger, tempDir, until, type TempDir } from '../helpers.js';

interface App {
  port: number;
  hosts: string[];
  tls: { cert: string };
}
interface Db {
  url: string;
}
/** A type alias, not an interface: the config map must be assignable to Record<string, unknown>. */
type Configs = { app: App; 'db/primary': Db };

const APP_SCHEMA = {
  type: 'object',
  required: ['port', 'hosts', 'tls'],
  properties: {
    port: { type: 'integer' },
    hosts: { type: 'array', items: { type: 'string' } },
    tls: { type: 'object', required: ['cert'], properties: { cert: { type: 'string' } } },
  },
};
const DB_SCHEMA = { type: 'object', required: ['url'], properties: { url: { type: 'string' } } };

const appYaml = (port: number) => `port: ${port}\nhosts: [a, b]\ntls: { cert: c.pem }\n`;

/** A config dir with app and db/primary and their schemas, and a hotconf on it (typed as the caller asks). */
async function world(): Promise<TempDir & { options: HotconfOptions }> {
  const tmp = await tempDir();
  await tmp.write('config/app.yaml', appYaml(1));
  await tmp.write('config/db/primary.yaml', 'url: postgres://db\n');
  await tmp.write('schemas/app.schema.json', JSON.stringify(APP_SCHEMA));
  await tmp.write('schemas/db/primary.schema.json', JSON.stringify(DB_SCHEMA));
  const { logger } = await memoryLogger('warn');
  return Object.assign(tmp, {
    options: { configDir: tmp.file('config'), schemaDir: tmp.file('schemas'), debounceMs: 10, logger },
  });
}

describe('a typed hotconf (createHotconf<{ app: App; "db/primary": Db }>)', () => {
  it('get() is DeepReadonly<T[name]> | undefined, and only declared names and properties compile', async () => {
    await using w = await world();
    await using hot = await createHotconf<Configs>(w.options);

    expectTypeOf(hot).toEqualTypeOf<Hotconf<Configs>>();
    expectTypeOf(hot.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
    expectTypeOf(hot.get('db/primary')).toEqualTypeOf<DeepReadonly<Db> | undefined>();
    // DeepReadonly spelled out, once: every level is read-only.
    expectTypeOf(hot.get('app')).toEqualTypeOf<
      { readonly port: number; readonly hosts: readonly string[]; readonly tls: { readonly cert: string } } | undefined
    >();
    expectTypeOf(hot.snapshot()).toEqualTypeOf<Snapshot<Configs>>();
    expectTypeOf(hot.snapshot().get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();

    expect(hot.get('app')?.port).toBe(1);
    expect(hot.get('db/primary')?.url).toBe('postgres://db');
    expect(hot.snapshot().get('app')?.tls.cert).toBe('c.pem');
    // @ts-expect-error: App has no property `nope`
    expect(hot.get('app')?.nope).toBeUndefined();
    // @ts-expect-error: `nope` is not a declared config name
    expect(hot.get('nope')).toBeUndefined();
    // @ts-expect-error: nor on a snapshot
    expect(hot.snapshot().get('nope')).toBeUndefined();
  });

  it('values are read-only in the types as they are frozen at run time', async () => {
    await using w = await world();
    await using hot = await createHotconf<Configs>(w.options);
    const app = hot.get('app');
    if (app === undefined) throw new Error('app is loaded at start');

    expect(() => {
      // @ts-expect-error: port is read-only
      app.port = 2;
    }).toThrow(TypeError);
    expect(() => {
      // @ts-expect-error: nested objects are read-only too
      app.tls.cert = 'other.pem';
    }).toThrow(TypeError);
    expect(() => {
      // @ts-expect-error: arrays are ReadonlyArray
      app.hosts[0] = 'c';
    }).toThrow(TypeError);
    expect(hot.get('app')).toEqual({ port: 1, hosts: ['a', 'b'], tls: { cert: 'c.pem' } });
  });

  it('every onConfigChange overload hands its handler a Change<T>, and returns a disposable Unsubscribe', async () => {
    await using w = await world();
    await using hot = await createHotconf<Configs>(w.options);
    const seen = { all: [] as number[], one: [] as number[], several: [] as number[], selector: [] as number[] };

    const handler =
      (into: number[]): ChangeHandler<Configs> =>
      (change) => {
        expectTypeOf(change).toEqualTypeOf<Change<Configs>>();
        expectTypeOf(change.current.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
        expectTypeOf(change.previous.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
        expectTypeOf(change.current.get('db/primary')).toEqualTypeOf<DeepReadonly<Db> | undefined>();
        // @ts-expect-error: not a declared name, on a change's snapshot either
        change.current.get('nope');
        into.push(change.current.get('app')?.port ?? 0);
      };

    // Inline handlers too: contextual typing through each overload, not only an annotated ChangeHandler<T>.
    using all = hot.onConfigChange((change) => {
      expectTypeOf(change.current.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
      expectTypeOf(change.previous.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
      seen.all.push(change.current.get('app')?.port ?? 0);
    });
    using one = hot.onConfigChange('app', (change) => {
      expectTypeOf(change.current.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
      expectTypeOf(change.previous.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
      seen.one.push(change.current.get('app')?.port ?? 0);
    });
    using several = hot.onConfigChange(['app', 'db/primary'], handler(seen.several));
    using selector = hot.onConfigChange(
      (snapshot) => {
        expectTypeOf(snapshot).toEqualTypeOf<Snapshot<Configs>>();
        return snapshot.get('app')?.port;
      },
      (change) => {
        expectTypeOf(change.current.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
        seen.selector.push(change.current.get('app')?.port ?? 0);
      },
    );
    for (const off of [all, one, several, selector]) {
      expectTypeOf(off).toEqualTypeOf<Unsubscribe>();
      expectTypeOf(off).toBeCallableWith();
      expectTypeOf(off).toExtend<Disposable>();
    }
    // @ts-expect-error: only declared names subscribe by name
    hot.onConfigChange('nope', () => undefined)();
    // @ts-expect-error: in a list as well
    hot.onConfigChange(['app', 'nope'], () => undefined)();

    await w.writeAtomic('config/app.yaml', appYaml(2));
    await until(
      () => [seen.all, seen.one, seen.several, seen.selector].every((ports) => ports.at(-1) === 2),
      'every overload saw port 2',
    );
    expect(seen).toEqual({ all: [2], one: [2], several: [2], selector: [2] });
  });

  it('changes() yields Change<T> and is AsyncDisposable', async () => {
    await using w = await world();
    await using hot = await createHotconf<Configs>(w.options);
    await using changes = hot.changes();
    expectTypeOf(changes).toEqualTypeOf<AsyncIterableIterator<Change<Configs>> & AsyncDisposable>();
    expectTypeOf(changes).toExtend<AsyncDisposable>();
    expectTypeOf(changes).toExtend<AsyncIterable<Change<Configs>>>();

    await w.writeAtomic('config/app.yaml', appYaml(3));
    let port: number | undefined;
    for await (const c of changes) {
      expectTypeOf(c).toEqualTypeOf<Change<Configs>>();
      expectTypeOf(c.current.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
      expectTypeOf(c.previous.get('app')).toEqualTypeOf<DeepReadonly<App> | undefined>();
      port = c.current.get('app')?.port;
      break;
    }
    expect(port).toBe(3);
  });

  it('a typed instance, snapshot and change still go where the untyped ones are expected (the shells)', async () => {
    await using w = await world();
    await using hot = await createHotconf<Configs>(w.options);
    // startHttpServer, HotconfMetrics and startPublisher take a plain Hotconf.
    expectTypeOf(hot).toExtend<Hotconf>();
    expectTypeOf(hot.snapshot()).toExtend<Snapshot>();
    expectTypeOf<Change<Configs>>().toExtend<Change>();
    const plain: Hotconf = hot;
    expect(plain.get('app')).toBe(hot.get('app'));
    // A handler written for untyped changes still subscribes to a typed instance.
    const untyped: ChangeHandler = () => undefined;
    hot.onConfigChange(untyped)();
    hot.onConfigChange('app', untyped)();
  });
});

describe('an untyped hotconf (createHotconf without a type argument)', () => {
  it('values are unknown: any name compiles, nothing is any, and a value must be narrowed before use', async () => {
    await using w = await world();
    await using hot = await createHotconf(w.options);

    expectTypeOf(hot).toEqualTypeOf<Hotconf>();
    expectTypeOf(hot.get('app')).not.toBeAny();
    expectTypeOf(hot.get('app')).toBeUnknown();
    expectTypeOf(hot.snapshot()).toEqualTypeOf<Snapshot>();
    expectTypeOf(hot.snapshot().get('x')).not.toBeAny();
    expectTypeOf(hot.snapshot().get('x')).toBeUnknown();
    expect(hot.get('x')).toBeUndefined();
    // @ts-expect-error: unknown must be narrowed before a property is read
    expect(hot.get('app').port).toBe(1);

    using _off = hot.onConfigChange('anything', (change) => {
      expectTypeOf(change).toEqualTypeOf<Change>();
      expectTypeOf(change.current.get('app')).not.toBeAny();
      expectTypeOf(change.current.get('app')).toBeUnknown();
    });
    await using changes = hot.changes();
    expectTypeOf(changes).toEqualTypeOf<AsyncIterableIterator<Change> & AsyncDisposable>();
  });
});

describe('the check hook (option `check`)', () => {
  it('gets the candidate, whose values are unknown; it returns nothing, a list of problems, or a promise of either', async () => {
    await using w = await world();
    const seen: string[][] = [];
    await using hot = await createHotconf({
      ...w.options,
      check: async (candidate) => {
        expectTypeOf(candidate).toEqualTypeOf<Candidate>();
        expectTypeOf(candidate.get('app')).toBeUnknown();
        expectTypeOf(candidate.configs.get('app')!.source).toEqualTypeOf<SourceText | undefined>();
        seen.push([...candidate.changed]);
        await Promise.resolve();
        return candidate.configs.size > 5 ? ['too many configs'] : undefined;
      },
    });
    expect(seen).toEqual([['app', 'db/primary']]);
    expect(hot.snapshot().configs.get('app')!.source?.file).toBe('app.yaml');
    const sync: HotconfOptions['check'] = () => undefined;
    const list: HotconfOptions['check'] = () => ['a problem'];
    expectTypeOf(sync).toEqualTypeOf<AppCheck>();
    expectTypeOf(list).toEqualTypeOf<AppCheck>();
    // @ts-expect-error: a problem list holds strings
    const wrong: HotconfOptions['check'] = () => [1];
    expect(wrong).toBeTypeOf('function');
  });
});
