// Where the server listens: loopback by default, all interfaces only when asked, or a unix socket that is
// removed again on close (and a stale one left by a crash is replaced, a live one or a plain file never is).
import { lstat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HotconfError } from '../../src/index.js';
import { parseListen, startHttpServer } from '../../src/http/index.js';
import { tempDir } from '../helpers.js';
import { start, world } from '../hotconf/fixtures.js';
import { rawRequest, TOKEN } from './fixtures.js';

function refusal(listen: string, allowAll = false): string {
  try {
    parseListen(listen, allowAll);
  } catch (err) {
    expect(err).toBeInstanceOf(HotconfError);
    expect((err as HotconfError).code).toBe('E_OPTIONS');
    return (err as HotconfError).message;
  }
  throw new Error(`parseListen accepted ${JSON.stringify(listen)}`);
}

describe('parseListen', () => {
  it('parses HOST:PORT, [IPV6]:PORT and unix:/path', () => {
    expect(parseListen('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(parseListen('[::1]:9090')).toEqual({ host: '::1', port: 9090 });
    expect(parseListen('10.1.2.3:65535')).toEqual({ host: '10.1.2.3', port: 65535 });
    expect(parseListen('unix:/run/hotconf/http.sock')).toEqual({ path: '/run/hotconf/http.sock' });
  });

  it('refuses every-interface addresses unless allowed', () => {
    for (const listen of ['0.0.0.0:8080', '[::]:8080', '[0:0:0:0:0:0:0:0]:8080', '[::0]:80']) {
      expect(refusal(listen)).toMatch(/every network interface.*allowAllInterfaces/);
    }
    expect(parseListen('0.0.0.0:8080', true)).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(parseListen('[::]:8080', true)).toEqual({ host: '::', port: 8080 });
  });

  it('rejects garbage with a message that says what is wrong and what is expected', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['8080', /port is missing/],
      [':8080', /host is missing/],
      ['127.0.0.1:', /port "" is not a number/],
      ['127.0.0.1:http', /port "http" is not a number/],
      ['127.0.0.1:65536', /port "65536" is not a number from 0 to 65535/],
      ['127.0.0.1:-1', /not a number/],
      ['::1:8080', /IPv6 address must be written in brackets/],
      ['[127.0.0.1]:80', /not an IPv6 address/],
      ['exa mple.org:80', /not an IPv4 address or a host name/],
      ['http://127.0.0.1:80', /not a URL: leave out the scheme/],
      ['unix:', /socket path is missing/],
      ['unix:relative.sock', /must be absolute/],
      [`unix:/${'x'.repeat(200)}`, /longer than 107 bytes/],
    ];
    for (const [listen, why] of cases) {
      const message = refusal(listen);
      expect(message, listen).toMatch(why);
      expect(message, listen).toContain("expected 'HOST:PORT', '[IPV6]:PORT' or 'unix:/path/to.sock'");
    }
  });

  it('startHttpServer refuses 0.0.0.0 unless allowAllInterfaces, and then listens there', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    await expect(startHttpServer(hot, { listen: '0.0.0.0:0', logger: hot.logs.logger })).rejects.toThrow(/every network interface/);
    await using server = await startHttpServer(hot, { listen: '0.0.0.0:0', allowAllInterfaces: true, logger: hot.logs.logger, token: TOKEN });
    expect(server.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    const res = await fetch(server.url.replace('0.0.0.0', '127.0.0.1') + '/healthz');
    expect(res.status).toBe(200);
  });
});

describe('unix socket', () => {
  it('serves the API on a unix socket and removes the socket file on close', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    await using tmp = await tempDir('hotconf-sock-');
    const socketPath = tmp.file('http.sock');
    const server = await startHttpServer(hot, { listen: `unix:${socketPath}`, logger: hot.logs.logger });
    expect(server.url).toBe(`unix:${socketPath}`);
    expect((await lstat(socketPath)).isSocket()).toBe(true);
    const res = await rawRequest({ socketPath }, '/v1/configs/app');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ port: 1 });
    expect(res.headers.etag).toBe(`"${hot.snapshot().configs.get('app')!.hash}"`);
    await server.close();
    await expect(lstat(socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
    await server.close();
  });

  it('replaces a stale socket file, refuses a live one and never removes a plain file', async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', 'port: 1\n');
    await using hot = await start(w);
    await using tmp = await tempDir('hotconf-sock-');

    // A socket file whose server is gone: a process killed with SIGKILL leaves it behind.
    const stale = tmp.file('stale.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`]);
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise<void>((resolve) => child.once('exit', () => resolve()));
    expect((await lstat(stale)).isSocket()).toBe(true);
    await using replaced = await startHttpServer(hot, { listen: `unix:${stale}`, logger: hot.logs.logger });
    expect((await rawRequest({ socketPath: stale }, '/healthz')).status).toBe(200);

    // A socket a live server answers on.
    await expect(startHttpServer(hot, { listen: `unix:${stale}`, logger: hot.logs.logger })).rejects.toThrow(/another server is listening/);
    expect((await rawRequest({ socketPath: stale }, '/healthz')).status).toBe(200);

    // A regular file.
    const plain = tmp.file('plain.sock');
    await writeFile(plain, 'data');
    await expect(startHttpServer(hot, { listen: `unix:${plain}`, logger: hot.logs.logger })).rejects.toThrow(/exists and is not a socket/);
    expect((await lstat(plain)).isFile()).toBe(true);
    expect(replaced.url).toBe(`unix:${stale}`);
  });
});
