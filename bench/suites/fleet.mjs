// Fleet simulation: 20 `hotconf run --etcd` processes on one etcd prefix (a real etcd, Debian's etcd-server, on
// free loopback ports with a temp data dir). A push of a 3-file change (the same guarded transaction as
// `hotconf push`) → the moment every instance has committed that revision, p50/p99 over repeated pushes; then the
// same right after etcd was killed (-9) and restarted on its data dir. Per-instance cost (RSS, bytes on the wire
// per change) feeds the projection to 1,000 instances in bench/FINDINGS.md. Skipped when etcd is not installed.
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdClient } from '../../dist/source/etcd/client.js';
import { onJsonLines } from '../lines.mjs';
import { pushEntries } from '../../dist/source/etcd/push.js';
import { median, pct, r1, sleep } from '../stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(root, 'dist', 'cli', 'main.js');

async function until(cond, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`fleet bench: timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function rssKiB(pid) {
  return readFile(`/proc/${pid}/status`, 'utf8').then(
    (s) => Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1] ?? NaN),
    () => NaN,
  );
}

/** etcd on free ports; kill9() and start() again on the same data dir. */
export async function etcdServer(dataDir) {
  const [cport, pport] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${cport}`;
  const peer = `http://127.0.0.1:${pport}`;
  const args = ['--name', 'bench', '--data-dir', dataDir, '--listen-client-urls', url, '--advertise-client-urls', url, '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer, '--initial-cluster', `bench=${peer}`, '--logger', 'zap', '--log-level', 'error',
    '--heartbeat-interval', '50', '--election-timeout', '500'];
  let child;
  const server = {
    url,
    get pid() {
      return child?.pid;
    },
    async start() {
      child = spawn('etcd', args, { stdio: 'ignore' });
      await until(async () => (await fetch(`${url}/health`).catch(() => undefined))?.ok, 'etcd health');
    },
    async kill9() {
      const c = child;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    },
  };
  await server.start();
  return server;
}

/** Counts the bytes etcd sends to one instance (a TCP forwarder in front of etcd). */
async function countingProxy(targetUrl) {
  const t = new URL(targetUrl);
  const sockets = new Set();
  const counter = { down: 0 };
  const srv = net.createServer((down) => {
    const up = net.connect(Number(t.port), t.hostname);
    sockets.add(down).add(up);
    up.on('data', (d) => (counter.down += d.length));
    const drop = () => {
      down.destroy();
      up.destroy();
    };
    down.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    down.pipe(up).pipe(down);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    counter,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => srv.close(r));
    },
  };
}

/** One `hotconf run --etcd` child; its "config committed" log lines give the commit time of each revision. */
function instance(url, prefix, schemaDir) {
  const child = spawn(process.execPath, [BIN, 'run', '--etcd', url, '--etcd-prefix', prefix, '--schema-dir', schemaDir, '--no-pretty', '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HOTCONF_') && k !== 'NOTIFY_SOCKET')) },
  });
  const committed = new Map(); // sourceRevision → epoch ms
  const state = { ready: false, errors: [], exited: false };
  onJsonLines(child.stdout, (l) => {
    if (l.msg === 'hotconf running') state.ready = true;
    if (l.msg === 'config committed' && l.sourceRevision) committed.set(l.sourceRevision, l.time);
    if (l.level >= 50) state.errors.push(l.msg);
  });
  child.stderr.on('data', () => undefined);
  child.once('exit', () => (state.exited = true));
  return {
    child,
    committed,
    state,
    async stop() {
      if (state.exited) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(3000)]);
      if (!state.exited) child.kill('SIGKILL');
    },
  };
}

export async function run({ full, log }) {
  const command = `npm run build && node bench/run.mjs --only=fleet${full ? ' --full' : ''}`;
  if (spawnSync('etcd', ['--version']).status !== 0) {
    log('etcd is not installed: skipping (apt-get install etcd-server etcd-client)');
    return {
      skipped: 'etcd not installed',
      tables: [{ id: 'fleet', title: 'Fleet: 20 instances on one etcd prefix', command, columns: ['result'], rows: [['skipped: `etcd` is not installed (apt-get install etcd-server etcd-client)']] }],
    };
  }
  const N = 20;
  const pushes = full ? 60 : 12;
  const restarts = full ? 10 : 3;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hotconf-fleet-'));
  const prefix = '/fleet/';
  await cp(path.join(root, 'schemas'), path.join(dir, 'schemas'), { recursive: true });
  const configs = ['app.yaml', 'db/primary.yaml', 'features.yaml'];
  const original = Object.fromEntries(await Promise.all(configs.map(async (f) => [f, await readFile(path.join(root, 'config', f), 'utf8')])));
  // A 3-file change: one value in each file (a comment-only change would be a new revision but not a new version).
  const edits = {
    'app.yaml': (t, i) => t.replace('requestTimeoutMs: 15000', `requestTimeoutMs: ${15000 + i}`),
    'db/primary.yaml': (t, i) => t.replace('idleTimeoutMs: 30000', `idleTimeoutMs: ${30000 + i}`),
    'features.yaml': (t, i) => t.replace('rolloutPercent: 25', `rolloutPercent: ${i % 101}`),
  };
  for (const f of configs) if (edits[f](original[f], 7) === original[f]) throw new Error(`fleet bench: config/${f} no longer has the value the bench edits`);
  const desired = (i) => new Map(configs.map((f) => [prefix + f, Buffer.from(edits[f](original[f], i))]));

  const etcd = await etcdServer(path.join(dir, 'etcd'));
  const client = await etcdClient({ endpoints: [etcd.url], prefix });
  const instances = [];
  let proxy;
  try {
    await pushEntries(client, prefix, desired(0));
    const etcdRssBefore = await rssKiB(etcd.pid);
    const loadBefore = os.loadavg()[0];
    proxy = await countingProxy(etcd.url);
    const t0 = Date.now();
    const converge = async (i, group = instances) => {
      const start = Date.now();
      const { revision } = await pushEntries(client, prefix, desired(i));
      const pushedAt = Date.now();
      await until(() => group.every((x) => x.committed.has(revision)), `all instances at revision ${revision}`);
      const last = Math.max(...group.map((x) => x.committed.get(revision)));
      const first = Math.min(...group.map((x) => x.committed.get(revision)));
      return { revision, pushMs: pushedAt - start, convergeMs: last - start, spreadMs: last - first };
    };

    // Baseline: the same pushes with one instance alone (what a host of a real fleet sees, without 19 other
    // processes competing for these 2 cores).
    instances.push(instance(proxy.url, prefix, path.join(dir, 'schemas')));
    await until(() => instances[0].state.ready || instances[0].state.exited, 'the first instance running', 180_000);
    const alone = [];
    const aloneT0 = Date.now();
    for (let i = 1; i <= pushes; i++) {
      alone.push(await converge(1000 + i, instances.slice(0, 1)));
      await sleep(50);
    }
    log(`one instance alone: p50 ${median(alone.map((s) => s.convergeMs))} ms`);
    const aloneMs = Date.now() - aloneT0;

    // Started four at a time: twenty Node processes loading gRPC at once on 2 shared cores only thrash.
    for (let i = 1; i < N; i++) {
      instances.push(instance(etcd.url, prefix, path.join(dir, 'schemas')));
      if (i % 4 === 3) await until(() => instances.every((x) => x.state.ready || x.state.exited), 'instances running', 180_000);
    }
    await until(() => instances.every((x) => x.state.ready || x.state.exited), 'all instances running', 180_000);
    if (instances.some((x) => x.state.exited)) throw new Error(`an instance exited: ${instances.flatMap((x) => x.state.errors).join('; ')}`);
    const startupS = (Date.now() - t0 - aloneMs) / 1000;
    log(`${N} instances running after ${startupS.toFixed(1)} s`);
    await sleep(500);
    const rss = await Promise.all(instances.map((x) => rssKiB(x.child.pid)));
    const etcdRssAfter = await rssKiB(etcd.pid);

    // Steady state: repeated pushes, one at a time.
    const steady = [];
    const bytesPerChange = [];
    for (let i = 1; i <= pushes; i++) {
      const before = proxy.counter.down;
      steady.push(await converge(i));
      bytesPerChange.push(proxy.counter.down - before);
      await sleep(50);
    }
    log(`steady: p50 ${median(steady.map((s) => s.convergeMs))} ms over ${pushes} pushes`);

    // etcd killed -9 and restarted on its data dir, then a push at once: reconnect + resume + the change.
    const restarted = [];
    for (let i = 0; i < restarts; i++) {
      await etcd.kill9();
      await sleep(300);
      const down = Date.now();
      await etcd.start();
      const up = Date.now();
      const r = await converge(pushes + 1 + i);
      restarted.push({ ...r, restartMs: up - down });
      await sleep(200);
    }
    log(`after restart: p50 ${median(restarted.map((s) => s.convergeMs))} ms over ${restarts} restarts`);
    const lost = instances.filter((x) => x.state.exited).length;
    const loadAfter = os.loadavg()[0];

    const s = steady.map((x) => x.convergeMs);
    const rr = restarted.map((x) => x.convergeMs);
    const valueBytes = [...desired(1).entries()].reduce((n, [k, v]) => n + k.length + v.length, 0);
    const raw = {
      instances: N,
      pushes,
      restarts,
      startupSeconds: r1(startupS),
      alone,
      steady,
      restarted,
      rssKiB: rss,
      etcdRssKiB: { before: etcdRssBefore, withWatchers: etcdRssAfter },
      bytesPerChangePerInstance: bytesPerChange,
      changeKeyValueBytes: valueBytes,
      instancesExited: lost,
      loadAverage1m: { before: r1(loadBefore), after: r1(loadAfter) },
    };
    return {
      ...raw,
      tables: [
        {
          id: 'fleet',
          title: `Fleet: ${N} hotconf instances (separate processes) on one etcd prefix, push of a 3-file change → all committed the same sourceRevision`,
          command,
          columns: ['scenario', 'pushes', 'push → all committed p50 ms', 'p99 ms', 'max ms', 'first → last instance p50 ms', 'push txn p50 ms'],
          rows: [
            ['baseline: 1 instance alone (etcd up)', pushes, median(alone.map((x) => x.convergeMs)), pct(alone.map((x) => x.convergeMs), 99), Math.max(...alone.map((x) => x.convergeMs)), '—', median(alone.map((x) => x.pushMs))],
            ['steady (etcd up)', pushes, median(s), pct(s, 99), Math.max(...s), median(steady.map((x) => x.spreadMs)), median(steady.map((x) => x.pushMs))],
            ['push right after etcd was killed (-9) and restarted on its data dir', restarts, median(rr), pct(rr, 99), Math.max(...rr), median(restarted.map((x) => x.spreadMs)), median(restarted.map((x) => x.pushMs))],
          ],
          notes: [
            `Every push is the guarded transaction of \`hotconf push\` (pushEntries, in the bench process), three keys rewritten in one etcd revision (${valueBytes} B of keys and values); the clock starts before the push's range read and stops at the latest "config committed" log time (pino, epoch ms) among the ${N} instances for that revision. Instances run \`hotconf run --etcd\` with default options (reconnect backoff 200 ms doubling to 5 s, full jitter); no instance missed a revision or exited (${lost} exited).`,
            `Restart rows: etcd SIGKILLed, 300 ms down, restarted on the same data dir (restart → healthy p50 ${median(restarted.map((x) => x.restartMs))} ms, not counted), then the push at once: the figure is the reconnect backoff + the resumed watch + the change.`,
            `Per instance: RSS median ${r1(median(rss) / 1024)} MiB (min ${r1(Math.min(...rss) / 1024)}, max ${r1(Math.max(...rss) / 1024)}); bytes etcd sent to one instance per change (counted by a TCP forwarder in front of instance 0, HTTP/2 + gRPC framing included) median ${median(bytesPerChange)} B. etcd RSS ${r1(etcdRssBefore / 1024)} MiB before the instances, ${r1(etcdRssAfter / 1024)} MiB with ${N} watchers. Start-up of all ${N} instances on this 2-core machine: ${r1(startupS)} s.`,
            `Machine load while measuring (1-min load average, before the instances / at the end): ${r1(loadBefore)} / ${r1(loadAfter)} on ${os.availableParallelism()} cores, shared with other work: the first → last spread is mostly ${N} processes waiting for a core; compare runs only at similar load.`,
          ],
        },
      ],
    };
  } finally {
    await Promise.all(instances.map((x) => x.stop()));
    await proxy?.close();
    client.close();
    await etcd.kill9();
    await rm(dir, { recursive: true, force: true });
  }
}
