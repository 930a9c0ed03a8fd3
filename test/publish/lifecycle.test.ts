// The publisher's life: an ordinary subscriber that never holds up commits, swaps its targets while running,
// and lets go on close().
import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startPublisher } from '../../src/publish/index.js';
import { until } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { appWorld, n, readJson, receiver, recorder } from './fixtures.js';

describe('publisher lifecycle', () => {
  it('close() unsubscribes and is idempotent; later versions are neither published nor notified', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    await using hook = await receiver();
    const subscribers = hot.stats.subscribers;
    const pub = await startPublisher(hot, { publish: { dir: w.tmp.file('out') }, notify: { webhook: { url: hook.url } } });
    expect(hot.stats.subscribers).toBe(subscribers + 1);
    await pub.idle();

    await Promise.all([pub.close(), pub.close()]);
    await pub[Symbol.asyncDispose]();
    expect(hot.stats.subscribers).toBe(subscribers);
    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => n(hot) === 2, 'n=2 committed');
    await pub.idle(); // resolves at once once closed
    expect(await readJson(w.tmp.file('out/app.json'))).toMatchObject({ n: 1 });
    expect(hook.versions()).toEqual([1]);
  });

  it('close() waits for a notice in flight at most closeTimeoutMs, then aborts it', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    await using hook = await receiver(() => 'hang');
    const rec = recorder();
    const pub = await startPublisher(hot, {
      notify: { webhook: { url: hook.url, timeoutMs: 20_000 } },
      closeTimeoutMs: 200,
      onResult: rec.onResult,
    });
    await until(() => hook.requests.length === 1, 'request in flight');
    const t0 = Date.now();
    await pub.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    await until(() => rec.of('webhook')[0], 'aborted attempt reported');
    expect(rec.of('webhook')).toMatchObject([{ ok: false, version: 1 }]);
    expect(hook.requests).toHaveLength(1);
  });

  it('setNotify swaps targets while running: the next version goes to the new receiver only', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    await using before = await receiver();
    await using after = await receiver();
    await using pub = await startPublisher(hot, { notify: { webhook: { url: before.url } } });
    await pub.idle();

    pub.setNotify({ webhook: { url: after.url } });
    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => n(hot) === 2, 'n=2');
    await pub.idle();
    expect(before.versions()).toEqual([1]);
    expect(after.requests.map((r) => r.body)).toMatchObject([{ version: hot.version, changed: ['app'] }]);

    pub.setNotify(undefined);
    await w.configAtomic('app.yaml', 'port: 1\nn: 3\n');
    await until(() => n(hot) === 3, 'n=3');
    await pub.idle();
    expect(after.requests).toHaveLength(1);
  });

  it('setNotify refuses bad options and keeps the targets it had', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    await using hook = await receiver();
    await using pub = await startPublisher(hot, { notify: { webhook: { url: hook.url } } });
    expect(() => pub.setNotify({ webhook: { url: 'ftp://example.com/' } })).toThrow(/http\(s\)/);
    expect(() => pub.setNotify({ signal: {} })).toThrow(/exactly one of pid and pidFile/);
    expect(() => pub.setNotify({ command: { command: [] } })).toThrow(/non-empty/);
    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => n(hot) === 2, 'n=2');
    await pub.idle();
    expect(hook.versions()).toEqual([1, hot.version]);
  });

  it('a slow notify target holds up neither commits nor publishing; it gets the latest version next', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    const rec = recorder();
    const gate = w.tmp.file('gate');
    // The command runs until the test creates the gate file.
    const script = 'const fs = require("node:fs"); const t = setInterval(() => fs.existsSync(process.argv[1]) && clearInterval(t), 10)';
    await using pub = await startPublisher(hot, {
      publish: { dir: w.tmp.file('out') },
      notify: { command: { command: [process.execPath, '-e', script, gate] } },
      onResult: rec.onResult,
    });
    for (let i = 2; i <= 6; i++) {
      await w.configAtomic('app.yaml', `port: 1\nn: ${i}\n`);
      await until(() => n(hot) === i, `n=${i} committed`);
    }
    await until(async () => (await readJson(w.tmp.file('out/app.json'))).n === 6, 'n=6 published');
    expect(rec.of('command')).toEqual([]);

    await writeFile(gate, '');
    await pub.idle();
    expect(rec.of('command')).toMatchObject([
      { ok: true, version: 1 },
      { ok: true, version: hot.version },
    ]);
  });
});

describe('publish.mode and publish.group are checked (issue 18 point 12)', () => {
  it('refuses modes the owner cannot read and write, execute bits, non-octal text and bad group names, saying why', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    const dir = w.tmp.file('out');
    for (const [publish, message] of [
      [{ dir, mode: '0400' }, /publish\.mode 0400: the owner \(hotconf\) must be able to read and write/],
      [{ dir, mode: '0700' }, /publish\.mode 0700: published files are data, not programs/],
      [{ dir, mode: '644x' }, /publish\.mode must be an octal file mode such as '0600'/],
      [{ dir, mode: 0o1600 }, /publish\.mode must be an octal file mode/],
      [{ dir, group: 'no such group' }, /publish\.group must be a group name or a numeric gid/],
      [{ dir, group: 'hotconf-no-such-group' }, /publish\.group: no group named "hotconf-no-such-group" in \/etc\/group/],
    ] as const) {
      await expect(startPublisher(hot, { publish })).rejects.toThrow(message);
    }
  });
});
