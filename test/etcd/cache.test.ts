// The cached release (cacheDir): written atomically and owner-only, read back whole or refused with what is wrong.
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { cacheFileOf, readCache, writeCache } from '../../src/source/etcd/cache.js';
import { sha256 } from '../../src/source/etcd/layout.js';
import { tempDir } from '../helpers.js';

const release = (texts: Record<string, string>) => {
  const entries = new Map(Object.entries(texts).map(([k, t]) => [k, { sha: sha256(t), size: Buffer.byteLength(t) }]));
  const blobs = new Map(Object.values(texts).map((t) => [sha256(t), Buffer.from(t)]));
  return { prefix: '/p/', release: 7, revision: '42', entries, blobs };
};

test('a cached release reads back as written; the file is 0600 in a 0700 directory, with no temporary file left', async () => {
  await using tmp = await tempDir();
  const dir = path.join(tmp.dir, 'state');
  const file = await writeCache(dir, release({ 'app.yaml': 'port: 1\n', 'db/primary.json': '{"password": "s3cret"}' }));
  expect(file).toBe(cacheFileOf(dir, '/p/'));
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  expect((await stat(dir)).mode & 0o777).toBe(0o700);
  expect(await readdir(dir)).toEqual([path.basename(file)]);
  const back = await readCache(dir, '/p/');
  expect(back).toMatchObject({ prefix: '/p/', release: 7, revision: '42' });
  expect(Object.fromEntries([...back!.entries].map(([k, e]) => [k, Buffer.from(back!.blobs.get(e.sha)!).toString()]))).toEqual({
    'app.yaml': 'port: 1\n',
    'db/primary.json': '{"password": "s3cret"}',
  });
  // Another prefix has no cache.
  expect(await readCache(dir, '/other/')).toBeUndefined();
});

test('a damaged cache file is refused with what is wrong: a changed byte, a truncation, a foreign header', async () => {
  await using tmp = await tempDir();
  const file = await writeCache(tmp.dir, release({ 'app.yaml': 'port: 1\n' }));
  const good = await readFile(file);
  await writeFile(file, Buffer.concat([good.subarray(0, good.length - 2), Buffer.from('2\n')]));
  await expect(readCache(tmp.dir, '/p/')).rejects.toThrow(`cache file ${file} is damaged: app.yaml does not match its sha-256`);
  await writeFile(file, good.subarray(0, good.length - 3));
  await expect(readCache(tmp.dir, '/p/')).rejects.toThrow('is damaged: truncated at app.yaml');
  await writeFile(file, 'not json\n');
  await expect(readCache(tmp.dir, '/p/')).rejects.toThrow('is damaged: header is not JSON');
});
