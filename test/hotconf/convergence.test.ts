// DESIGN.md points 4 and 5: nothing is lost, the store converges on the disk, for every kind of writer.
import { mkdir, open, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../src/index.js';
import { sleep, tempDir, until, type TempDir } from '../helpers.js';
import { start, world, type World } from './fixtures.js';

const port = (v: unknown) => (v as { port: number } | undefined)?.port;

describe('the store converges on the disk (point 4)', () => {
  for (const debounceMs of [0, 25]) {
    it(`three atomic saves 5-15 ms apart end on the last save, 10 rounds out of 10 (debounceMs ${debounceMs})`, async () => {
      await using w = await world();
      await w.schema('svc');
      await w.config('svc.yaml', 'port: 1\n');
      // the verify sweep is off: the watcher itself must not hold a stale first save
      await using hot = await start(w, { debounceMs, verifyIntervalMs: 0 });
      let n = 1;
      for (let round = 0; round < 10; round++) {
        for (let i = 0; i < 3; i++) {
          await w.configAtomic('svc.yaml', `port: ${++n}\n`);
          await sleep(5 + Math.random() * 10);
        }
        const want = n;
        await until(() => port(hot.get('svc')) === want, `round ${round}: port ${want}`, { timeoutMs: 5000 });
      }
    });
  }

  it('a burst of writes over many files loses no update', async () => {
    await using w = await world();
    const files = 20;
    for (let f = 0; f < files; f++) {
      await w.schema(`f${f}`);
      await w.config(`f${f}.yaml`, 'port: 1\n');
    }
    await using hot = await start(w, { debounceMs: 5 });
    const last = new Map<number, number>();
    for (let i = 2; i <= 30; i++) {
      const f = Math.floor(Math.random() * files);
      last.set(f, i);
      if (i % 2 === 0) await w.configAtomic(`f${f}.yaml`, `port: ${i}\n`);
      else await w.config(`f${f}.yaml`, `port: ${i}\n`);
    }
    await until(() => [...last].every(([f, v]) => port(hot.get(`f${f}`)) === v), 'every file on its last write');
  });

  it('subscribers see versions in increasing order and end on the store’s version after a burst', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    await using hot = await start(w, { debounceMs: 0 });
    const seen: number[] = [];
    hot.onConfigChange(async (c) => {
      seen.push(c.version);
      await sleep(Math.random() * 20); // a slow subscriber gets coalesced changes
    });
    for (let i = 2; i <= 40; i++) await w.configAtomic('svc.yaml', `port: ${i}\n`);
    await until(() => port(hot.get('svc')) === 40, 'last write');
    await until(() => seen.at(-1) === hot.version, 'subscriber on the last version');
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(new Set(seen).size).toBe(seen.length);
  });

  /**
   * A config that is a symlink to a symlink outside every watched directory. `repoint()` re-points that outer
   * link: it touches neither a watched directory nor the file being watched, so no event reaches hotconf.
   */
  async function invisible(w: World, outside: TempDir) {
    await w.schema('svc');
    await outside.write('real1.yaml', 'port: 1\n');
    await outside.write('real2.yaml', 'port: 2\n');
    await symlink(outside.file('real1.yaml'), outside.file('link.yaml'));
    await symlink(outside.file('link.yaml'), path.join(w.configDir, 'svc.yaml'));
    return async function repoint() {
      await symlink(outside.file('real2.yaml'), outside.file('link.tmp'));
      await rename(outside.file('link.tmp'), outside.file('link.yaml'));
    };
  }

  it('the verify sweep catches a change the watcher cannot see', async () => {
    await using w = await world();
    await using outside = await tempDir();
    const repoint = await invisible(w, outside);
    await using hot = await start(w, { verifyIntervalMs: 100, followExternalLinks: true }); // the link points outside on purpose
    await repoint();
    await until(() => port(hot.get('svc')) === 2, 'the new target, found by the sweep', { timeoutMs: 5000 });
  });

  it('reload() picks up a change made without any event reaching hotconf', async () => {
    await using w = await world();
    await using outside = await tempDir();
    const repoint = await invisible(w, outside);
    await using hot = await start(w, { verifyIntervalMs: 0, followExternalLinks: true }); // the link points outside on purpose
    await repoint();
    const result = await hot.reload();
    expect(port(hot.get('svc'))).toBe(2);
    expect(result).toEqual({ version: hot.version, errors: [] });
  });
});

describe('every kind of writer (point 5)', () => {
  it('an in-place write in chunks, with pauses shorter than the debounce, applies the whole file', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    await using hot = await start(w, { debounceMs: 100, batchPolicy: 'per-file' });
    const seen: unknown[] = [];
    hot.onConfigChange((c) => {
      seen.push(c.current.get('svc'));
    });
    const fh = await open(path.join(w.configDir, 'svc.yaml'), 'w');
    for (const chunk of ['host: ', 'exam', 'ple.org\n', 'port: 4', '43\n']) {
      await fh.write(chunk);
      await sleep(15);
    }
    await fh.close();
    await until(() => port(hot.get('svc')) === 443, 'the complete file');
    expect(seen).toEqual([{ host: 'example.org', port: 443 }]);
  });

  it('a deleted config is removed and subscribers are told', async () => {
    await using w = await world();
    await w.schema('a');
    await w.schema('b');
    await w.config('a.yaml', 'port: 1\n');
    await w.config('b.yaml', 'port: 1\n');
    await using hot = await start(w);
    const changes: Change[] = [];
    hot.onConfigChange((c) => {
      changes.push(c);
    });
    await unlink(path.join(w.configDir, 'b.yaml'));
    await until(() => changes.some((c) => c.removed.includes('b')), 'removal delivered');
    expect(hot.get('b')).toBeUndefined();
    expect(hot.get('a')).toEqual({ port: 1 });
  });

  it('keepOnDelete keeps the last value of a deleted config and says so in status', async () => {
    await using w = await world();
    await w.schema('a');
    await w.config('a.yaml', 'port: 1\n');
    await using hot = await start(w, { keepOnDelete: true });
    await unlink(path.join(w.configDir, 'a.yaml'));
    await until(() => hot.status().configs[0]?.state === 'deleted', 'deleted state');
    expect(hot.get('a')).toEqual({ port: 1 });
  });

  it('delete then recreate inside the debounce window is a change, not a removal', async () => {
    await using w = await world();
    await w.schema('a');
    await w.config('a.yaml', 'port: 1\n');
    await using hot = await start(w, { debounceMs: 200 });
    const changes: Change[] = [];
    hot.onConfigChange((c) => {
      changes.push(c);
    });
    await unlink(path.join(w.configDir, 'a.yaml'));
    await w.config('a.yaml', 'port: 2\n');
    await until(() => port(hot.get('a')) === 2, 'new value');
    expect(changes.flatMap((c) => c.removed)).toEqual([]);
    expect(changes).toHaveLength(1);
  });

  it('a recreated file after a delete is applied again', async () => {
    await using w = await world();
    await w.schema('a');
    await w.config('a.yaml', 'port: 1\n');
    await using hot = await start(w);
    await unlink(path.join(w.configDir, 'a.yaml'));
    await until(() => hot.get('a') === undefined, 'removed');
    await w.configAtomic('a.yaml', 'port: 5\n');
    await until(() => port(hot.get('a')) === 5, 'recreated');
  });

  it('a new file and a new subdirectory are picked up', async () => {
    await using w = await world();
    await w.schema('db/replica');
    await using hot = await start(w);
    await mkdir(path.join(w.configDir, 'db'));
    await writeFile(path.join(w.configDir, 'db', 'replica.yaml'), 'port: 6\n');
    await until(() => port(hot.get('db/replica')) === 6, 'db/replica');
  });

  it('a config directory deleted and recreated is watched again', async () => {
    await using w = await world();
    await w.schema('a');
    await w.config('a.yaml', 'port: 1\n');
    await using hot = await start(w, { verifyIntervalMs: 0 });
    await rm(w.configDir, { recursive: true });
    await until(() => hot.get('a') === undefined, 'removed with its directory');
    await w.config('a.yaml', 'port: 2\n');
    await until(() => port(hot.get('a')) === 2, 'back');
    await w.configAtomic('a.yaml', 'port: 3\n');
    await until(() => port(hot.get('a')) === 3, 'and changes are seen again');
  });

  it('a directory renamed into the config dir brings its configs', async () => {
    await using w = await world();
    await w.schema('team/x');
    await using hot = await start(w);
    await w.tmp.write('staging/x.yaml', 'port: 7\n');
    await rename(w.tmp.file('staging'), path.join(w.configDir, 'team'));
    await until(() => port(hot.get('team/x')) === 7, 'team/x');
  });
});
