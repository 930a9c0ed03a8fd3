// A real hotconf on temp dirs behind a real HTTP server on loopback, plus the clients the tests drive it with:
// Node's fetch, a raw http.request (which sends paths exactly as written: fetch would resolve `..`), and the
// `eventsource` package.
import http from 'node:http';
import { EventSource } from 'eventsource';
import type { HotconfOptions } from '../../src/index.js';
import { startHttpServer, type HttpOptions } from '../../src/http/index.js';
import { start, type World } from '../hotconf/fixtures.js';

export const SECRET = 'hunter2-s3cr3t-value';
export const NESTED_SECRET = 'tok-9f8e7d6c5b4a';
export const TOKEN = 'bearer-t0ken-abc123';

export async function serve(w: World, httpOptions: HttpOptions = {}, hotOptions: Partial<HotconfOptions> = {}) {
  const hot = await start(w, hotOptions);
  const server = await startHttpServer(hot, { listen: '127.0.0.1:0', logger: hot.logs.logger, ...httpOptions });
  const auth: Record<string, string> = httpOptions.token === undefined ? {} : { Authorization: `Bearer ${httpOptions.token}` };
  return {
    hot,
    server,
    url: server.url,
    logs: hot.logs,
    /** fetch with the server's token (if any). */
    get: (path: string, init: RequestInit = {}) =>
      fetch(server.url + path, { ...init, headers: { ...auth, ...(init.headers as Record<string, string> | undefined) } }),
    async [Symbol.asyncDispose]() {
      await server.close();
      await hot.close();
    },
  };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with the path sent byte for byte as given; over TCP (`base` = http://host:port) or a unix socket. */
export function rawRequest(
  target: { url: string } | { socketPath: string },
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const where =
      'url' in target ? { host: new URL(target.url).hostname, port: Number(new URL(target.url).port) } : { socketPath: target.socketPath };
    const req = http.request({ ...where, path, method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface ReceivedEvent {
  type: string;
  id: string;
  data: { epoch: string; version: number; changed?: string[]; removed?: string[]; hashes?: Record<string, string> };
  raw: string;
}

/** An EventSource on /v1/events that records hello / change / reset events; `lastEventId` is sent on the first connect. */
export function subscribe(url: string, options: { token?: string; lastEventId?: string } = {}) {
  const received: ReceivedEvent[] = [];
  let first = true;
  const es = new EventSource(`${url}/v1/events`, {
    fetch: (input, init) => {
      const headers: Record<string, string> = { ...init.headers };
      if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
      if (first && options.lastEventId !== undefined) headers['Last-Event-ID'] = options.lastEventId;
      first = false;
      return fetch(input, { ...init, headers });
    },
  });
  for (const type of ['hello', 'change', 'reset']) {
    es.addEventListener(type, (e) => {
      received.push({ type, id: e.lastEventId, data: JSON.parse(e.data as string) as ReceivedEvent['data'], raw: e.data as string });
    });
  }
  const changes = () => received.filter((e) => e.type === 'change');
  return {
    es,
    received,
    changes,
    close: () => es.close(),
    [Symbol.dispose]: () => es.close(),
  };
}

/** The value of a service config in the fixtures' SERVICE_SCHEMA shape. */
export function svc(n: number, extra = ''): string {
  return `port: 80\nn: ${n}\npassword: ${SECRET}\nnested:\n  token: ${NESTED_SECRET}\n${extra}`;
}
