// sd_notify as systemd sees it: the test binds a real AF_UNIX datagram socket, hands it to `hotconf run` as
// NOTIFY_SOCKET (with WATCHDOG_USEC), and reads the datagrams the daemon sends.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { world } from '../hotconf/fixtures.js';
import { sleep, tempDir, until } from '../helpers.js';
import { startHotconf } from './cli-helpers.js';
import type { UnixDgramSocket } from 'unix-dgram';

const require = createRequire(import.meta.url);
const { createSocket } = require('unix-dgram') as typeof import('unix-dgram');

interface Received {
  at: number;
  fields: Record<string, string>;
}

async function notifySocket() {
  const tmp = await tempDir();
  const path = tmp.file('notify.sock');
  const messages: Received[] = [];
  const socket: UnixDgramSocket = createSocket('unix_dgram', (buf) => {
    const fields = Object.fromEntries(buf.toString().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    messages.push({ at: performance.now(), fields });
  });
  socket.bind(path);
  return {
    path,
    messages,
    /** The messages carrying `key`, in order. */
    with: (key: string) => messages.filter((m) => key in m.fields),
    async [Symbol.asyncDispose]() {
      socket.close();
      await tmp[Symbol.asyncDispose]();
    },
  };
}

async function goodWorld() {
  const w = await world();
  await w.schema('svc');
  await w.config('svc.yaml', 'port: 80\n');
  return w;
}

describe('sd_notify', () => {
  it('READY=1 after the initial load, RELOADING=1 then READY=1 around SIGHUP, STATUS=, STOPPING=1', async () => {
    await using w = await goodWorld();
    await using sock = await notifySocket();
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir], { env: { NOTIFY_SOCKET: sock.path } });
    await until(() => sock.with('READY').length === 1, 'READY=1');
    expect(sock.with('READY')[0]!.fields).toMatchObject({ READY: '1', STATUS: 'version 1, 1 configs, 0 errors' });

    await w.configAtomic('svc.yaml', 'port: x\n');
    await until(() => sock.messages.some((m) => m.fields.STATUS === 'version 1, 1 configs, 1 errors'), 'STATUS with the error count');

    const before = sock.messages.length;
    d.signal('SIGHUP');
    await until(() => sock.with('READY').length === 2, 'READY=1 after the reload');
    const reload = sock.messages.slice(before);
    const reloading = reload.findIndex((m) => m.fields.RELOADING === '1');
    const ready = reload.findIndex((m) => m.fields.READY === '1');
    expect(reloading).toBeGreaterThanOrEqual(0);
    expect(ready).toBeGreaterThan(reloading);
    const usec = BigInt(reload[reloading]!.fields.MONOTONIC_USEC!);
    expect(usec).toBeGreaterThan(0n);

    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
    const stopping = sock.with('STOPPING');
    expect(stopping).toHaveLength(1);
    expect(sock.messages.at(-1)!.fields.STOPPING).toBe('1');
  });

  it('WATCHDOG=1 at half of WATCHDOG_USEC while healthy; the pings stop while the process is frozen', async () => {
    await using w = await goodWorld();
    await using sock = await notifySocket();
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir], {
      env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' }, // pings every 200 ms
    });
    await until(() => sock.with('WATCHDOG').length >= 5, 'five watchdog pings');
    const pings = sock.with('WATCHDOG').map((m) => m.at);
    const gaps = pings.slice(1).map((t, i) => t - pings[i]!);
    expect(Math.min(...gaps)).toBeGreaterThan(100); // paced at the interval, not a flood

    d.signal('SIGSTOP');
    await sleep(50); // let a datagram already in flight arrive
    const frozenAt = sock.with('WATCHDOG').length;
    await sleep(1000);
    expect(sock.with('WATCHDOG').length).toBe(frozenAt); // a frozen daemon does not ping
    d.signal('SIGCONT');
    await until(() => sock.with('WATCHDOG').length >= frozenAt + 2, 'pings resume');
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });

  it('withholds the ping while a batch runs longer than watchdog.stallMs (a wedged pipeline)', async () => {
    // Real work stands in for a hung file system: 3,000 files land at once, and with stallMs at 100 ms the
    // batch that reads them counts as stuck. The probe batch cannot get through behind it either.
    await using w = await goodWorld();
    await using sock = await notifySocket();
    await w.tmp.write('hotconf.yaml', 'configDir: config\nschemaDir: schemas\nrequireSchema: false\nwatchdog:\n  stallMs: 100\n');
    await using d = startHotconf(['run', '--config', w.tmp.file('hotconf.yaml')], {
      env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '200000' }, // pings every 100 ms
    });
    await until(() => sock.with('WATCHDOG').length >= 2, 'pings while idle');
    await w.tmp.write('staging/.keep', '');
    for (let i = 0; i < 3000; i++) await w.tmp.write(`staging/f${i}.yaml`, `n: ${i}\nitems: [${'1, '.repeat(50)}1]\n`);
    const { rename } = await import('node:fs/promises');
    await rename(w.tmp.file('staging'), w.tmp.file('config/bulk'));
    const withheld = await d.line((l) => l.msg === 'pipeline wedged: withholding the watchdog ping', 'a withheld ping', 20_000);
    expect(withheld.alive === false || (withheld.batchInFlightMs as number) >= 100).toBe(true);
    await d.line((l) => l.msg === 'config committed' && ((l.changed as string[]) ?? []).length >= 3000, 'the bulk batch committed', 30_000);
    const after = sock.with('WATCHDOG').length;
    await until(() => sock.with('WATCHDOG').length >= after + 2, 'pings resume once the pipeline moves again');
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  });

  it('a WATCHDOG_PID for another process leaves the watchdog off', async () => {
    await using w = await goodWorld();
    await using sock = await notifySocket();
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir], {
      env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' },
    });
    await until(() => sock.with('READY').length === 1, 'READY=1');
    const running = await d.line((l) => l.msg === 'hotconf running', 'running');
    expect(running.watchdogMs).toBeUndefined();
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
    expect(sock.with('WATCHDOG')).toEqual([]);
  });
});
