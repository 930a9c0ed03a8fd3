// Signal and command notifications, against real child processes.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startPublisher } from '../../src/publish/index.js';
import { memoryLogger, until } from '../helpers.js';
import { start } from '../hotconf/fixtures.js';
import { appWorld, n, recorder } from './fixtures.js';

/** A node process that, on each SIGHUP, prints `hup <n>` with n read from the published app.json at that moment. */
async function sighupApp(appJson: string) {
  const code = `
    const fs = require('node:fs');
    process.on('SIGHUP', () => {
      let n = 'missing';
      try { n = JSON.parse(fs.readFileSync(${JSON.stringify(appJson)}, 'utf8')).n; } catch {}
      console.log('hup ' + n);
    });
    console.log('ready');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (out += chunk));
  await until(() => out.includes('ready\n'), 'child ready');
  const exited = once(child, 'exit');
  return {
    pid: child.pid!,
    hups: () => out.split('\n').filter((l) => l.startsWith('hup')),
    async [Symbol.asyncDispose]() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}


describe('signal', () => {
  it('reaches the process by pid after each publish, so that it reads the new files', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    const out = w.tmp.file('out');
    await using app = await sighupApp(`${out}/app.json`);
    const rec = recorder();
    await using _pub = await startPublisher(hot, { publish: { dir: out }, notify: { signal: { pid: app.pid } }, onResult: rec.onResult });
    await until(() => app.hups().length === 1, 'initial signal');

    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => app.hups().length === 2, 'second signal');
    expect(app.hups()).toEqual(['hup 1', 'hup 2']);
    expect(rec.of('signal')).toMatchObject([{ ok: true }, { ok: true, version: hot.version }]);
  });

  it('reads pidFile again before every signal', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    await using first = await sighupApp('/nonexistent');
    await using second = await sighupApp('/nonexistent');
    const pidFile = w.tmp.file('app.pid');
    await writeFile(pidFile, `${first.pid}\n`);
    await using _pub = await startPublisher(hot, { notify: { signal: { pidFile } } });
    await until(() => first.hups().length === 1, 'first process signalled');

    await writeFile(pidFile, ` ${second.pid} `);
    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => second.hups().length === 1, 'second process signalled');
    expect(first.hups()).toHaveLength(1);
  });

  it('a stale, garbage or missing pid file is a reported failure with a clear log line, and nothing else breaks', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    const pidFile = w.tmp.file('app.pid');
    await writeFile(pidFile, String(dead.pid));
    const rec = recorder();
    const log = await memoryLogger();
    await using pub = await startPublisher(hot, {
      publish: { dir: w.tmp.file('out') },
      notify: { signal: { pidFile } },
      onResult: rec.onResult,
      logger: log.logger,
    });
    await pub.idle();
    expect(log.text()).toContain(`no such process: pid ${dead.pid} (from ${pidFile})`);

    await writeFile(pidFile, 'not-a-pid');
    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => n(hot) === 2, 'n=2');
    await pub.idle();
    expect(log.text()).toContain(`${pidFile}: not a process id: \\"not-a-pid\\"`);

    await rm(pidFile);
    await w.configAtomic('app.yaml', 'port: 1\nn: 3\n');
    await until(() => n(hot) === 3, 'n=3');
    await pub.idle();
    expect(log.text()).toContain('ENOENT');

    expect(rec.of('signal').map((r) => r.ok)).toEqual([false, false, false]);
    expect(rec.of('publish').map((r) => r.ok)).toEqual([true, true, true]);
  });
});

describe('command', () => {
  it('runs without a shell, with HOTCONF_VERSION, HOTCONF_CHANGED and HOTCONF_PUBLISH_DIR in its env', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    const record = w.tmp.file('record.txt');
    const out = w.tmp.file('out');
    const script = `require('node:fs').appendFileSync(process.argv[1], [process.env.HOTCONF_VERSION, process.env.HOTCONF_CHANGED,
      process.env.HOTCONF_REMOVED, process.env.HOTCONF_PUBLISH_DIR].join(' ') + '\\n')`;
    await using pub = await startPublisher(hot, {
      publish: { dir: out },
      notify: { command: { command: [process.execPath, '-e', script, record] } },
    });
    await pub.idle();
    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => n(hot) === 2, 'n=2');
    await pub.idle();

    // HOTCONF_CHANGED/HOTCONF_REMOVED are JSON arrays (issue 18 point 15: a comma-joined list was ambiguous).
    expect((await readFile(record, 'utf8')).trim().split('\n')).toEqual([`1 ["app"] [] ${out}`, `${hot.version} ["app"] [] ${out}`]);
  });

  it('a command that exits 1 is a reported failure with its exit code and stderr logged; commits go on', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    const rec = recorder();
    const log = await memoryLogger();
    await using pub = await startPublisher(hot, {
      notify: { command: { command: [process.execPath, '-e', 'console.error("x".repeat(600) + "the-end-of-stderr"); process.exit(1)'] } },
      onResult: rec.onResult,
      logger: log.logger,
    });
    await pub.idle();
    const line = log.lines.find((l) => l.msg === 'command failed');
    expect(line).toMatchObject({ exitCode: 1 });
    expect(line?.stderr).toMatch(/the-end-of-stderr\n$/);
    expect((line?.stderr as string).length).toBeLessThanOrEqual(500);

    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => n(hot) === 2, 'n=2 committed despite the failing command');
    await until(() => rec.of('command').length === 2, 'second outcome');
    expect(rec.of('command')).toMatchObject([{ ok: false, version: 1 }, { ok: false, version: hot.version }]);
  });

  it('a command that outlives timeoutMs is terminated with SIGTERM and reported', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    const rec = recorder();
    const log = await memoryLogger();
    const t0 = Date.now();
    await using _pub = await startPublisher(hot, {
      notify: { command: { command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'], timeoutMs: 300 } },
      onResult: rec.onResult,
      logger: log.logger,
    });
    await until(() => rec.of('command').length === 1, 'outcome');
    expect(rec.of('command')[0]).toMatchObject({ ok: false });
    expect(rec.of('command')[0]!.at - t0).toBeLessThan(1800);
    expect(log.lines.find((l) => l.msg === 'command failed')).toMatchObject({ signal: 'SIGTERM', timeoutMs: 300 });
  });

  it('a command that ignores SIGTERM is killed with SIGKILL 2 s later', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    const rec = recorder();
    const log = await memoryLogger();
    const t0 = Date.now();
    await using _pub = await startPublisher(hot, {
      // 1.5 s leaves a slow CI machine time to install the handler before the SIGTERM.
      notify: { command: { command: [process.execPath, '-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)'], timeoutMs: 1500 } },
      onResult: rec.onResult,
      logger: log.logger,
    });
    await until(() => rec.of('command').length === 1, 'outcome');
    expect(rec.of('command')[0]!.at - t0).toBeGreaterThanOrEqual(3400);
    expect(log.lines.find((l) => l.msg === 'command failed')).toMatchObject({ signal: 'SIGKILL' });
  });
});

describe('which pids may be signalled (issue 18 point 14)', () => {
  it('one rule for `pid` and a pid file: 0, negatives (process groups), 1 (init) and hotconf itself are refused', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    for (const pid of [0, -1, 1, process.pid]) {
      await expect(pub(hot, { pid })).rejects.toThrow(/notify\.signal\.pid: .*(not an application's process id|is hotconf itself)/);
    }
    const pidFile = w.tmp.file('app.pid');
    const log = await memoryLogger();
    const rec = recorder();
    await writeFile(pidFile, '1\n');
    await using p = await startPublisher(hot, { notify: { signal: { pidFile } }, onResult: rec.onResult, logger: log.logger });
    await p.idle();
    for (const [n, text] of [[2, '0'], [3, '-1'], [4, String(process.pid)]] as const) {
      await writeFile(pidFile, text);
      await w.configAtomic('app.yaml', `port: 1\nn: ${n}\n`);
      await until(() => rec.of('signal').length === n, `attempt ${n}`);
    }
    const refusals = log.lines.filter((l) => l.msg === 'signal failed').map((l) => String(l.error));
    expect(refusals).toEqual([
      expect.stringMatching(/^refusing to signal pid 1 \(from .*\): 1 is not an application's process id/),
      expect.stringMatching(/^refusing to signal pid 0 \(from .*\): 0 is not an application's process id/),
      expect.stringMatching(/^refusing to signal pid -1 \(from .*\): -1 is not an application's process id/),
      expect.stringMatching(new RegExp(`^refusing to signal pid ${process.pid} \\(from .*\\): ${process.pid} is hotconf itself`)),
    ]);
    expect(rec.of('signal').map((r) => r.ok)).toEqual([false, false, false, false]);
  });
});

function pub(hot: Parameters<typeof startPublisher>[0], signal: { pid: number }) {
  return startPublisher(hot, { notify: { signal } });
}
