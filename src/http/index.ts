// The sidecar API: serves the store's validated configs over HTTP (fastify), long-polls and streams their
// changes as Server-Sent Events, reports status, triggers reloads, and exposes Prometheus metrics.
// It only reads the snapshot and subscribes to the store; it never touches the file system for a request.
// Secrets are redacted on every path out; a slow client is dropped rather than allowed to hold memory.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { HotconfError } from '../errors.js';
import type { Hotconf } from '../hotconf.js';
import { HotconfMetrics } from '../metrics/index.js';
import { isConfigName } from '../names.js';
import type { ConfigEntry } from '../store/index.js';
import { redact } from '../validate/index.js';
import { CLOSE_GRACE_MS, Feed, parseEventId } from './feed.js';
import { ConnectionLimit, crossSiteRefusal, HostGuard, openFileLimit, type Refusal } from './guard.js';
import { clearStaleSocket, parseListen, removeSocket } from './listen.js';
import { PAGE_GETS, PAGE_ROUTES, statusPageRoutes } from './status-page.js';

export { parseListen, type ListenTarget } from './listen.js';

export interface HttpOptions {
  /** 'HOST:PORT' (IPv6 as '[::1]:PORT') or 'unix:/path/to.sock'. Default '127.0.0.1:8080'. Port 0 = any free port. */
  listen?: string;
  /** Allow binding all interfaces (0.0.0.0, ::). Default false: such a `listen` is refused. */
  allowAllInterfaces?: boolean;
  /** Bearer token; when set, every route except /healthz and /readyz needs `Authorization: Bearer <token>`.
   *  Compared in constant time (sha256 digests, crypto.timingSafeEqual). Never logged. Default: none (no auth). */
  token?: string;
  /** Serve secret values unredacted on GET /v1/configs/:name when the token is set AND the request has
   *  `?secrets=true` (otherwise that request gets 403). Requires `token`. Default false (always redacted). */
  allowSecrets?: boolean;
  /** Committed versions kept for SSE Last-Event-ID resume, in events (and never more than `clientBufferBytes`
   *  of them: a longer replay is answered with a reset). Default 1000. */
  historySize?: number;
  /** Period of the SSE `: keepalive` comment, in ms. Default 15000. */
  heartbeatMs?: number;
  /** Most bytes queued for one SSE client before it is dropped (with a `reset` event), in bytes. Default 1 MiB. */
  clientBufferBytes?: number;
  /** Longest long-poll `?wait=` honoured, in seconds; longer waits are shortened to it. Default 300. */
  maxWaitSeconds?: number;
  /** Most concurrent SSE clients; more get 503 with Retry-After. Default 10000 (maxConnections bounds them too). */
  maxClients?: number;
  /** Most concurrent long-polls (`GET /v1/configs/:name?wait=`); more get 503 with Retry-After. Default 1000
   *  (maxConnections bounds them too). */
  maxLongPolls?: number;
  /** Most open connections. The ones past it are answered 503 with Retry-After and closed; past it by a quarter
   *  more (at most 64), Node closes new connections without an answer (answering costs the descriptor the
   *  limit protects). Each is a file descriptor, which the daemon needs to read configs. Default 1024, or half the
   *  process's open-file limit when that is lower. */
  maxConnections?: number;
  /** Host names accepted in the `Host` header besides `localhost`, IP addresses and the listen host: exact names,
   *  `.example.com` for a domain and its subdomains, `*` for any. Others get 421 (the DNS-rebinding guard). Names
   *  listed here (not `*`) are also origins allowed to POST. Default none. */
  allowedHosts?: string[];
  /** Longest a client may take to send its whole request (headers and body), in ms; a slower one (slow-loris)
   *  gets 408 and its connection is closed. Bounds receiving a request only: SSE streams and long-polls are
   *  answers and may last. Default 30000. */
  requestTimeoutMs?: number;
  /** pino logger; fastify gets its child `{ module: 'http' }`. Default: pino at level `info` to stderr. */
  logger?: Logger;
  /** prom-client Registry to register hotconf's metrics on, when the server makes its own (no `metrics`).
   *  Default: a new Registry (with collectDefaultMetrics). */
  registry?: Registry;
  /** Metrics to serve on GET /metrics and to keep the event-stream gauges in; the caller owns them (the server's
   *  close() leaves them open), so that counts from elsewhere (publish, notify) land in the same place. Not with
   *  `registry`. Default: the server makes its own HotconfMetrics (on `registry`) and closes them with itself. */
  metrics?: HotconfMetrics;
  /** Fields added to GET /v1/status besides hot.status()'s, read on each request (the daemon adds `notify`: the
   *  publish step and each notify target's last result). Default none. */
  status?: () => Record<string, unknown>;
}

export interface HttpServer extends AsyncDisposable {
  /** 'http://127.0.0.1:PORT', 'http://[::1]:PORT' or 'unix:/path/to.sock'. */
  readonly url: string;
  readonly app: FastifyInstance;
  /** What GET /metrics serves: `options.metrics`, or the server's own. */
  readonly metrics: HotconfMetrics;
  /** Ends SSE streams and long-polls, stops listening, unlinks the unix socket. Idempotent. */
  close(): Promise<void>;
}

const DEFAULTS = {
  listen: '127.0.0.1:8080',
  historySize: 1000,
  heartbeatMs: 15_000,
  clientBufferBytes: 1_048_576,
  maxWaitSeconds: 300,
  maxClients: 10_000,
  maxLongPolls: 1000,
  maxConnections: 1024,
  requestTimeoutMs: 30_000,
};
/** Connections past maxConnections that are still answered (503) rather than dropped by Node: a quarter of the
 *  limit, at most 64, so that the sockets stay well under the open-file limit the default is derived from. */
const connectionHeadroom = (maxConnections: number) => Math.max(1, Math.min(64, Math.floor(maxConnections / 4)));
/** What a client over a limit is told to wait before trying again, in seconds. */
const RETRY_AFTER_S = '5';
/** Requests carry no body worth more (POST /v1/reload takes none). */
const BODY_LIMIT_BYTES = 16_384;
/** Routes that answer without a token: probes must work before anyone can be given one. */
const PUBLIC_ROUTES = new Set<string>(['/healthz', '/readyz', ...PAGE_ROUTES]);

/** Starts the HTTP API for `hot`. Resolves once listening. `await using server = await startHttpServer(hot)`. */
export async function startHttpServer(hot: Hotconf, options: HttpOptions = {}): Promise<HttpServer> {
  const opts = resolveOptions(options);
  const target = parseListen(opts.listen, options.allowAllInterfaces ?? false);
  const fdLimit = options.maxConnections === undefined ? await openFileLimit() : undefined;
  const maxConnections = options.maxConnections ?? Math.max(1, Math.min(DEFAULTS.maxConnections, Math.floor((fdLimit ?? Infinity) / 2)));
  const hosts = new HostGuard(options.allowedHosts ?? [], 'host' in target ? target.host : undefined);
  const log = (options.logger ?? pino({ name: 'hotconf', level: 'info' }, pino.destination(2))).child({ module: 'http' });
  const tokenDigest = options.token === undefined ? undefined : sha256(options.token);
  const secretsAllowed = tokenDigest !== undefined && options.allowSecrets === true;

  const ownMetrics = options.metrics === undefined;
  const metrics = options.metrics ?? new HotconfMetrics(hot, options.registry === undefined ? {} : { registry: options.registry });
  const closeMetrics = () => {
    if (ownMetrics) metrics.close();
  };
  let feed: Feed;
  try {
    feed = new Feed(hot, metrics, opts, log);
  } catch (err) {
    closeMetrics();
    throw err;
  }

  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    // Names with slashes are long (nested directories); the default limit of 100 would 404 them.
    routerOptions: { maxParamLength: 4096 },
    return503OnClosing: true,
    // fastify turns Node's request timeout off (0), so a client trickling its headers held a connection for
    // Node's 60 s headersTimeout and one trickling a body held it forever. Node checks these timeouts every
    // connectionsCheckingInterval (30 s by default): a quarter of the limit keeps the cut near the limit.
    requestTimeout: opts.requestTimeoutMs,
    http: {
      headersTimeout: opts.requestTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(opts.requestTimeoutMs / 4))),
    },
    frameworkErrors: (err, _req, reply) => {
      void sendError(reply, 400, 'E_BAD_REQUEST', err.message);
    },
  });

  const connections = new ConnectionLimit(app.server, { maxConnections, headroom: connectionHeadroom(maxConnections) });
  const refuse = (reply: FastifyReply, r: Refusal) => sendError(reply, r.status, r.code, r.message);
  // Before the token: a connection over the limit, a foreign Host or a cross-site write is refused whoever sends it.
  app.addHook('onRequest', async (req, reply) => {
    if (connections.isOver(req.raw.socket)) {
      reply.header('Retry-After', RETRY_AFTER_S).header('Connection', 'close');
      return sendError(reply, 503, 'E_TOO_MANY_CONNECTIONS', `too many connections (${maxConnections}); retry later`);
    }
    const misdirected = hosts.check(req.headers.host);
    if (misdirected !== undefined) {
      req.log.info({ method: req.method, url: req.routeOptions.url ?? 'unknown', ip: req.ip, host: req.headers.host?.slice(0, 100) }, 'request for another host refused');
      return refuse(reply, misdirected);
    }
    const crossSite = crossSiteRefusal(req.method, req.headers, hosts);
    if (crossSite !== undefined) {
      req.log.info({ method: req.method, url: req.routeOptions.url ?? 'unknown', ip: req.ip, origin: req.headers.origin?.slice(0, 100) }, 'cross-site request refused');
      return refuse(reply, crossSite);
    }
  });
  app.addHook('onRequest', async (req, reply) => {
    if (tokenDigest === undefined || PUBLIC_ROUTES.has(req.routeOptions.url ?? '')) return;
    if (isAuthorized(req.headers.authorization, tokenDigest)) return;
    req.log.info({ method: req.method, url: req.routeOptions.url ?? 'unknown', ip: req.ip }, 'unauthorized request');
    reply.header('WWW-Authenticate', 'Bearer realm="hotconf"');
    return sendError(reply, 401, 'E_UNAUTHORIZED', 'a valid bearer token is required (Authorization: Bearer <token>)');
  });
  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ method: req.method, url: req.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 }, 'request');
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (err instanceof HotconfError && err.code === 'E_CLOSED') return sendError(reply, 503, 'E_CLOSED', 'hotconf is closed');
    // POST /v1/reload while etcd is unreachable: the last good config stays served; say why, as a 503.
    if (err instanceof HotconfError && (err.code === 'E_SOURCE_UNAVAILABLE' || err.code === 'E_SOURCE_AUTH')) return sendError(reply, 503, err.code, err.message);
    if (status >= 500) {
      req.log.error({ err }, 'request failed');
      return sendError(reply, status, 'E_INTERNAL', 'internal error');
    }
    return sendError(reply, status, STATUS_CODES[status] ?? 'E_BAD_REQUEST', err.message);
  });

  app.setNotFoundHandler((req, reply) => {
    const allow = allowedMethods(req.url.split('?')[0] ?? '');
    if (allow !== undefined) {
      reply.header('Allow', allow);
      return sendError(reply, 405, 'E_METHOD_NOT_ALLOWED', `${req.method} is not allowed here (allowed: ${allow})`);
    }
    return sendError(reply, 404, 'E_NOT_FOUND', 'no such route');
  });

  app.get('/healthz', () => ({ ok: true }));

  app.get('/readyz', (_req, reply) => {
    const { ready, version } = hot.status();
    return reply.code(ready ? 200 : 503).send({ ready, version });
  });

  app.get('/v1/configs', () => {
    const snap = hot.snapshot();
    const status = hot.status();
    return {
      version: snap.version,
      epoch: snap.epoch,
      sourceRevision: snap.sourceRevision ?? null,
      release: snap.sourceRelease ?? null,
      configs: status.configs.map((c) => ({ name: c.name, hash: c.hash ?? null, status: c.state })),
    };
  });

  app.get<{ Params: { '*': string }; Querystring: Record<string, string | string[] | undefined> }>('/v1/configs/*', async (req, reply) => {
    const name = req.params['*'];
    if (!isConfigName(name)) return sendError(reply, 404, 'E_NOT_FOUND', 'no such config');
    const query = req.query;
    const secrets = single(query.secrets);
    const wantSecrets = secrets === 'true' || secrets === '1';
    if (wantSecrets && !secretsAllowed) {
      return sendError(reply, 403, 'E_FORBIDDEN', 'secret values are not served (the server needs a token and allowSecrets)');
    }
    const waitText = single(query.wait);
    const afterText = single(query.after);
    const epochText = single(query.epoch);
    if (waitText !== undefined && !/^\d+(\.\d+)?$/.test(waitText)) return sendError(reply, 400, 'E_BAD_REQUEST', '`wait` must be a number of seconds');
    const afterId = afterText === undefined ? undefined : parseEventId(afterText);
    if (afterText !== undefined && afterId === undefined) return sendError(reply, 400, 'E_BAD_REQUEST', '`after` must be a version number or an event id (<epoch>:<version>)');
    if (epochText !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(epochText)) return sendError(reply, 400, 'E_BAD_REQUEST', '`epoch` must be an epoch as the server sent it (Hotconf-Epoch)');
    const waitMs = Math.min(Number(waitText ?? 0), opts.maxWaitSeconds) * 1000;
    const ifNoneMatch = req.headers['if-none-match'];

    let snap = hot.snapshot();
    let entry = snap.configs.get(name);
    if (entry === undefined) return sendError(reply, 404, 'E_NOT_FOUND', `no config named ${JSON.stringify(name)}`);
    // A version another process issued (another epoch, or a bare number this store has not reached) says nothing
    // about what the client holds: it gets the full answer at once, never a wait ending in 304. A bare number this
    // store has reached is taken as its own (clients from before epochs; they should send the epoch).
    const clientEpoch = afterId?.epoch ?? epochText;
    const foreign = (clientEpoch !== undefined && clientEpoch !== snap.epoch) || (afterId !== undefined && afterId.version > snap.version);
    const after = foreign ? undefined : afterId?.version;
    const upToDate = (e: ConfigEntry) =>
      !foreign && ((after !== undefined && e.version <= after) || (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, e.hash)));

    let timedOut = false;
    if (waitMs > 0 && upToDate(entry)) {
      if (feed.longPolls >= opts.maxLongPolls) {
        reply.header('Retry-After', RETRY_AFTER_S);
        return sendError(reply, 503, 'E_TOO_MANY_CLIENTS', `too many long-polls (${opts.maxLongPolls}); retry later`);
      }
      const outcome = await feed.wait(name, waitMs, reply.raw);
      if (outcome === 'disconnected') {
        // Nobody to answer: the client is gone, and so must the half-closed socket be.
        reply.hijack();
        reply.raw.destroy();
        return;
      }
      if (outcome === 'closed') {
        reply.header('Connection', 'close');
        return sendError(reply, 503, 'E_CLOSED', 'the server is shutting down');
      }
      timedOut = outcome === 'timeout';
      snap = hot.snapshot();
      entry = snap.configs.get(name);
      if (entry === undefined) return sendError(reply, 404, 'E_NOT_FOUND', `config ${JSON.stringify(name)} was removed`);
    }

    reply
      .header('ETag', `"${entry.hash}"`)
      .header('X-Hotconf-Version', String(snap.version))
      .header('Hotconf-Epoch', snap.epoch)
      .header('Cache-Control', wantSecrets ? 'no-store' : 'no-cache')
      .header('Vary', 'Authorization');
    if (!foreign && (timedOut || (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, entry.hash)))) return reply.code(304).send();
    const value = wantSecrets ? entry.value : redact(entry.value, entry.secrets);
    // Serialized here: a config may be a bare string or number, which fastify would not send as JSON.
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(value) ?? 'null');
  });

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>('/v1/events', { exposeHeadRoute: false }, (req, reply) => {
    if (feed.closed) return sendError(reply, 503, 'E_CLOSED', 'the server is shutting down');
    if (feed.clients >= opts.maxClients) {
      reply.header('Retry-After', RETRY_AFTER_S);
      return sendError(reply, 503, 'E_TOO_MANY_CLIENTS', `too many event stream clients (${opts.maxClients})`);
    }
    const lastEventId = single(req.headers['last-event-id']) ?? single(req.query.lastEventId);
    reply.hijack();
    feed.attach(reply.raw, lastEventId, req.log, single(req.query.problems) === 'true');
    return undefined;
  });

  app.get('/v1/status', () => {
    const status = hot.status();
    const source = status.source as { stale?: boolean; staleSince?: number | null };
    return {
      ...status,
      release: status.sourceRelease ?? null,
      stale: source.stale === true && typeof source.staleSince === 'number' ? { since: new Date(source.staleSince).toISOString() } : null,
      ...options.status?.(),
    };
  });

  // The fleet (etcd release mode): the head and every live instance, for status pages and `hotconf rollout status`.
  app.get('/v1/fleet', async (_req, reply) => {
    let fleet;
    try {
      fleet = await hot.fleet();
    } catch (err) {
      return sendError(reply, 503, 'E_UNAVAILABLE', (err as Error).message);
    }
    if (fleet === undefined) return sendError(reply, 404, 'E_NOT_FOUND', 'not an etcd release fleet: the source is a directory or a prefix of plain keys');
    return fleet;
  });

  app.post('/v1/reload', async (_req, reply) => {
    const result = await hot.reload();
    return reply.code(result.errors.length === 0 ? 200 : 422).send({ version: result.version, errors: result.errors });
  });

  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));

  // The status page at `/` and the routes only it needs (status-page.ts).
  const page = statusPageRoutes(app as unknown as FastifyInstance, hot, sendError);

  let url: string;
  try {
    if ('path' in target) {
      await clearStaleSocket(target.path);
      await app.listen({ path: target.path });
      url = `unix:${target.path}`;
    } else {
      await app.listen({ host: target.host, port: target.port });
      const address = app.server.address();
      if (address === null || typeof address === 'string') throw new HotconfError('E_OPTIONS', `cannot tell where ${opts.listen} listens`);
      url = address.family === 'IPv6' ? `http://[${address.address}]:${address.port}` : `http://${address.address}:${address.port}`;
    }
  } catch (err) {
    feed.close();
    page.close();
    closeMetrics();
    await app.close();
    throw err;
  }
  log.info({ url, auth: tokenDigest !== undefined, secrets: secretsAllowed, maxConnections }, 'http listening');

  // Connections that have not carried a request yet. Node closes idle keep-alive connections on close, but
  // not these (clients such as undici open one ahead of need), and they would hold close() until they give up.
  const fresh = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    fresh.add(socket);
    socket.once('close', () => fresh.delete(socket));
  });
  app.server.on('request', (req: IncomingMessage) => fresh.delete(req.socket));

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      feed.close();
      page.close();
      closeMetrics();
      for (const socket of fresh) socket.destroy();
      // Requests in flight may finish, but not forever.
      const force = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
      try {
        await app.close();
      } finally {
        clearTimeout(force);
      }
      if ('path' in target) await removeSocket(target.path);
      log.debug('http closed');
    })();
    return closing;
  };
  return {
    url,
    app: app as unknown as FastifyInstance,
    metrics,
    close,
    [Symbol.asyncDispose]: close,
  };
}

// ---- helpers ------------------------------------------------------------------------------------------

interface ResolvedOptions {
  listen: string;
  historySize: number;
  heartbeatMs: number;
  clientBufferBytes: number;
  maxWaitSeconds: number;
  maxClients: number;
  maxLongPolls: number;
  requestTimeoutMs: number;
}

function resolveOptions(o: HttpOptions): ResolvedOptions {
  const fail = (msg: string): never => {
    throw new HotconfError('E_OPTIONS', `invalid http options: ${msg}`);
  };
  if (typeof o !== 'object' || o === null) fail('an options object is expected');
  const resolved: ResolvedOptions = {
    listen: o.listen ?? DEFAULTS.listen,
    historySize: o.historySize ?? DEFAULTS.historySize,
    heartbeatMs: o.heartbeatMs ?? DEFAULTS.heartbeatMs,
    clientBufferBytes: o.clientBufferBytes ?? DEFAULTS.clientBufferBytes,
    maxWaitSeconds: o.maxWaitSeconds ?? DEFAULTS.maxWaitSeconds,
    maxClients: o.maxClients ?? DEFAULTS.maxClients,
    maxLongPolls: o.maxLongPolls ?? DEFAULTS.maxLongPolls,
    requestTimeoutMs: o.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
  };
  for (const k of ['historySize', 'heartbeatMs', 'clientBufferBytes', 'maxClients', 'maxLongPolls', 'requestTimeoutMs'] as const) {
    if (!Number.isInteger(resolved[k]) || resolved[k] < 1) fail(`\`${k}\` must be a positive integer`);
  }
  if (o.maxConnections !== undefined && !(Number.isInteger(o.maxConnections) && o.maxConnections >= 1)) fail('`maxConnections` must be a positive integer');
  if (o.allowedHosts !== undefined && !(Array.isArray(o.allowedHosts) && o.allowedHosts.every((h) => typeof h === 'string' && h !== ''))) {
    fail('`allowedHosts` must be a list of host names');
  }
  if (!(Number.isFinite(resolved.maxWaitSeconds) && resolved.maxWaitSeconds >= 0)) fail('`maxWaitSeconds` must be a number >= 0');
  if (o.token !== undefined && (typeof o.token !== 'string' || !/^[\x21-\x7e]+$/.test(o.token))) {
    fail('`token` must be a non-empty string of visible ASCII characters (no spaces)');
  }
  if (o.allowSecrets === true && o.token === undefined) fail('`allowSecrets` requires a `token`: secrets are never served without authentication');
  if (o.metrics !== undefined && o.registry !== undefined) fail('give `metrics` or `registry`, not both: given metrics already have their registry');
  return resolved;
}

const STATUS_CODES: Record<number, string> = {
  400: 'E_BAD_REQUEST',
  404: 'E_NOT_FOUND',
  405: 'E_METHOD_NOT_ALLOWED',
  406: 'E_NOT_ACCEPTABLE',
  408: 'E_TIMEOUT',
  413: 'E_TOO_LARGE',
  415: 'E_UNSUPPORTED_MEDIA_TYPE',
  503: 'E_UNAVAILABLE',
};

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error: { code, message } });
}

function allowedMethods(path: string): string | undefined {
  if ((PAGE_GETS as readonly string[]).includes(path)) return 'GET, HEAD';

  if (path === '/v1/reload') return 'POST';
  if (path === '/v1/events') return 'GET';
  if (['/v1/configs', '/v1/status', '/v1/fleet', '/healthz', '/readyz', '/metrics'].includes(path) || path.startsWith('/v1/configs/')) {
    return 'GET, HEAD';
  }
  return undefined;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Compares digests, not the strings: equal lengths for timingSafeEqual, and no length leak. */
function isAuthorized(header: string | undefined, tokenDigest: Buffer): boolean {
  const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
  if (match === null) return false;
  return timingSafeEqual(sha256(match[1]!), tokenDigest);
}

/** If-None-Match: `*`, or a list of (possibly weak) entity tags. */
function etagMatches(header: string, hash: string): boolean {
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === `"${hash}"`;
  });
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
