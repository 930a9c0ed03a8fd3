// Shared pieces of the publish tests: a schema with a default, an onResult recorder, a real HTTP receiver.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import type { NotifyKind } from '../../src/publish/index.js';
import { world } from '../hotconf/fixtures.js';

/** Like the fixtures' SERVICE_SCHEMA, plus a default, so that "validated values" are visibly not the raw file. */
export const APP_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  additionalProperties: false,
  required: ['port'],
  properties: {
    port: { type: 'integer' },
    host: { type: 'string', default: 'localhost' },
    n: { type: 'integer' },
    password: { type: 'string', writeOnly: true },
  },
};

/** A world with one `app` config (n: 1) under APP_SCHEMA. */
export async function appWorld() {
  const w = await world();
  await w.schema('app', APP_SCHEMA);
  await w.config('app.yaml', 'port: 1\nn: 1\n');
  return w;
}

/** The `n` of the `app` config in the store. */
export const n = (hot: { get(name: string): unknown }) => (hot.get('app') as { n?: number } | undefined)?.n;

export interface Result {
  kind: NotifyKind;
  ok: boolean;
  version: number;
  at: number;
}

/** Records every onResult call. */
export function recorder() {
  const results: Result[] = [];
  return {
    results,
    onResult: (kind: NotifyKind, ok: boolean, version: number) => void results.push({ kind, ok, version, at: Date.now() }),
    of: (kind: NotifyKind) => results.filter((r) => r.kind === kind),
  };
}

export interface Notice {
  version: number;
  changed: string[];
  removed: string[];
  hashes: Record<string, string>;
}

export interface Received {
  body: Notice;
  headers: IncomingHttpHeaders;
  at: number;
}

/** A webhook receiver on 127.0.0.1:0. `respond` picks the status per request (1-based count), or 'hang' to never answer. */
export async function receiver(respond: (body: Notice, count: number) => number | 'hang' = () => 204) {
  const requests: Received[] = [];
  const server = createServer((req, res) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (data += chunk));
    req.on('end', () => {
      const body = JSON.parse(data) as Notice;
      requests.push({ body, headers: req.headers, at: Date.now() });
      const status = respond(body, requests.length);
      if (status !== 'hang') res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    versions: () => requests.map((r) => r.body.version),
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export async function readJson(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
}
