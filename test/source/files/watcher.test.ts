import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DirWatcher, type ChangeBatch } from '../../../src/source/files/watcher.js';
import { walkConfigFiles } from '../../../src/load/walk.js';
import { sleep, tempDir, until } from '../../helpers.js';

/** Collects batches from a watcher in the background; `stop()` breaks the loop. */
function collect(w: DirWatcher, onBatch?: (b: ChangeBatch) => Promise<void>) {
  const batches: ChangeBatch[] = [];
  const done = (async () => {
    for await (const b of w) {
      batches.push(b);
      await onBatch?.(b);
    }
  })();
  return { batches, done };
}

const allPaths = (batches: ChangeBatch[]) => new Set(batches.flatMap((b) => [...b.paths]));

describe('DirWatcher', () => {
  it('turns an atomic save into a batch naming the file', async () => {
    await using tmp = await tempDir();
    await tmp.write('app.yaml', 'a: 1\n');
    await using w = await DirWatcher.open({ roots: [tmp.dir], debounceMs: 10, verifyIntervalMs: 0 });
    const { batches } = collect(w);
    await tmp.writeAtomic('app.yaml', 'a: 2\n');
    await until(() => allPaths(batches).has(tmp.file('app.yaml')), 'a batch with app.yaml');
  });

  it('sees every one of three atomic saves 5-15 ms apart (raw directory events), not only the first', async () => {
    await using tmp = await tempDir();
    await tmp.write('app.yaml', 'a: 0\n');
    await using w = await DirWatcher.open({ roots: [tmp.dir], debounceMs: 0, verifyIntervalMs: 0 });
    // A consumer that reads the file on every batch, as hotconf does: with chokidar's events alone the
    // first save's batch reads an early version and nothing follows; the last save must be read too.
    const reads: string[] = [];
    collect(w, async () => {
      reads.push(await readFile(tmp.file('app.yaml'), 'utf8'));
    });
    for (let i = 1; i <= 3; i++) {
      await tmp.writeAtomic('app.yaml', `a: ${i}\n`);
      await sleep(5 + Math.random() * 10);
    }
    await until(() => reads.includes('a: 3\n'), 'a batch that reads the last save');
  });

  it('ignores hidden files and files that are not configs', async () => {
    await using tmp = await tempDir();
    await using w = await DirWatcher.open({ roots: [tmp.dir], debounceMs: 5, verifyIntervalMs: 0 });
    const { batches } = collect(w);
    await tmp.write('.app.yaml.swp', 'x');
    await tmp.write('notes.txt', 'x');
    await tmp.write('real.yaml', 'a: 1\n');
    await until(() => allPaths(batches).has(tmp.file('real.yaml')), 'real.yaml');
    const seen = allPaths(batches);
    expect(seen.has(tmp.file('.app.yaml.swp'))).toBe(false);
    expect(seen.has(tmp.file('notes.txt'))).toBe(false);
  });

  it('puts events that arrive while the consumer works into the next batch', async () => {
    await using tmp = await tempDir();
    await using w = await DirWatcher.open({ roots: [tmp.dir], debounceMs: 5, verifyIntervalMs: 0 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { batches } = collect(w, async (b) => {
      if (b.seq === 1) await gate;
    });
    await tmp.write('a.yaml', 'a: 1\n');
    await until(() => batches.length === 1, 'first batch');
    await tmp.write('b.yaml', 'b: 1\n');
    await tmp.write('c.yaml', 'c: 1\n');
    await sleep(50); // let the events arrive while the consumer is busy
    expect(batches.length).toBe(1);
    release();
    await until(() => allPaths(batches.slice(1)).has(tmp.file('c.yaml')), 'b and c in a later batch');
    expect(allPaths(batches.slice(1)).has(tmp.file('b.yaml'))).toBe(true);
  });

  it('releases a batch during a storm of writes once maxBatchDelayMs has passed', async () => {
    await using tmp = await tempDir();
    await using w = await DirWatcher.open({ roots: [tmp.dir], debounceMs: 100, maxBatchDelayMs: 150, verifyIntervalMs: 0 });
    const { batches } = collect(w);
    const stormEnd = Date.now() + 1500;
    let i = 0;
    while (Date.now() < stormEnd && batches.length === 0) {
      await tmp.write('storm.yaml', `n: ${i++}\n`);
      await sleep(20); // always inside the 100 ms debounce window
    }
    expect(batches.length).toBeGreaterThan(0); // released while the storm still went on
  });

  it('asks for a rescan of the directory when a ConfigMap ..data symlink is swapped', async () => {
    await using tmp = await tempDir();
    await mkdir(tmp.file('..v1'));
    await writeFile(tmp.file('..v1/app.yaml'), 'a: 1\n');
    await symlink('..v1', tmp.file('..data'));
    await symlink('..data/app.yaml', tmp.file('app.yaml'));
    await using w = await DirWatcher.open({ roots: [tmp.dir], debounceMs: 10, verifyIntervalMs: 0 });
    const { batches } = collect(w);
    await mkdir(tmp.file('..v2'));
    await writeFile(tmp.file('..v2/app.yaml'), 'a: 2\n');
    await symlink('..v2', tmp.file('..data_tmp'));
    await rename(tmp.file('..data_tmp'), tmp.file('..data'));
    await rm(tmp.file('..v1'), { recursive: true });
    await until(() => batches.some((b) => b.rescan.has(tmp.dir)), 'a rescan of the ConfigMap directory');
  });

  it('a config deleted and recreated shortly after is one batch that finds it there (a change, not a removal)', async () => {
    await using tmp = await tempDir();
    await tmp.write('app.yaml', 'a: 1\n');
    await using w = await DirWatcher.open({ roots: [tmp.dir], debounceMs: 10, verifyIntervalMs: 0 });
    const found: boolean[] = [];
    collect(w, async (b) => {
      if (b.paths.has(tmp.file('app.yaml'))) found.push(await readFile(tmp.file('app.yaml'), 'utf8').then(() => true, () => false));
    });
    await rm(tmp.file('app.yaml'));
    await sleep(30); // longer than the debounce
    await tmp.write('app.yaml', 'a: 2\n');
    await until(() => found.length > 0, 'a batch naming app.yaml');
    expect(found[0]).toBe(true);
  });

  it('rescan() resolves once the consumer is done with the batch that carried it', async () => {
    await using tmp = await tempDir();
    await using w = await DirWatcher.open({ roots: [tmp.dir], debounceMs: 1000, verifyIntervalMs: 0 });
    let finished = false;
    collect(w, async (b) => {
      await sleep(50);
      if (b.reasons.has('request')) finished = true;
    });
    await w.rescan();
    expect(finished).toBe(true);
  });

  it('breaking out of for-await closes the watcher; rescan() then resolves at once', async () => {
    await using tmp = await tempDir();
    const w = await DirWatcher.open({ roots: [tmp.dir], debounceMs: 5, verifyIntervalMs: 0 });
    const loop = (async () => {
      for await (const _ of w) break;
    })();
    await tmp.write('a.yaml', 'a: 1\n');
    await loop;
    await w.rescan(); // would hang if the watcher were still open with no consumer
    await w.close(); // idempotent
  });

  it('aborting the signal ends iteration', async () => {
    await using tmp = await tempDir();
    const ac = new AbortController();
    const w = await DirWatcher.open({ roots: [tmp.dir], signal: ac.signal, verifyIntervalMs: 0 });
    const loop = (async () => {
      let n = 0;
      for await (const _ of w) n++;
      return n;
    })();
    ac.abort();
    await expect(loop).resolves.toBe(0);
  });

  it('emits verify ticks that rescan every root', async () => {
    await using tmp = await tempDir();
    await using w = await DirWatcher.open({ roots: [tmp.dir], verifyIntervalMs: 50 });
    const { batches } = collect(w);
    await until(() => batches.filter((b) => b.reasons.has('verify')).length >= 2, 'two verify ticks');
    expect(batches.find((b) => b.reasons.has('verify'))!.rescan.has(tmp.dir)).toBe(true);
  });
});

describe('walkConfigFiles', () => {
  it('lists config files recursively, skips hidden entries, follows symlinks and survives loops', async () => {
    await using tmp = await tempDir();
    await tmp.write('app.yaml', '');
    await tmp.write('db/primary.yml', '');
    await tmp.write('x/y/z.json', '');
    await tmp.write('.hidden/secret.yaml', '');
    await tmp.write('.app.yaml.swp', '');
    await tmp.write('readme.txt', '');
    await symlink(tmp.dir, tmp.file('x/loop'));
    const files: string[] = [];
    for await (const f of walkConfigFiles(tmp.dir)) files.push(path.relative(tmp.dir, f));
    expect(files.sort()).toEqual(['app.yaml', 'db/primary.yml', 'x/y/z.json']);
  });

  it('yields nothing for a missing root', async () => {
    const files: string[] = [];
    for await (const f of walkConfigFiles('/nonexistent/hotconf')) files.push(f);
    expect(files).toEqual([]);
  });
});
