// DESIGN.md points 2 and 3: a batch commits atomically as one version; all-or-nothing versus per-file.
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../src/index.js';
import { until } from '../helpers.js';
import { start, world } from './fixtures.js';

describe('atomic, versioned commits (point 2)', () => {
  it('a ConfigMap ..data swap of 3 files is exactly one version, seen whole', async () => {
    await using w = await world();
    for (const n of ['a', 'b', 'c']) await w.schema(n);
    const dir = w.configDir;
    await mkdir(`${dir}/..v1`);
    for (const n of ['a', 'b', 'c']) await writeFile(`${dir}/..v1/${n}.yaml`, 'port: 1\n');
    await symlink('..v1', `${dir}/..data`);
    for (const n of ['a', 'b', 'c']) await symlink(`..data/${n}.yaml`, `${dir}/${n}.yaml`);
    await using hot = await start(w);
    const v0 = hot.version;
    const seen: Change[] = [];
    hot.onConfigChange((c) => {
      seen.push(c);
    });

    await mkdir(`${dir}/..v2`);
    for (const n of ['a', 'b', 'c']) await writeFile(`${dir}/..v2/${n}.yaml`, 'port: 2\n');
    await symlink('..v2', `${dir}/..data_tmp`);
    await rename(`${dir}/..data_tmp`, `${dir}/..data`);
    await rm(`${dir}/..v1`, { recursive: true });

    await until(() => seen.length > 0 && seen.at(-1)!.current.get('c') !== undefined, 'a change');
    // a full re-read finds nothing new: the swap was one version, not one per file
    await hot.reload();
    expect(hot.version).toBe(v0 + 1);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.changed).toEqual(['a', 'b', 'c']);
    for (const n of ['a', 'b', 'c']) expect(seen[0]!.current.get(n)).toEqual({ port: 2 });
    for (const n of ['a', 'b', 'c']) expect(seen[0]!.previous.get(n)).toEqual({ port: 1 });
  });

  it('a write with the same content commits nothing and notifies no one', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 80\n');
    await using hot = await start(w);
    let calls = 0;
    hot.onConfigChange(() => {
      calls++;
    });
    const v = hot.version;
    await w.configAtomic('svc.yaml', '# reformatted\nport:   80\n');
    await hot.reload();
    expect(hot.version).toBe(v);
    expect(calls).toBe(0);
  });

  it('versions strictly increase, one per committed batch', async () => {
    await using w = await world();
    await w.schema('svc');
    await w.config('svc.yaml', 'port: 1\n');
    await using hot = await start(w);
    const versions: number[] = [];
    hot.onConfigChange((c) => {
      versions.push(c.version);
    });
    for (let i = 2; i <= 6; i++) {
      await w.configAtomic('svc.yaml', `port: ${i}\n`);
      await until(() => (hot.get('svc') as { port: number }).port === i, `port ${i}`);
    }
    await until(() => versions.at(-1) === hot.version, 'last version delivered');
    for (let i = 1; i < versions.length; i++) expect(versions[i]!).toBeGreaterThan(versions[i - 1]!);
  });
});

describe('batch policy (point 3)', () => {
  it('all-or-nothing: one bad file holds back the whole batch, which applies once the disk is valid', async () => {
    await using w = await world();
    await w.schema('a');
    await w.schema('b');
    await w.config('a.yaml', 'port: 1\n');
    await w.config('b.yaml', 'port: 1\n');
    // a long debounce so that both writes surely fall into one batch
    await using hot = await start(w, { debounceMs: 300 });
    const v = hot.version;
    // one batch: both files change within the debounce window; a is valid, b is not
    await hot.reload(); // settle
    await Promise.all([w.configAtomic('a.yaml', 'port: 2\n'), w.configAtomic('b.yaml', 'port: nope\n')]);
    await until(() => hot.status().configs.find((c) => c.name === 'b')?.state === 'error', 'b rejected');
    expect(hot.get('a')).toEqual({ port: 1 });
    expect(hot.version).toBe(v);
    expect(hot.status().configs.find((c) => c.name === 'a')?.state).toBe('pending');

    await w.configAtomic('b.yaml', 'port: 3\n');
    await until(() => (hot.get('b') as { port: number }).port === 3, 'b applied');
    expect(hot.get('a')).toEqual({ port: 2 }); // the held-back file caught up in the same version
    expect(hot.version).toBe(v + 1);
  });

  it('per-file: the valid files of a batch apply, the invalid keep their last good value', async () => {
    await using w = await world();
    await w.schema('a');
    await w.schema('b');
    await w.config('a.yaml', 'port: 1\n');
    await w.config('b.yaml', 'port: 1\n');
    await using hot = await start(w, { batchPolicy: 'per-file' });
    await Promise.all([w.configAtomic('a.yaml', 'port: 2\n'), w.configAtomic('b.yaml', 'port: nope\n')]);
    await until(() => (hot.get('a') as { port: number }).port === 2, 'a applied');
    await until(() => hot.status().configs.find((c) => c.name === 'b')?.state === 'error', 'b rejected');
    expect(hot.get('b')).toEqual({ port: 1 });
  });
});
