// Publishing validated configs into a directory, ConfigMap style: one `..data` swap per version, so that an
// application reading files sees one whole version or the next, and only ever validated values.
import { lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startPublisher } from '../../src/publish/index.js';
import { Store } from '../../src/store/index.js';
import { memoryLogger, tempDir, until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { APP_SCHEMA, readJson, recorder } from './fixtures.js';

const SECRET = 'pa55-s3cr3t-for-publish';

describe('publish into a directory', () => {
  it('publishes the initial snapshot at once: validated values with defaults, behind ..data links', async () => {
    await using w = await world();
    await w.schema('app', APP_SCHEMA);
    await w.config('app.yaml', 'port: 8080\n');
    await using hot = await start(w, { useDefaults: true });
    const out = w.tmp.file('out');
    await using _pub = await startPublisher(hot, { publish: { dir: out } });

    expect(await readJson(path.join(out, 'app.json'))).toEqual({ port: 8080, host: 'localhost' });
    expect(await readlink(path.join(out, 'app.json'))).toBe('..data/app.json');
    expect(await readlink(path.join(out, '..data'))).toMatch(/^\.\.v1-[0-9a-f]+$/);
  });

  it('publishes each new version; a nested name lives under its top-level link; a removed config disappears', async () => {
    await using w = await world();
    await w.schema('app', APP_SCHEMA);
    await w.schema('db/primary', APP_SCHEMA);
    await w.config('app.yaml', 'port: 1\nn: 1\n');
    await w.config('db/primary.yaml', 'port: 5432\n');
    await using hot = await start(w, { useDefaults: true });
    const out = w.tmp.file('out');
    await using pub = await startPublisher(hot, { publish: { dir: out } });
    expect(await readlink(path.join(out, 'db'))).toBe('..data/db');
    expect(await readJson(path.join(out, 'db', 'primary.json'))).toEqual({ port: 5432, host: 'localhost' });

    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => (hot.get('app') as { n: number } | undefined)?.n === 2, 'n=2 committed');
    await pub.idle();
    expect(await readJson(path.join(out, 'app.json'))).toEqual({ port: 1, n: 2, host: 'localhost' });

    await rm(w.tmp.file('config/app.yaml'));
    await until(() => hot.get('app') === undefined, 'app removed');
    await pub.idle();
    await expect(lstat(path.join(out, 'app.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readJson(path.join(out, 'db', 'primary.json'))).toMatchObject({ port: 5432 });
  });

  it("format 'original': YAML sources as .yaml, JSON sources as .json, both the validated value", async () => {
    await using w = await world();
    await w.schema('app', APP_SCHEMA);
    await w.schema('feat', APP_SCHEMA);
    await w.schema('db/primary', APP_SCHEMA);
    await w.config('app.yaml', 'port: 1 # a comment that is not published\n');
    await w.config('feat.json', '{"port": 2}');
    await w.config('db/primary.yml', 'port: 3\n');
    await using hot = await start(w, { useDefaults: true });
    const out = w.tmp.file('out');
    await using _pub = await startPublisher(hot, { publish: { dir: out, format: 'original' } });

    expect(parseYaml(await readFile(path.join(out, 'app.yaml'), 'utf8'))).toEqual({ port: 1, host: 'localhost' });
    expect(await readFile(path.join(out, 'app.yaml'), 'utf8')).not.toContain('comment');
    expect(await readJson(path.join(out, 'feat.json'))).toEqual({ port: 2, host: 'localhost' });
    expect(parseYaml(await readFile(path.join(out, 'db', 'primary.yaml'), 'utf8'))).toEqual({ port: 3, host: 'localhost' });
    expect((await readdir(out)).filter((e) => !e.startsWith('..')).sort()).toEqual(['app.yaml', 'db', 'feat.json']);
  });

  it('redactSecrets publishes [REDACTED] instead of secret values; by default the app gets them', async () => {
    await using w = await world();
    await w.schema('app', APP_SCHEMA);
    await w.config('app.yaml', `port: 1\npassword: ${SECRET}\n`);
    await using hot = await start(w);
    await using _redacted = await startPublisher(hot, { publish: { dir: w.tmp.file('redacted'), redactSecrets: true } });
    await using _plain = await startPublisher(hot, { publish: { dir: w.tmp.file('plain') } });

    const redacted = await readFile(w.tmp.file('redacted/app.json'), 'utf8');
    expect(redacted).toContain('[REDACTED]');
    expect(redacted).not.toContain(SECRET);
    expect(await readJson(w.tmp.file('plain/app.json'))).toMatchObject({ password: SECRET });
  });

  it('a reader never sees a mix of versions, through one ..data resolution or through the public links', async () => {
    await using tmp = await tempDir();
    const dir = tmp.file('out');
    // Driven through the store itself so that a and b are exactly one commit each time (a ConfigMap-like batch).
    const store = new Store();
    const commit = (n: number) =>
      store.commit({ set: ['a', 'b'].map((name) => ({ name, value: { n }, hash: `${name}${n}`, path: `/src/${name}.json` })) });
    commit(0);
    await using pub = await startPublisher(store, { publish: { dir, keepVersions: 2 } });

    let stop = false;
    const mixes: string[] = [];
    const read = async (file: string) => (JSON.parse(await readFile(file, 'utf8')) as { n: number }).n;
    const throughOneResolution = async () => {
      const seen = new Set<string>();
      while (!stop) {
        const target = await readlink(path.join(dir, '..data'));
        try {
          const [a, b] = [await read(path.join(dir, target, 'a.json')), await read(path.join(dir, target, 'b.json'))];
          if (a !== b) mixes.push(`${target}: a=${a} b=${b}`);
          seen.add(target);
        } catch (err) {
          // An old version pruned under a slow reader is gone as a whole; never half there.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      return seen.size;
    };
    const throughPublicLinks = async () => {
      let compared = 0;
      while (!stop) {
        const before = await readlink(path.join(dir, '..data'));
        const [a, b] = [await read(path.join(dir, 'a.json')), await read(path.join(dir, 'b.json'))];
        // Version dirs are never reused, so an equal target before and after means no swap in between.
        if ((await readlink(path.join(dir, '..data'))) !== before) continue;
        compared++;
        if (a !== b) mixes.push(`links ${before}: a=${a} b=${b}`);
      }
      return compared;
    };
    const readers = Promise.all([throughOneResolution(), throughPublicLinks(), throughPublicLinks()]);

    for (let n = 1; n <= 50; n++) {
      commit(n);
      // Half of the versions land while the publisher is busy (coalesced), half are published one by one.
      if (n % 2 === 0) await pub.idle();
    }
    await pub.idle();
    stop = true;
    const [targetsSeen, compared1, compared2] = await readers;

    expect(mixes).toEqual([]);
    expect(targetsSeen).toBeGreaterThan(1);
    expect(compared1 + compared2).toBeGreaterThan(0);
    expect([await read(path.join(dir, 'a.json')), await read(path.join(dir, 'b.json'))]).toEqual([50, 50]);
  });

  it('keeps keepVersions old version dirs besides the current one and removes the rest', async () => {
    await using tmp = await tempDir();
    const store = new Store();
    const commit = (n: number) => store.commit({ set: [{ name: 'a', value: { n }, hash: `a${n}`, path: '/src/a.json' }] });
    commit(0);
    await using pub = await startPublisher(store, { publish: { dir: tmp.dir, keepVersions: 2 } });
    for (let n = 1; n <= 5; n++) {
      commit(n);
      await pub.idle();
    }
    const versions = (await readdir(tmp.dir)).filter((e) => e.startsWith('..v'));
    expect(versions).toHaveLength(3);
    expect(versions).toContain(await readlink(tmp.file('..data')));
  });

  it('clears what a crash left (..data_tmp, a partial version dir) and touches nothing it does not own', async () => {
    await using tmp = await tempDir();
    await tmp.write('..v6-0000good/a.json', '{"n": 6}');
    await tmp.write('..v7-0000dead/a.json', '{"n":');
    await symlink('..v6-0000good', tmp.file('..data'));
    await symlink('..v7-0000dead', tmp.file('..data_tmp'));
    await symlink('..data/a.json', tmp.file('a.json'));
    await symlink('..data/gone.json', tmp.file('gone.json'));
    await tmp.write('README', 'mine');
    const store = new Store();
    store.commit({ set: [{ name: 'a', value: { n: 8 }, hash: 'a8', path: '/src/a.json' }] });
    await using _pub = await startPublisher(store, { publish: { dir: tmp.dir } });

    const entries = await readdir(tmp.dir);
    expect(entries).not.toContain('..v7-0000dead');
    expect(entries).not.toContain('..data_tmp');
    expect(entries).not.toContain('gone.json');
    expect(entries).toContain('..v6-0000good'); // the previous version, kept for readers (keepVersions 1)
    expect(await readFile(tmp.file('README'), 'utf8')).toBe('mine');
    expect(await readJson(tmp.file('a.json'))).toEqual({ n: 8 });
  });

  it('refuses / and a path that is a file, naming the path', async () => {
    await using tmp = await tempDir();
    const store = new Store();
    await expect(startPublisher(store, { publish: { dir: '/' } })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    const file = await tmp.write('a-file', 'x');
    await expect(startPublisher(store, { publish: { dir: file } })).rejects.toThrow(`${file} is not a directory`);
    await expect(startPublisher(store, { publish: { dir: path.join(file, 'sub') } })).rejects.toThrow(/ENOTDIR.*a-file/);
  });

  it('refuses a dir that holds the config files themselves (it would feed its own output back in)', async () => {
    await using w = await world();
    await w.schema('app', APP_SCHEMA);
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    await expect(startPublisher(hot, { publish: { dir: w.configDir } })).rejects.toThrow(/holds the config .*app\.yaml/);
    await expect(startPublisher(hot, { publish: { dir: w.tmp.dir } })).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });

  it('a publish that fails (ENOTDIR) is logged and reported, keeps the old files, and later versions still try', async () => {
    await using w = await world();
    await w.schema('app', APP_SCHEMA);
    await w.config('app.yaml', 'port: 1\nn: 1\n');
    await using hot = await start(w);
    // dir = <tmp>/link/pub with link -> real: pointing the link at a regular file makes every mkdir fail with
    // ENOTDIR, which permission bits cannot do when the tests run as root.
    await mkdir(w.tmp.file('real'));
    await writeFile(w.tmp.file('blocker'), 'a regular file');
    await symlink('real', w.tmp.file('link'));
    const rec = recorder();
    const log = await memoryLogger();
    await using pub = await startPublisher(hot, { publish: { dir: w.tmp.file('link/pub') }, onResult: rec.onResult, logger: log.logger });
    expect(rec.of('publish')).toMatchObject([{ ok: true, version: 1 }]);

    await rm(w.tmp.file('link'));
    await symlink('blocker', w.tmp.file('link'));
    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => rec.of('publish').some((r) => !r.ok && r.version === hot.version), 'failure reported');
    expect(log.text()).toMatch(/"msg":"publish failed"/);
    expect(log.text()).toContain('ENOTDIR');
    expect(await readJson(w.tmp.file('real/pub/app.json'))).toMatchObject({ n: 1 });

    await rm(w.tmp.file('link'));
    await symlink('real', w.tmp.file('link'));
    await w.configAtomic('app.yaml', 'port: 1\nn: 3\n');
    await until(() => (hot.get('app') as { n: number } | undefined)?.n === 3, 'n=3 committed');
    await until(async () => (await readJson(w.tmp.file('real/pub/app.json'))).n === 3, 'n=3 published');
    await pub.idle();
    expect(rec.of('publish').at(-1)).toMatchObject({ ok: true, version: hot.version });
  });
});
