// RELIABILITY.md section 3, file-system faults: the watched directory pulled away and put back in every way,
// permission denied (as an unprivileged user), inotify's watch limit exhausted, and a full disk under publish.dir.
// Real files, real watcher events; the daemon tests run the real CLI as a child process.
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startHotconf } from '../e2e/cli-helpers.js';
import { until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { apiUrl, canLimitInotify, inotifyLimited, served } from './fault-helpers.js';

const port = (v: unknown) => (v as { port?: number } | undefined)?.port;

const userns = await canLimitInotify();

if (!userns) console.warn('SKIPPED inotify-limit test: `unshare -U -r` is not allowed here (no private user namespace to lower max_inotify_watches in)');

describe('the watched directory (library, watcher only: verifyIntervalMs 0)', () => {
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

describe('inotify watch limit exhausted', () => {
  it.skipIf(!userns)('the daemon says so once, clearly, falls back to polling and still sees every change', async () => {
    await using w = await world();
    // 30 directories with a config each need ~61 watches; the daemon's user namespace allows 20.
    for (let i = 1; i <= 30; i++) await w.config(`d${i}/app.yaml`, 'port: 1\n');
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0'], {
      prefix: inotifyLimited(20),
      // The verify sweep would catch what the watcher misses; off, so that only the watcher can see changes.
      env: { HOTCONF_REQUIRE_SCHEMA: 'false', HOTCONF_VERIFY_INTERVAL_MS: '0' },
    });
    const url = await apiUrl(d);
    const warning = await d.line((l) => l.polling === true, 'the fallback warning');
    expect(warning.level).toBe(40);
    expect(warning.msg).toMatch(/inotify watch limit reached.*fs\.inotify\.max_user_watches.*polling/);
    for (const dir of ['d1', 'd15', 'd30']) {
      await w.configAtomic(`${dir}/app.yaml`, 'port: 2\n');
      await until(async () => port(await served(url, `${dir}/app`)) === 2, `${dir}: a change seen`);
    }
    await w.config('d31/app.yaml', 'port: 3\n');
    await until(async () => port(await served(url, 'd31/app')) === 3, 'a new directory seen');
    // One warning, not one per path chokidar could not watch.
    expect(d.lines.filter((l) => JSON.stringify(l).includes('ENOSPC'))).toHaveLength(1);
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });
});

