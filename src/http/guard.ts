// The sidecar's boundary, checked before any route runs: which Host names it answers to (a DNS-rebinding page
// names its own host), which requests may change state (a cross-site form POST is a CORS "simple request" the
// browser sends without asking), and how many connections it holds (each one is a file descriptor, and a daemon
// out of them cannot read the config files it exists to serve).
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type { Socket } from 'node:net';
import type { Server } from 'node:http';

/** Why a request is refused, or undefined when it may go on. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
}

/**
 * The Host header check (DNS rebinding): a page whose name was re-pointed at 127.0.0.1 reaches the sidecar with
 * its own name in `Host`, so only names that cannot be an attacker's are accepted: `localhost`, any IP address
 * literal (DNS is not involved: no rebinding), the listen host, and `allowedHosts` (exact names, `.example.com`
 * for a domain and its subdomains, `*` for any). A request without Host (HTTP/1.0) passes: browsers always send it.
 */
export class HostGuard {
  readonly #names: ReadonlySet<string>;
  /** The names of allowedHosts alone: the only other origins allowed to change state (see crossSiteRefusal). */
  readonly #configured: ReadonlySet<string>;
  readonly #suffixes: readonly string[];
  readonly #any: boolean;

  constructor(allowedHosts: readonly string[], listenHost: string | undefined) {
    const names = new Set(['localhost']);
    if (listenHost !== undefined) names.add(normalizeHost(listenHost) ?? listenHost.toLowerCase());
    const configured = new Set<string>();
    const suffixes: string[] = [];
    for (const h of allowedHosts) {
      if (h.startsWith('.')) suffixes.push(h.toLowerCase());
      else if (h !== '*') configured.add(normalizeHost(h) ?? h.toLowerCase());
    }
    for (const h of configured) names.add(h);
    this.#names = names;
    this.#configured = configured;
    this.#suffixes = suffixes;
    this.#any = allowedHosts.includes('*');
  }

  /** True for a host name (no port) this server answers to. */
  allows(hostname: string): boolean {
    if (this.#any || this.#names.has(hostname) || net.isIP(hostname.replace(/^\[|\]$/g, '')) !== 0) return true;
    return this.#inSuffixes(hostname);
  }

  /** True for the host of an Origin that was named in allowedHosts (`*` does not count: it is about Host only). */
  allowsOrigin(hostname: string): boolean {
    return this.#configured.has(hostname) || this.#inSuffixes(hostname);
  }

  #inSuffixes(hostname: string): boolean {
    return this.#suffixes.some((s) => hostname.endsWith(s) || hostname === s.slice(1));
  }

  check(host: string | undefined): Refusal | undefined {
    if (host === undefined) return undefined;
    const hostname = normalizeHost(host);
    if (hostname !== undefined && this.allows(hostname)) return undefined;
    return {
      status: 421,
      code: 'E_MISDIRECTED',
      message: `this server does not answer to the host ${JSON.stringify(host.slice(0, 100))} (loopback names, IP addresses and the listen host are accepted; add a name to http.allowedHosts)`,
    };
  }
}

/** The host name of a Host header or Origin authority, lowercased, IPv6 in brackets, without the port; undefined if malformed. */
export function normalizeHost(host: string): string | undefined {
  const bare = net.isIPv6(host) ? `[${host}]` : host;
  try {
    const url = new URL(`http://${bare}/`);
    if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') return undefined;
    return url.hostname;
  } catch {
    return undefined;
  }
}

/**
 * A request that changes state (any method but GET, HEAD, OPTIONS) is refused when a browser says it comes from
 * another site: `Sec-Fetch-Site` other than `same-origin`/`none`, or an `Origin` that is not this server's own
 * (same host and port as `Host`) nor an allowed host. Its body, if any, must be JSON: `text/plain`, forms and
 * multipart are what a page can send cross-site without a preflight. Clients that are not browsers (curl, the
 * `hotconf` CLI) send neither header and no body, and pass.
 */
export function crossSiteRefusal(
  method: string,
  headers: { origin?: string | undefined; host?: string | undefined; 'sec-fetch-site'?: string | undefined; 'content-type'?: string | undefined },
  hosts: HostGuard,
): Refusal | undefined {
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return undefined;
  const forbid = (why: string): Refusal => ({ status: 403, code: 'E_CROSS_SITE', message: `cross-site ${method} refused: ${why}` });
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return forbid(`Sec-Fetch-Site is ${JSON.stringify(site.slice(0, 40))}`);
  const origin = headers.origin;
  if (origin !== undefined) {
    const url = URL.parse(origin);
    const sameOrigin = url !== null && headers.host !== undefined && url.host === URL.parse(`http://${headers.host}/`)?.host;
    if (!sameOrigin && !(url !== null && /^https?:$/.test(url.protocol) && hosts.allowsOrigin(url.hostname))) {
      return forbid(`Origin ${JSON.stringify(origin.slice(0, 100))} is not this server`);
    }
  }
  const type = headers['content-type'];
  if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
    return { status: 415, code: 'E_UNSUPPORTED_MEDIA_TYPE', message: `${method} takes no body or a JSON one (Content-Type: application/json), not ${JSON.stringify(type.slice(0, 60))}` };
  }
  return undefined;
}

export interface ConnectionLimitOptions {
  /** Connections answered normally; the ones past it get 503 + Retry-After and are closed. */
  maxConnections: number;
  /** Past maxConnections + this, Node closes a new connection at once (nothing is sent): the fds stay bounded. */
  headroom: number;
}

/**
 * Counts the server's connections. One past `maxConnections` is marked: its request is answered 503 with
 * Retry-After and the connection closed (see `isOver`). Past `maxConnections + headroom` Node itself refuses the
 * connection (server.maxConnections): it is closed without an answer, since answering costs the descriptor we
 * are out of.
 */
export class ConnectionLimit {
  #open = 0;
  readonly #over = new WeakSet<Socket>();

  constructor(server: Server, o: ConnectionLimitOptions) {
    server.maxConnections = o.maxConnections + o.headroom;
    server.on('connection', (socket: Socket) => {
      this.#open++;
      if (this.#open > o.maxConnections) this.#over.add(socket);
      socket.once('close', () => this.#open--);
    });
  }

  get open(): number {
    return this.#open;
  }

  isOver(socket: Socket): boolean {
    return this.#over.has(socket);
  }
}

/** The process's open-file limit (Node raises the soft limit to the hard one at start), from /proc; undefined elsewhere. */
export async function openFileLimit(): Promise<number | undefined> {
  const text = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(text)?.[1];
  return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
}
