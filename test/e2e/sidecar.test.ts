// `hotconf run` as a sidecar, driven as a user would: HTTP API on loopback, published files, a webhook receiver.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { expect, it } from 'vitest';
import { world } from '../hotconf/fixtures.js';
import { tempDir, until } from '../helpers.js';
import { hotconf, startHotconf } from './cli-helpers.js';

it('serves the API (also to `hotconf get/watch --url`), publishes every version and calls the webhook, with the token guarding the API', async () => {
  await using w = await world();
  await w.schema('svc');
  await w.config('svc.yaml', 'port: 80\npassword: pw-123456789\n');
  await using out = await tempDir();
  const hooks: Array<{ version: number; changed: string[] }> = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      hooks.push(JSON.parse(body) as { version: number; changed: string[] });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hookPort = (receiver.address() as AddressInfo).port;
  const token = 'test-token-0123456789abcdef';
  await using d = startHotconf(
    ['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0', '--publish-dir', out.file('published'), '--notify-webhook', `http://127.0.0.1:${hookPort}/reload`],
    { env: { HOTCONF_HTTP_TOKEN: token } },
  );
  try {
    const listening = await d.line((l) => l.msg === 'http listening', 'the API listening');
    const url = String(listening.url);
    const auth = { authorization: `Bearer ${token}` };
    expect((await fetch(`${url}/v1/configs`)).status).toBe(401);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const first = await fetch(`${url}/v1/configs/svc`, { headers: auth });
    expect(await first.json()).toEqual({ port: 80, password: '[REDACTED]' });
    await until(() => hooks.length >= 1, 'the start-up notice');
    expect(JSON.parse(await readFile(out.file('published/svc.json'), 'utf8'))).toEqual({ port: 80, password: 'pw-123456789' });

    // the CLI asks the running sidecar
    const got = await hotconf(['get', 'svc.port', '--url', url], { env: { HOTCONF_HTTP_TOKEN: token } });
    expect(got).toMatchObject({ code: 0, stdout: '80\n' });
    const redacted = await hotconf(['get', 'svc', '--json', '--url', url], { env: { HOTCONF_HTTP_TOKEN: token } });
    expect(JSON.parse(redacted.stdout)).toEqual({ port: 80, password: '[REDACTED]' });
    const unauthorized = await hotconf(['get', 'svc', '--url', url]);
    expect(unauthorized.code).toBe(3);
    expect(unauthorized.stderr).toMatch(/HTTP 401/);
    await using watcher = startHotconf(['watch', '--url', url], { env: { HOTCONF_HTTP_TOKEN: token } });
    await watcher.line((l) => l.type === 'hello', 'the stream says hello');

    await w.configAtomic('svc.yaml', 'port: 81\npassword: pw-123456789\n');
    await until(async () => ((await (await fetch(`${url}/v1/configs/svc`, { headers: auth })).json()) as { port: number }).port === 81, 'the API serves v2');
    await until(async () => (JSON.parse(await readFile(out.file('published/svc.json'), 'utf8')) as { port: number }).port === 81, 'v2 published');
    await until(() => hooks.at(-1)?.version === 2, 'the webhook told of v2');
    expect(hooks.at(-1)!.changed).toEqual(['svc']);
    const streamed = await watcher.line((l) => l.type === 'change', 'the change streamed as NDJSON');
    expect(streamed).toMatchObject({ version: 2, changed: ['svc'], removed: [] });
    watcher.signal('SIGINT');
    expect(await watcher.exited).toBe(0);
    const metrics = await (await fetch(`${url}/metrics`, { headers: auth })).text();
    expect(metrics).toMatch(/hotconf_config_version 2/);
    expect(metrics).toMatch(/hotconf_notify_results_total\{kind="webhook",result="ok"\} [1-9]/);
    expect(d.lines.map((l) => JSON.stringify(l)).join('\n')).not.toContain(token);
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
  } finally {
    receiver.close();
  }
});
