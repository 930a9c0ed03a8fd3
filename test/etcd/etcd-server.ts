// A real etcd for tests: its own data dir and free loopback ports, started and stopped by the test that needs it
// (and killed with the worker if a test dies). `kill9()` + `restart()` reuse the data dir, as a crashed member does.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { until } from '../helpers.js';

const run = promisify(execFile);

/** True when the etcd binary is installed (Debian's etcd-server); tests are skipped otherwise, except in CI. */
export const HAVE_ETCD = await run('etcd', ['--version']).then(
  () => true,
  () => false,
);
// CI installs etcd (.ci/run): there, a missing etcd must fail the run, not skip the fleet source's tests in silence.
if (!HAVE_ETCD && process.env.CI === 'true') {
  throw new Error('etcd is not installed (Debian: apt-get install etcd-server etcd-client) and CI=true: the etcd tests may not be skipped in CI');
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface EtcdServer extends AsyncDisposable {
  readonly url: string;
  readonly dataDir: string;
  /** A plain etcd3 client on this server (root credentials once auth is enabled with {@link enableAuth}). */
  client(auth?: { username: string; password: string }): Etcd3;
  /** etcdctl against this server. */
  ctl(...args: string[]): Promise<string>;
  /** SIGKILL, no goodbye: clients see the connection drop. */
  kill9(): Promise<void>;
  /** Starts again on the same data dir and ports; resolves when healthy. */
  restart(): Promise<void>;
  /** Deletes the data dir (etcd must be stopped): the next restart is a new cluster, revisions from 1. */
  wipe(): Promise<void>;
  /** Creates user `root` with `password`, grants it the root role and enables auth. */
  enableAuth(password: string): Promise<void>;
  stop(): Promise<void>;
}

export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A throw-away CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
export async function makeCerts(dir: string): Promise<TestCerts> {
  const f = (name: string) => path.join(dir, name);
  const ssl = (...args: string[]) => run('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=hotconf-test-ca');
  for (const [who, ext] of [['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    await ssl('req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? '127.0.0.1' : 'root'}`);
    await writeFile(f(`${who}.ext`), ext);
    await ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '1', '-extfile', `${who}.ext`);
  }
  return { dir, ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key') };
}

export async function startEtcd(options: { tls?: TestCerts; /** more etcd flags (limits) */ args?: readonly string[] } = {}): Promise<EtcdServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'hotconf-etcd-'));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const tls = options.tls;
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'test', '--data-dir', dataDir,
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`, '--initial-cluster-state', 'new',
    '--logger', 'zap', '--log-level', 'error',
    // Tests wait on conditions: make the member quick to elect itself after a restart.
    '--heartbeat-interval', '50', '--election-timeout', '500',
    ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : []),
    ...(options.args ?? []),
  ];
  let child: ChildProcess | undefined;
  let stderr = '';
  const tlsArgs = tls ? ['--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey] : [];
  const ctl = async (...a: string[]) =>
    (await run('etcdctl', ['--endpoints', url, ...tlsArgs, '--dial-timeout', '1s', ...a], { env: { ...process.env, ETCDCTL_API: '3' } })).stdout;
  const clients: Etcd3[] = [];

  const launch = async () => {
    const c = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(c);
    c.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    c.once('exit', () => live.delete(c));
    child = c;
    await until(
      async () => {
        if (c.exitCode !== null) throw new Error(`etcd exited with ${c.exitCode}: ${stderr}`);
        // etcdctl prints the health verdict on stderr.
        if (tls) return ctl('endpoint', 'health').then(() => true, () => false);
        const res = await fetch(`${url}/health`).catch(() => undefined);
        return res?.ok === true;
      },
      'etcd to be healthy',
      { timeoutMs: 20_000, intervalMs: 50 },
    );
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };

  try {
    await launch();
  } catch (err) {
    // Never leave an etcd behind when a test fails to start one.
    await kill();
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const server: EtcdServer = {
    url,
    dataDir,
    client(auth) {
      const c = new Etcd3({ hosts: url, ...(auth ? { auth } : {}) });
      clients.push(c);
      return c;
    },
    ctl,
    kill9: kill,
    restart: launch,
    async wipe() {
      if (child) throw new Error('wipe() needs etcd stopped');
      await rm(dataDir, { recursive: true, force: true });
    },
    async enableAuth(password) {
      await ctl('user', 'add', `root:${password}`);
      await ctl('user', 'grant-role', 'root', 'root');
      await ctl('auth', 'enable');
    },
    async stop() {
      for (const c of clients.splice(0)) c.close();
      await kill();
      await rm(dataDir, { recursive: true, force: true });
    },
    [Symbol.asyncDispose]() {
      return server.stop();
    },
  };
  return server;
}

export interface Proxy extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`, forwarding to the target. */
  readonly url: string;
  /** Drops every connection and refuses new ones (they are reset at once): a network cut. */
  cut(): void;
  /** Accepts connections again. */
  heal(): void;
  close(): Promise<void>;
}

/** A TCP forwarder in front of etcd, so that a test can cut one client off while etcd keeps serving others. */
export async function tcpProxy(targetUrl: string): Promise<Proxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<net.Socket>();
  let open = true;
  const server = net.createServer((down) => {
    if (!open) {
      down.resetAndDestroy();
      return;
    }
    const up = net.connect(Number(target.port), target.hostname);
    sockets.add(down).add(up);
    const drop = () => {
      down.destroy();
      up.destroy();
      sockets.delete(down);
      sockets.delete(up);
    };
    down.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const proxy: Proxy = {
    url: `http://127.0.0.1:${port}`,
    cut() {
      open = false;
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
    },
    heal() {
      open = true;
    },
    async close() {
      proxy.cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    [Symbol.asyncDispose]() {
      return proxy.close();
    },
  };
  return proxy;
}
