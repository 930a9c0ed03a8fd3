// Notify results are visible (issue 14, point 3): a refusing webhook's status and the start of its answer in the log
// and in status(), a 4xx not retried, a 5xx retried a bounded number of times, and an application that is not
// listening yet at start-up waited for quietly and told the current version as soon as it listens. Real receivers
// on loopback.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startPublisher } from '../../src/publish/index.js';
import { memoryLogger, until } from '../helpers.js';
import { start } from '../hotconf/fixtures.js';
import { appWorld, n, recorder, type Notice } from './fixtures.js';

/** A receiver answering `status` with `body` to every POST. */
async function answering(status: number, body: string, port = 0) {
  const requests: Notice[] = [];
  const server = createServer((req, res) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (data += chunk));
    req.on('end', () => {
      requests.push(JSON.parse(data) as Notice);
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, requests, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/-/reload`, [Symbol.asyncDispose]: () => closeServer(server) };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** A loopback port nobody listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await closeServer(server);
  return port;
}

const PROMETHEUS_REASON = 'failed to reload config: found multiple scrape configs with job name "prometheus"';

describe('notify results', () => {
  it('a webhook answering 500 is retried `retries` times, then fails with its status and the start of its answer in the log and status()', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    // Over 512 bytes, with a newline, a terminal escape and a multi-byte character past the cut.
    const body = `${PROMETHEUS_REASON}\n\x1b[31mred\x1b[0m ${'x'.repeat(600)} é-tail-never-shown`;
    await using app = await answering(500, body);
    const rec = recorder();
    const log = await memoryLogger('debug');
    await using pub = await startPublisher(hot, { notify: { webhook: { url: app.url, retries: 2, backoffMs: 5 } }, onResult: rec.onResult, logger: log.logger });
    await pub.idle();

    expect(app.requests.map((r) => r.version)).toEqual([1, 1, 1]);
    expect(rec.of('webhook')).toMatchObject([{ ok: false, version: 1 }]);
    const failed = log.lines.find((l) => l.msg === 'webhook failed')!;
    expect(failed).toMatchObject({ level: 50, status: 500, attempts: 3 });
    const logged = failed.body as string;
    expect(logged.startsWith(`${PROMETHEUS_REASON}\\n\\e[31mred\\e[0m xxx`)).toBe(true);
    // eslint-disable-next-line no-control-regex -- the point: none left
    expect(logged).not.toMatch(/[\x00-\x1f]/);
    expect(logged).not.toContain('tail-never-shown');
    expect(logged.length).toBeLessThan(600);

    const [status] = pub.status();
    expect(status).toMatchObject({ kind: 'webhook', target: app.url, version: 1, result: 'failed', lastOkVersion: null, delivering: null });
    expect(status!.reason).toBe(`HTTP 500: ${logged}`);
    expect(Date.parse(status!.at!)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('a 4xx is a definite refusal: one request, no retry, the reason in status()', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    await using app = await answering(400, PROMETHEUS_REASON);
    const rec = recorder();
    const log = await memoryLogger('debug');
    await using pub = await startPublisher(hot, { notify: { webhook: { url: app.url, retries: 5, backoffMs: 5 } }, onResult: rec.onResult, logger: log.logger });
    await pub.idle();

    expect(app.requests).toHaveLength(1);
    expect(rec.of('webhook')).toMatchObject([{ ok: false, version: 1 }]);
    expect(log.lines.find((l) => l.msg === 'webhook refused the notice')).toMatchObject({ status: 400, body: PROMETHEUS_REASON, refused: true });
    expect(log.lines.filter((l) => l.msg === 'webhook attempt failed, will retry')).toEqual([]);
    expect(pub.status()).toMatchObject([{ kind: 'webhook', version: 1, result: 'failed', reason: `HTTP 400: ${PROMETHEUS_REASON}` }]);

    // The next version is told again (a refusal is per version, not for ever), and an ok shows as ok.
    await using ok = await answering(200, '');
    pub.setNotify({ webhook: { url: ok.url, retries: 5, backoffMs: 5 } });
    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => n(hot) === 2, 'n=2');
    await pub.idle();
    expect(ok.requests.map((r) => r.version)).toEqual([hot.version]);
    expect(pub.status()).toMatchObject([{ kind: 'webhook', target: ok.url, version: hot.version, result: 'ok', reason: null, lastOkVersion: hot.version }]);
  });

  it('an application that listens late is waited for quietly in the start-up grace and gets the current version as soon as it listens', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    const port = await closedPort();
    const rec = recorder();
    const log = await memoryLogger('debug');
    await using pub = await startPublisher(hot, {
      notify: { webhook: { url: `http://127.0.0.1:${port}/-/reload`, retries: 1, backoffMs: 5 }, startupGraceMs: 60_000 },
      onResult: rec.onResult,
      logger: log.logger,
    });
    const quiet = () => log.lines.filter((l) => String(l.msg).includes('not listening yet'));
    await until(() => quiet().length >= 3, 'several quiet looks at the closed port');
    expect(pub.status()).toMatchObject([{ kind: 'webhook', result: null, delivering: 1 }]);
    // A version committed meanwhile: the application must get that one, not the one it missed.
    await w.configAtomic('app.yaml', 'port: 1\nn: 2\n');
    await until(() => n(hot) === 2, 'n=2');
    await until(() => pub.status()[0]!.delivering === hot.version, 'the lane on the new version');

    const listenedAt = Date.now();
    await using app = await answering(200, 'ok', port);
    await pub.idle();
    expect(app.requests.map((r) => r.version)).toEqual([hot.version]);
    expect(app.requests[0]!.changed).toEqual(['app']);
    expect(rec.of('webhook')).toMatchObject([{ ok: true, version: hot.version }]);
    // Soon after it listens: the quiet looks are at most a second apart (generous bound: a loaded machine).
    expect(rec.of('webhook')[0]!.at - listenedAt).toBeLessThan(10_000);
    expect(quiet().every((l) => l.level === 20)).toBe(true);
    expect(log.lines.filter((l) => (l.level as number) >= 40)).toEqual([]);
    expect(pub.status()).toMatchObject([{ result: 'ok', version: hot.version, lastOkVersion: hot.version, delivering: null }]);
  });

  it('past the start-up grace a refused connection is a failure like any other: retried `retries` times, then logged as an error', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    const port = await closedPort();
    const rec = recorder();
    const log = await memoryLogger('debug');
    await using pub = await startPublisher(hot, {
      notify: { webhook: { url: `http://127.0.0.1:${port}/-/reload`, retries: 2, backoffMs: 5 }, startupGraceMs: 0 },
      onResult: rec.onResult,
      logger: log.logger,
    });
    await pub.idle();
    expect(rec.of('webhook')).toMatchObject([{ ok: false, version: 1 }]);
    expect(log.lines.filter((l) => l.msg === 'webhook attempt failed, will retry')).toHaveLength(2);
    expect(log.lines.find((l) => l.msg === 'webhook failed')).toMatchObject({ level: 50, attempts: 3 });
    expect(pub.status()[0]!.reason).toMatch(/ECONNREFUSED/);
  });

  it('refuses a negative startupGraceMs', async () => {
    await using w = await appWorld();
    await using hot = await start(w);
    await expect(startPublisher(hot, { notify: { webhook: { url: 'http://127.0.0.1:9/' }, startupGraceMs: -1 } })).rejects.toThrow(/notify\.startupGraceMs must be a number >= 0/);
  });
});
