// Where the sidecar listens: a listen string ('HOST:PORT', '[IPV6]:PORT', 'unix:/path') parsed and checked with
// a message that says what is wrong, all-interfaces refused unless asked for, and the unix socket's life (a stale
// one left by a crash is cleared, a live one is refused, ours is removed on close).
import { lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { HotconfError } from '../errors.js';

export type ListenTarget = { host: string; port: number } | { path: string };

/** Longest unix socket path (sun_path is 108 bytes with its NUL on Linux). */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Parses a listen string: 'HOST:PORT', '[IPV6]:PORT' or 'unix:/path'. Throws HotconfError E_OPTIONS with a
 * message saying what is wrong. Refuses all-interfaces addresses (0.0.0.0, ::) unless `allowAllInterfaces`.
 */
export function parseListen(listen: string, allowAllInterfaces = false): ListenTarget {
  const fail = (why: string): never => {
    throw new HotconfError(
      'E_OPTIONS',
      `invalid listen address ${JSON.stringify(listen)}: ${why} (expected 'HOST:PORT', '[IPV6]:PORT' or 'unix:/path/to.sock', e.g. '127.0.0.1:8080')`,
    );
  };
  if (typeof listen !== 'string' || listen.trim() === '') return fail('it is empty');
  if (listen.startsWith('unix:')) {
    const path = listen.slice('unix:'.length);
    if (path === '') return fail('the socket path is missing');
    if (!path.startsWith('/')) return fail('the socket path must be absolute');
    if (path.includes('\0')) return fail('the socket path contains a NUL byte');
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) return fail(`the socket path is longer than ${MAX_SOCKET_PATH_BYTES} bytes`);
    return { path };
  }
  if (listen.includes('://')) return fail('it is an address, not a URL: leave out the scheme');
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]*)\]:([^:]*)$/.exec(listen);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (!net.isIPv6(host)) return fail(`${JSON.stringify(host)} is not an IPv6 address`);
  } else {
    const colon = listen.lastIndexOf(':');
    if (colon < 0) return fail('the port is missing');
    host = listen.slice(0, colon);
    portText = listen.slice(colon + 1);
    if (host.includes(':')) return fail('an IPv6 address must be written in brackets, as [::1]:8080');
    if (host === '') return fail('the host is missing');
    if (!net.isIPv4(host) && !/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(host)) {
      return fail(`${JSON.stringify(host)} is not an IPv4 address or a host name`);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65_535) return fail(`the port ${JSON.stringify(portText)} is not a number from 0 to 65535`);
  if (!allowAllInterfaces && isAllInterfaces(host)) {
    return fail(`${host} listens on every network interface; use 127.0.0.1 or a specific address, or set allowAllInterfaces`);
  }
  return { host, port: Number(portText) };
}

function isAllInterfaces(host: string): boolean {
  if (net.isIPv4(host)) return host === '0.0.0.0';
  // '::', '0:0::0', '::0' … all spell the unspecified address; the URL parser writes it in one canonical way.
  return net.isIPv6(host) && new URL(`http://[${host}]/`).hostname === '[::]';
}

/** A socket file left by a crashed run is removed; a live server's socket or any other file is refused. */
export async function clearStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st === undefined) return;
  if (!st.isSocket()) throw new HotconfError('E_OPTIONS', `cannot listen on ${path}: it exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new HotconfError('E_OPTIONS', `cannot listen on ${path}: another server is listening there`);
  await unlink(path);
}

export async function removeSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st?.isSocket()) await unlink(path).catch(() => undefined);
}
