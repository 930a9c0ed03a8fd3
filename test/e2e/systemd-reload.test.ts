// `hotconf reload --pid`, the unit's ExecReload=: it returns only once the reload it asked for is done, and fails
// when that reload refused something. The real daemon and the real CLI as child processes, with the runtime
// directory systemd would give them ($RUNTIME_DIRECTORY); test/e2e/systemd-box.test.ts does the same under systemd.
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { world } from '../hotconf/fixtures.js';
import { tempDir, until } from '../helpers.js';
import { hotconf, startHotconf } from './cli-helpers.js';

/** A world whose watcher waits a minute: only a reload's rescan commits an edit within a test. */
async function slowWorld() {
  const w = await world();
  await w.schema('svc');
  await w.config('svc.yaml', 'port: 80\n');
  await w.tmp.write('hotconf.yaml', 'configDir: config\nschemaDir: schemas\ndebounceMs: 60000\nmaxBatchDelayMs: 60000\nhttp:\n  listen: 127.0.0.1:0\n');
  return w;
}


/** A stand-in daemon (`node -e script`), ready once it has printed its first line; killed when disposed. */
async function standIn(script: string): Promise<{ child: ChildProcess; [Symbol.asyncDispose](): Promise<void> }> {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await until(() => new Promise<boolean>((resolve) => child.stdout.once('data', () => resolve(true))), 'the stand-in ready');
  return { child, [Symbol.asyncDispose]: () => Promise.resolve(void child.kill('SIGKILL')) };
}

describe('hotconf reload', () => {
  it('returns once the reload it asked for has committed, five times in a row', async () => {
    await using w = await slowWorld();
    await using run = await tempDir();
    const env = { RUNTIME_DIRECTORY: run.dir };
    await using d = startHotconf(['run', '--config', w.tmp.file('hotconf.yaml')], { env });
    const url = String((await d.line((l) => l.msg === 'http listening', 'the API listening')).url);
    for (let port = 81; port <= 85; port++) {
      await w.configAtomic('svc.yaml', `port: ${port}\n`);
      const reload = await hotconf(['reload', '--pid', String(d.child.pid)], { env });
      expect(reload, reload.stderr).toMatchObject({ code: 0, stdout: expect.stringMatching(/^hotconf: reloaded \(process \d+: version \d+, \d+ ms\)\n$/) as unknown });
      // at once, no waiting: the watcher alone would take a minute
      expect(await (await fetch(`${url}/v1/configs/svc`)).json()).toEqual({ port });
    }
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });

  it('fails with exit 1 and the refused file:line:col when the reload refused a config; the last good value stays', async () => {
    await using w = await slowWorld();
    await using run = await tempDir();
    const env = { RUNTIME_DIRECTORY: run.dir };
    await using d = startHotconf(['run', '--config', w.tmp.file('hotconf.yaml')], { env });
    const url = String((await d.line((l) => l.msg === 'http listening', 'the API listening')).url);
    await w.configAtomic('svc.yaml', 'port: 99999\n');
    const refused = await hotconf(['reload', '--pid', String(d.child.pid)], { env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${w.configDir}/svc.yaml:1:7: /port: must be <= 65535\n`);
    expect(refused.stderr).toMatch(/hotconf: reload failed \(process \d+: version 1, \d+ ms\): 1 problem\(s\) above/);
    expect(await (await fetch(`${url}/v1/configs/svc`)).json()).toEqual({ port: 80 });

    // hotconf.yaml is part of a reload too: an invalid one fails it, and so does a change that needs a restart
    await w.configAtomic('svc.yaml', 'port: 81\n');
    await w.tmp.writeAtomic('hotconf.yaml', 'configDir: config\nschemaDir: schemas\ndebounceMs: -1\nhttp:\n  listen: 127.0.0.1:0\n');
    const badSettings = await hotconf(['reload', '--pid', String(d.child.pid)], { env });
    expect(badSettings.code).toBe(1);
    expect(badSettings.stderr).toMatch(/debounceMs/);
    expect(badSettings.stderr).toMatch(/hotconf settings are invalid; keeping the current ones/);
    await w.tmp.writeAtomic('hotconf.yaml', 'configDir: config\nschemaDir: schemas\ndebounceMs: 60000\nmaxBatchDelayMs: 60000\nhttp:\n  listen: 127.0.0.1:1\n');
    const restart = await hotconf(['reload', '--pid', String(d.child.pid)], { env });
    expect(restart.code).toBe(1);
    expect(restart.stderr).toMatch(/settings change needs a restart; nothing of it was applied: http\.listen/);

    await w.tmp.writeAtomic('hotconf.yaml', 'configDir: config\nschemaDir: schemas\ndebounceMs: 60000\nmaxBatchDelayMs: 60000\nhttp:\n  listen: 127.0.0.1:0\n');
    const fixed = await hotconf(['reload', '--pid', String(d.child.pid)], { env });
    expect(fixed, fixed.stderr).toMatchObject({ code: 0 });
    expect(await (await fetch(`${url}/v1/configs/svc`)).json()).toEqual({ port: 81 });
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });

  it('sends nothing, and exits 3 saying why, to a daemon that records no outcome there', async () => {
    await using w = await slowWorld();
    await using run = await tempDir();
    await using d = startHotconf(['run', '--config', w.tmp.file('hotconf.yaml')]); // no $RUNTIME_DIRECTORY
    await d.line((l) => l.msg === 'hotconf running', 'running');
    const other = await hotconf(['reload', '--pid', String(d.child.pid)], { env: { RUNTIME_DIRECTORY: run.dir } });
    expect(other.code).toBe(3);
    expect(other.stderr).toContain(`process ${d.child.pid} records no reload outcome in ${run.dir}/reload.json; nothing was sent`);
    const none = await hotconf(['reload', '--pid', String(d.child.pid)]);
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/no \$RUNTIME_DIRECTORY/);
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
    expect(d.lines.filter((l) => l.msg === 'reloaded')).toEqual([]);
  });

  it('waits past a reload that started before it asked, for the one after', async () => {
    // A stand-in daemon makes the race certain: on SIGHUP it first reports a reload that began before the
    // signal (one already in progress when it landed), then, 300 ms later, the one the signal asked for.
    await using run = await tempDir();
    const script = `
      const { writeFileSync, renameSync } = require('node:fs');
      const us = () => (process.hrtime.bigint() / 1000n).toString();
      const write = (o) => { writeFileSync('${run.dir}/.tmp', JSON.stringify({ pid: process.pid, reason: 'test', durationMs: 1, problems: [], ...o })); renameSync('${run.dir}/.tmp', '${run.dir}/reload.json'); };
      const before = us();
      write({ startedAtUs: before, ok: true, version: 1 });
      process.on('SIGHUP', () => {
        write({ startedAtUs: before, ok: true, version: 2 });
        setTimeout(() => write({ startedAtUs: us(), ok: false, version: 3, problems: ['the one asked for'] }), 300);
      });
      console.log('ready');
      setTimeout(() => {}, 30000);
    `;
    await using fake = await standIn(script);
    const reload = await hotconf(['reload', '--pid', String(fake.child.pid)], { env: { RUNTIME_DIRECTORY: run.dir } });
    expect(reload.code).toBe(1);
    expect(reload.stderr).toMatch(/^the one asked for\nhotconf: reload failed \(process \d+: version 3, 1 ms\)/);
  });

  it('fails with exit 3 when the daemon exits before its reload finished', async () => {
    await using run = await tempDir();
    const script = `
      require('node:fs').writeFileSync('${run.dir}/reload.json', JSON.stringify({ pid: process.pid, reason: 'start', startedAtUs: '1', durationMs: 0, ok: true, version: 1, problems: [] }));
      process.on('SIGHUP', () => process.exit(0));
      console.log('ready');
      setTimeout(() => {}, 30000);
    `;
    await using fake = await standIn(script);
    const reload = await hotconf(['reload', '--pid', String(fake.child.pid)], { env: { RUNTIME_DIRECTORY: run.dir } });
    expect(reload.code).toBe(3);
    expect(reload.stderr).toContain(`process ${fake.child.pid} exited before its reload finished`);
  });
});
