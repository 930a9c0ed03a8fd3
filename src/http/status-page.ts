// The status page: a page for people at `/` (page.ts: HTML, CSS and script, served by hotconf, no CDN, no build
// step), and the JSON routes it reads besides /v1/status and the event stream: GET /v1/errors (each refused
// config's errors with the lines of its source around them, secrets masked by schema) and GET /v1/history (the
// recent versions with what changed, secrets redacted). The page and its files hold no data: they are served
// without the token; the page asks for it and sends it on every API call.
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Hotconf } from '../hotconf.js';
import { HISTORY_MAX_VERSIONS, VersionHistory } from './history.js';

/** The page's own files: answered without the token (they hold no data). */
export const PAGE_ROUTES = ['/', '/page.js', '/page.css'] as const;
/** Every GET route added here (for the 405 answer's Allow). */
export const PAGE_GETS = [...PAGE_ROUTES, '/v1/errors', '/v1/history'] as const;
/** When this process started (ms since the epoch): GET /v1/status `startedAt`. */
const STARTED_AT = Math.round(performance.timeOrigin);
/** The page's script and styles come from this server only, and nothing else loads (no inline script, no frames). */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const HISTORY_DEFAULT_LIMIT = 20;

type Send = (reply: FastifyReply, status: number, code: string, message: string) => FastifyReply;

/** Adds the page and its routes to `app`; returns what must be closed with the server. */
export function statusPageRoutes(app: FastifyInstance, hot: Hotconf, sendError: Send): { close(): void } {
  const history = new VersionHistory(hot);

  // GET /v1/status says when the process started: added to its answer here, with the page's other additions.
  app.addHook('preSerialization', async (req, reply, payload: unknown) =>
    req.routeOptions.url === '/v1/status' && reply.statusCode === 200 && typeof payload === 'object' && payload !== null ? { ...payload, startedAt: STARTED_AT } : payload,
  );

  const asset = (type: string, pick: (page: typeof import('./page.js')) => string) => async (_req: unknown, reply: FastifyReply) => {
    // Loaded on the first request: a server nobody opens the page on never holds it.
    const text = pick(await import('./page.js'));
    return reply
      .type(type)
      .header('Content-Security-Policy', PAGE_CSP)
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'no-referrer')
      .header('Cache-Control', 'no-cache')
      .send(text);
  };
  app.get('/', asset('text/html; charset=utf-8', (p) => p.PAGE_HTML));
  app.get('/page.js', asset('text/javascript; charset=utf-8', (p) => p.PAGE_JS));
  app.get('/page.css', asset('text/css; charset=utf-8', (p) => p.PAGE_CSS));

  app.get('/v1/errors', () => {
    const status = hot.status({ excerpts: true });
    return {
      version: status.version,
      epoch: status.epoch,
      configs: status.configs
        .filter((c) => c.state === 'error')
        .map((c) => ({ name: c.name, file: c.file ?? null, since: c.since, errors: c.errors, ...(c.excerpts ?? { excerpts: [] }) })),
    };
  });

  app.get<{ Querystring: { limit?: string | string[] } }>('/v1/history', (req, reply) => {
    const text = Array.isArray(req.query.limit) ? req.query.limit[0] : req.query.limit;
    const limit = text === undefined ? HISTORY_DEFAULT_LIMIT : Number(text);
    if (!/^\d+$/.test(text ?? '0') || !(limit >= 1 && limit <= HISTORY_MAX_VERSIONS)) {
      return sendError(reply, 400, 'E_BAD_REQUEST', `\`limit\` must be a whole number from 1 to ${HISTORY_MAX_VERSIONS}`);
    }
    const snap = hot.snapshot();
    return { version: snap.version, epoch: snap.epoch, versions: history.recent(limit) };
  });

  return { close: () => history.close() };
}
