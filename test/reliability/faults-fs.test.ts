// RELIABILITY.md section 3, file-system faults: the watched directory pulled away and put back in every way,
// permission denied (as an unprivileged user), inotify's watch limit exhausted, and a full disk under publish.dir.
// Real files, real watcher events; the daemon tests run the real CLI as a child process.
import { chmod, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startPublisher } from '../../src/publish/index.js';
import { startHotconf } from '../e2e/cli-helpers.js';
import { memoryLogger, until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { appWorld, n, readJson, recorder } from '../publish/fixtures.js';
import {
  apiUrl,
  canLimitInotify,
  canMountTmpfs,
  hasDacOverride,
  inotifyLimited,
  isRoot,
  procStatus,
  served,
  servedStatus,
  tmpfs,
  withoutDacOverride,
} from './fault-helpers.js';

const port = (v: unknown) => (v as { port?: number } | undefined)?.port;

const userns = await canLimitInotify();
const mountable = await canMountTmpfs();
// Root loses its file-permission override (setpriv); an unprivileged runner meets mode bits already.
const unprivileged: string[] | undefined = isRoot ? await withoutDacOverride() : [];

if (!userns) console.warn('SKIPPED inotify-limit test: `unshare -U -r` is not allowed here (no private user namespace to lower max_inotify_watches in)');
if (!mountable) console.warn('SKIPPED full-disk test: mounting a tmpfs is not permitted here (needs CAP_SYS_ADMIN)');
if (unprivileged === undefined) console.warn('SKIPPED permission test: running as root without setpriv to drop privileges');

describe('the watched directory (library, watcher only: verifyIntervalMs 0)', { timeout: 60_000 }, () => {
  it('deleted, renamed away, recreated, replaced by a symlink to another dir and back, 3 rounds: the store follows the disk each time', async () => {
    await using w = await world();
    await w.schema('a');
    await w.schema('b');
    await w.config('a.yaml', 'port: 1\n');
    await w.config('b.yaml', 'port: 1\n');
    await using hot = await start(w, { verifyIntervalMs: 0 });
    const other = w.tmp.file('other');
    for (let round = 1; round <= 3; round++) {
      // renamed away: its configs are gone from the store
      await rename(w.configDir, w.tmp.file(`away-${round}`));
      await until(() => hot.get('a') === undefined && hot.get('b') === undefined, `round ${round}: removed with the renamed dir`);
      // recreated with new content
      await w.config('a.yaml', `port: ${10 + round}\n`);
      await until(() => port(hot.get('a')) === 10 + round, `round ${round}: recreated dir applied`);
      await w.configAtomic('a.yaml', `port: ${20 + round}\n`);
      await until(() => port(hot.get('a')) === 20 + round, `round ${round}: changes in the recreated dir seen`);
      // deleted and replaced by a symlink to another directory
      await rm(other, { recursive: true, force: true });
      await mkdir(other);
      await writeFile(path.join(other, 'a.yaml'), `port: ${30 + round}\n`);
      await writeFile(path.join(other, 'b.yaml'), `port: ${30 + round}\n`);
      await rm(w.configDir, { recursive: true });
      await symlink(other, w.configDir);
      await until(() => port(hot.get('a')) === 30 + round && port(hot.get('b')) === 30 + round, `round ${round}: the symlinked dir applied`);
      await writeFile(path.join(other, 'b.yaml'), `port: ${40 + round}\n`);
      await until(() => port(hot.get('b')) === 40 + round, `round ${round}: a write in the symlink's target seen`);
      // a config replaced by a directory: refused, the last good value stays
      await rm(path.join(other, 'b.yaml'));
      await mkdir(path.join(other, 'b.yaml'));
      await until(() => hot.status().configs.find((c) => c.name === 'b')?.state === 'error' || hot.get('b') === undefined, `round ${round}: b refused`);
      await rm(path.join(other, 'b.yaml'), { recursive: true });
      await writeFile(path.join(other, 'b.yaml'), `port: ${50 + round}\n`);
      await until(() => port(hot.get('b')) === 50 + round && hot.status().errors === 0, `round ${round}: b is a file again`);
      // the symlink replaced by a real directory again
      await rm(w.configDir);
      await w.config('a.yaml', `port: ${60 + round}\n`);
      await until(() => port(hot.get('a')) === 60 + round && hot.get('b') === undefined, `round ${round}: back to a real dir`);
    }
    expect(hot.status().errors).toBe(0);
    expect(hot.health().healthy).toBe(true);
  });
});

describe('permission denied (the daemon without root\'s file-permission override)', { timeout: 60_000 }, () => {
  it.skipIf(unprivileged === undefined)(
    'an unreadable config is reported with EACCES and keeps its last good value; readable again, it applies; an unreadable subdirectory is warned about and caught up once readable',
    async () => {
      await using w = await world();
      await w.schema('app');
      await w.config('app.yaml', 'port: 1\n');
      await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0'], {
        prefix: unprivileged!,
      });
      const url = await apiUrl(d);
      expect(hasDacOverride(await procStatus(d.child.pid!, 'CapEff'))).toBe(false);
      expect(await served(url, 'app')).toEqual({ port: 1 });

      // A new version the daemon may not read (mode 000: only root's DAC override could), saved atomically.
      const tmp = path.join(w.configDir, '.app.yaml.tmp');
      await writeFile(tmp, 'port: 2\n', { mode: 0o000 });
      await chmod(tmp, 0o000);
      await rename(tmp, path.join(w.configDir, 'app.yaml'));
      const err = await until(async () => (await servedStatus(url)).configs.find((c) => c.name === 'app' && c.state === 'error')?.error, 'EACCES reported');
      expect(err.code).toBe('E_READ');
      expect(err.message).toMatch(/app\.yaml.*EACCES/);
      expect(await served(url, 'app')).toEqual({ port: 1 });
      await chmod(path.join(w.configDir, 'app.yaml'), 0o644);
      await until(async () => port(await served(url, 'app')) === 2, 'readable again: applied');

      // A subdirectory the daemon may not list, prepared aside and renamed in: not silence.
      await w.schema('private/db');
      const staging = w.tmp.file('staging');
      await mkdir(staging);
      await writeFile(path.join(staging, 'db.yaml'), 'port: 5\n', { mode: 0o644 });
      // 0300: not listable (no read), but an unprivileged owner may still rename it (write, search).
      await chmod(staging, 0o300);
      await rename(staging, path.join(w.configDir, 'private'));
      const warned = await d.line((l) => JSON.stringify(l).includes('EACCES') && JSON.stringify(l).includes('private'), 'a warning naming the unreadable dir');
      expect(Number(warned.level)).toBeGreaterThanOrEqual(40);
      await chmod(path.join(w.configDir, 'private'), 0o755);
      await until(async () => port(await served(url, 'private/db')) === 5, 'the subdirectory caught up once readable', { timeoutMs: 15_000 });
      expect((await servedStatus(url)).configs.every((c) => c.state === 'ok')).toBe(true);
      d.signal('SIGTERM');
      expect(await d.exited).toBe(0);
    },
  );
});

describe('inotify limits exhausted', { timeout: 60_000 }, () => {
  const cases = [
    // 30 directories with a config each need ~61 watches; the daemon's user namespace allows 20.
    { limit: 'max_inotify_watches', value: 20, code: 'ENOSPC', msg: /inotify watch limit reached.*fs\.inotify\.max_user_watches.*polling/ },
    // No inotify instance at all: the very first watch fails.
    { limit: 'max_inotify_instances', value: 0, code: 'EMFILE', msg: /inotify instance or file descriptor limit reached.*max_user_instances.*polling/ },
  ] as const;
  for (const { limit, value, code, msg } of cases) {
    it.skipIf(!userns)(`${limit} = ${value} (${code}): the daemon says so once, clearly, falls back to polling and still sees every change`, async () => {
      await using w = await world();
      for (let i = 1; i <= 30; i++) await w.config(`d${i}/app.yaml`, 'port: 1\n');
      await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0'], {
        prefix: inotifyLimited(limit, value),
        // The verify sweep would catch what the watcher misses; off, so that only the watcher can see changes.
        env: { HOTCONF_REQUIRE_SCHEMA: 'false', HOTCONF_VERIFY_INTERVAL_MS: '0' },
      });
      const url = await apiUrl(d);
      const warning = await d.line((l) => l.polling === true, 'the fallback warning');
      expect(warning).toMatchObject({ level: 40, code });
      expect(warning.msg).toMatch(msg);
      for (const dir of ['d1', 'd15', 'd30']) {
        await w.configAtomic(`${dir}/app.yaml`, 'port: 2\n');
        await until(async () => port(await served(url, `${dir}/app`)) === 2, `${dir}: a change seen`);
      }
      await w.config('d31/app.yaml', 'port: 3\n');
      await until(async () => port(await served(url, 'd31/app')) === 3, 'a new directory seen');
      // One warning, not one per path chokidar could not watch.
      expect(d.lines.filter((l) => JSON.stringify(l).includes(code))).toHaveLength(1);
      d.signal('SIGTERM');
      expect(await d.exited).toBe(0);
    });
  }
});

describe('publish.dir on a full file system', { timeout: 60_000 }, () => {
  it.skipIf(!mountable)('a publish that hits ENOSPC is reported, the old published files stay intact, and the next version publishes once it fits', async () => {
    await using w = await appWorld();
    const out = w.tmp.file('mnt');
    await using _mount = await tmpfs(out, '64k');
    const log = await memoryLogger();
    await using hot = await start(w);
    const rec = recorder();
    const dir = path.join(out, 'published');
    await using _pub = await startPublisher(hot, { publish: { dir }, logger: log.logger, onResult: rec.onResult });
    await until(() => rec.of('publish').some((r) => r.ok), 'first publish');
    const before = await readJson(path.join(dir, 'app.json'));
    expect(before).toEqual({ port: 1, n: 1 }); // what was written: defaults are not filled in (issue 13)

    // ~100 KB of JSON cannot fit in 64 KiB.
    await w.configAtomic('app.yaml', `port: 1\nn: 2\nhost: ${'x'.repeat(100_000)}\n`);
    await until(() => n(hot) === 2, 'the big version committed');
    const failure = await until(() => rec.of('publish').find((r) => !r.ok), 'the publish failure reported');
    expect(failure.version).toBe(hot.version);
    const logged = await until(() => log.lines.find((l) => l.msg === 'publish failed'), 'the failure logged');
    expect(JSON.stringify(logged.err)).toMatch(/ENOSPC/);
    expect(await readJson(path.join(dir, 'app.json'))).toEqual(before);
    // The half-written version dir is gone: only the published one (and keepVersions) remain.
    expect((await readdir(dir)).filter((e) => e.startsWith('..v'))).toHaveLength(1);

    await w.configAtomic('app.yaml', 'port: 1\nn: 3\n');
    await until(async () => (await readJson(path.join(dir, 'app.json')).catch(() => undefined))?.n === 3, 'a version that fits publishes');
    expect(rec.of('publish').at(-1)).toMatchObject({ ok: true, version: hot.version });
    expect(JSON.parse(await readFile(path.join(dir, 'app.json'), 'utf8'))).toEqual({ port: 1, n: 3 });
  });
});
