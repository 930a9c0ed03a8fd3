// The etcd client as hotconf uses it: options, TLS and auth, gRPC limits and fault handling, and etcd3's errors
// turned into one line a person can act on. Shared by the etcd source and `hotconf push`.
import { readFile } from 'node:fs/promises';
import type { Etcd3, IOptions } from 'etcd3';
import { HotconfError } from '../../errors.js';

export interface EtcdTlsOptions {
  /** PEM file of the CA that signed etcd's server certificate. Default: the system's roots. */
  ca?: string;
  /** PEM file of this client's certificate (etcd `--client-cert-auth`). Default: none. */
  cert?: string;
  /** PEM file of this client's private key, with `cert`. Default: none. */
  key?: string;
}

export interface EtcdOptions {
  /** etcd client URLs, `http://HOST:PORT` or `https://HOST:PORT`. Required, at least one. */
  endpoints: readonly string[];
  /** Key prefix holding the configs, e.g. `/hotconf/` (a missing final `/` is added): `<prefix>app.yaml` is the
   *  config `app`. Required. */
  prefix: string;
  /** etcd user (etcd `auth enable`). Default: none. */
  username?: string;
  /** Password of `username`. Default: none. */
  password?: string;
  /** TLS files; also implied by `https://` endpoints. Default: none. */
  tls?: EtcdTlsOptions;
  /** Deadline of each unary request (range reads, the reconnect probe, push transactions), in ms. Default 5000. */
  requestTimeoutMs?: number;
  /** First delay before reconnecting after the connection is lost, in ms (doubles, with jitter). Default 200. */
  reconnectMinMs?: number;
  /** Longest delay between reconnect attempts, in ms. Default 5000. */
  reconnectMaxMs?: number;
  /** This instance's id in a fleet (its record under `<prefix>.hotconf/instances/`, canary choice). Default:
   *  $HOTCONF_INSTANCE_ID, else $POD_NAME, else $HOSTNAME under Kubernetes, else the host name. */
  instanceId?: string;
  /** Directory where each applied release is kept (one owner-only file per prefix), so that the instance can
   *  start from it while etcd is unreachable (then `stale`). Default: none (etcd unreachable at start fails). */
  cacheDir?: string;
}

export type EtcdConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface EtcdSourceStatus {
  readonly kind: 'etcd';
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly state: EtcdConnectionState;
  readonly connected: boolean;
  /** The last etcd revision seen (applied or about to be). */
  readonly revision: string;
  /** When `state` last changed (ms since the epoch). */
  readonly since: number;
  /** The last connection problem, while not connected. */
  readonly lastError: string | undefined;
  /** Full re-reads since start (compaction, a reset cluster, reload()). */
  readonly resyncs: number;
  /** `release`: the prefix holds a fleet head (`<prefix>.hotconf/head`); `plain`: its keys are the configs. */
  readonly mode: 'plain' | 'release';
  /** The release this instance serves (null in plain mode, or before its first). */
  readonly release: number | null;
  /** The release the head tells this instance to run (null in plain mode). */
  readonly target: number | null;
  readonly instanceId: string;
  /** Serving the cached release because etcd was unreachable at start, since `staleSince` (ms since the epoch). */
  readonly stale: boolean;
  readonly staleSince: number | null;
}

/** The etcd source failed: unreachable at start, authentication refused, a bad option. */
export class EtcdError extends HotconfError {}

export const ETCD_DEFAULTS = { requestTimeoutMs: 5000, reconnectMinMs: 200, reconnectMaxMs: 5000 };
/** Largest response accepted from etcd (a full read of the prefix is one response). */
const MAX_RECEIVE_BYTES = 256 * 1024 * 1024;

/** Checks the options and builds the etcd3 client (does not connect). */
export async function etcdClient(options: EtcdOptions): Promise<Etcd3> {
  checkEtcdOptions(options);
  // Loaded on first use: gRPC and protobuf cost ~0.5 s of start-up that directory users should not pay.
  const [{ Etcd3, isRecoverableError }, { circuitBreaker, ConsecutiveBreaker, handleWhen, retry }] = await Promise.all([import('etcd3'), import('cockatiel')]);
  const timeout = options.requestTimeoutMs ?? ETCD_DEFAULTS.requestTimeoutMs;
  const hosts = [...options.endpoints];
  const tls = options.tls;
  const secure = hosts.some((h) => h.startsWith('https://')) || tls !== undefined;
  const read = async (what: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file);
    } catch (err) {
      throw new EtcdError('E_OPTIONS', `etcd.tls.${what}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const ca = await read('ca', tls?.ca);
  const cert = await read('cert', tls?.cert);
  const key = await read('key', tls?.key);
  const opts: IOptions = {
    hosts,
    dialTimeout: timeout,
    grpcOptions: {
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      // A peer that vanished without a reset (a partition) is noticed within ~15 s, not at the next TCP timeout.
      // etcd refuses pings more often than every 5 s (--grpc-keepalive-min-time).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5000,
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    faultHandling: {
      // This module retries with its own backoff; etcd3's default breaker would hold a recovered etcd off for 5 s.
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 500, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: Math.max(0, hosts.length - 1) }),
    },
  };
  if (secure) {
    // etcd3 builds TLS credentials only from a root certificate; without one, Node's bundled roots are used.
    opts.credentials = { rootCertificate: ca ?? Buffer.from((await import('node:tls')).rootCertificates.join('\n')) };
    if (cert !== undefined) opts.credentials.certChain = cert;
    if (key !== undefined) opts.credentials.privateKey = key;
  }
  if (options.username !== undefined) opts.auth = { username: options.username, password: options.password ?? '' };
  return new Etcd3(opts);
}

export function checkEtcdOptions(o: EtcdOptions): void {
  const fail = (msg: string): never => {
    throw new EtcdError('E_OPTIONS', `invalid etcd options: ${msg}`);
  };
  if (typeof o !== 'object' || o === null) fail('an object is required');
  if (!Array.isArray(o.endpoints) || o.endpoints.length === 0) fail('`endpoints` (at least one http:// or https:// URL) is required');
  for (const e of o.endpoints) {
    if (typeof e !== 'string' || !/^https?:\/\/[^/\s]+\/?$/.test(e)) fail(`endpoint ${JSON.stringify(e)} is not http://HOST:PORT or https://HOST:PORT`);
  }
  if (typeof o.prefix !== 'string' || o.prefix === '') fail('`prefix` (e.g. "/hotconf/") is required');
  if (o.password !== undefined && o.username === undefined) fail('`password` needs `username`');
  if (o.instanceId !== undefined && !(typeof o.instanceId === 'string' && /^[^\s/]{1,253}$/.test(o.instanceId))) fail('`instanceId` must be 1 to 253 characters, no space or /');
  if (o.cacheDir !== undefined && !(typeof o.cacheDir === 'string' && o.cacheDir !== '')) fail('`cacheDir` must be a directory path');
  for (const k of ['requestTimeoutMs', 'reconnectMinMs', 'reconnectMaxMs'] as const) {
    const v = o[k];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) fail(`\`${k}\` must be a number > 0 (ms)`);
  }
}

/** Prefixes name a folder of keys: `/hotconf` is read as `/hotconf/` (or `/hotconfig/x.yaml` would match). */
export function normalizePrefix(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

/** `etcd:/hotconf/app.yaml`: how a key is named in messages, status and `ConfigEntry.path`. */
export function displayKey(key: string): string {
  return `etcd:${key}`;
}

/** Turns etcd3's errors into one line a person can act on. */
export function describeEtcdError(err: unknown, endpoints: readonly string[]): EtcdError {
  if (err instanceof EtcdError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const name = err instanceof Error ? err.constructor.name : '';
  if (/authentication failed|invalid user ?ID or password/i.test(msg) || name === 'EtcdAuthenticationFailedError') {
    return new EtcdError('E_SOURCE_AUTH', `etcd (${endpoints.join(',')}): authentication failed: wrong username or password`, { cause: err });
  }
  if (/permission denied/i.test(msg)) {
    return new EtcdError('E_SOURCE_AUTH', `etcd (${endpoints.join(',')}): permission denied: the user may not read the prefix`, { cause: err });
  }
  if (/user name is empty|authentication is not enabled|auth.*not.*enabled/i.test(msg) || /Unauthenticated/.test(name)) {
    return new EtcdError('E_SOURCE_AUTH', `etcd (${endpoints.join(',')}): ${msg}`, { cause: err });
  }
  // etcd answered, and refused the request's size: a limit of the server (--max-txn-ops, --max-request-bytes), not the network.
  if (/too many operations in txn request/i.test(msg)) {
    return new EtcdError('E_SOURCE_LIMIT', `etcd (${endpoints.join(',')}) refused the request: too many operations in one transaction (over etcd's --max-txn-ops, default 128); a release push (the default, not --plain) splits any directory into small transactions`, { cause: err });
  }
  if (/Received message larger than max/.test(msg)) {
    // grpc-js's own receive limit (etcd's Go server says "grpc: received message …", lower case)
    return new EtcdError('E_SOURCE_LIMIT', `etcd (${endpoints.join(',')}): a response is larger than this client accepts: ${msg}`, { cause: err });
  }
  if (/request is too large|received message larger than max|trying to send message larger/i.test(msg)) {
    return new EtcdError('E_SOURCE_LIMIT', `etcd (${endpoints.join(',')}) refused the request: it is larger than etcd accepts (--max-request-bytes, default 1.5 MiB): ${msg}`, { cause: err });
  }
  return new EtcdError('E_SOURCE_UNAVAILABLE', `etcd (${endpoints.join(',')}) is unreachable: ${msg}`, { cause: err });
}

/** The end of the key range of `prefix` (etcd's `--prefix`): the prefix with its last byte incremented. */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
