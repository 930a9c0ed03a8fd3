// RELIABILITY.md section 3, file-system faults: the watched directory pulled away and put back in every way,
// permission denied (as an unprivileged user), inotify's watch limit exhausted, and a full disk under publish.dir.
// Real files, real watcher events; the daemon tests run the real CLI as a child process.
import { describe, expect, it } from 'vitest';
import { startHotconf } from '../e2e/cli-helpers.js';
import { until } from '../helpers.js';
import { world } from '../hotconf/fixtures.js';
import { apiUrl, canLimitInotify, inotifyLimited, served } from './fault-helpers.js';

const port = (v: unknown) => (v as { port?: number } | undefined)?.port;

const userns = await canLimitInotify();

if (!userns) console.warn('SKIPPED inotify-limit test: `unshare -U -r` is not allowed here (no private user namespace to lower max_inotify_watches in)');

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

