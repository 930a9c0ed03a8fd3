// Fleet simulation: 20 `hotconf run --etcd` processes on one etcd prefix (a real etcd, Debian's etcd-server, on
// free loopback ports with a temp data dir). A push of a 3-file change (the same guarded transaction as
// `hotconf push`) → the moment every instance has committed that revision, p50/p99 over repeated pushes; then the
// same right after etcd was killed (-9) and restarted on its data dir. Per-instance cost (RSS, bytes on the wire
// per change) feeds the projection to 1,000 instances in bench/FINDINGS.md. Then fleet releases (issue 15): 20
// instances on a release-mode prefix, `hotconf push` of a 1,000-config tree (the real CLI) → every instance on the
// release; a canary to 2 of 20 then `hotconf rollout promote`; and the start of an instance from its cached release
// while etcd is down, against a start with etcd up. Skipped when etcd is not installed.
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdClient } from '../../dist/source/etcd/client.js';
import { onJsonLines, stopChild } from '../lines.mjs';
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
    stop: () => stopChild(child, state),
  };
}

/** `hotconf …` as a child process: its exit code, output and wall time. */
function cli(args, env = {}) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...childEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('exit', (code) => resolve({ code, out, err, ms: Date.now() - t0 }));
  });
}

const childEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HOTCONF_') && k !== 'NOTIFY_SOCKET'));

/** One `hotconf run --etcd` instance of a release fleet: the time it committed each release, from its log. */
function member(url, prefix, id, extra = []) {
  const t0 = Date.now();
  const child = spawn(process.execPath, [BIN, 'run', '--etcd', url, '--etcd-prefix', prefix, '--instance-id', id, '--no-pretty', '--log-level', 'info', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...childEnv(), HOTCONF_REQUIRE_SCHEMA: 'false' },
  });
  const applied = new Map(); // release → epoch ms of its commit (or of the start, for the first)
  const state = { ready: false, readyMs: undefined, errors: [], exited: false, exitCode: undefined };
  onJsonLines(child.stdout, (l) => {
    if (l.msg === 'hotconf running') {
      state.ready = true;
      state.readyMs = l.time - t0;
    }
    if (l.msg === 'hotconf ready' && l.release !== undefined && !applied.has(l.release)) applied.set(l.release, l.time);
    if (l.msg === 'config committed' && l.release !== undefined) applied.set(l.release, l.time);
    if (l.level >= 50) state.errors.push(l.msg);
  });
  child.stderr.on('data', () => undefined);
  child.once('exit', (code) => {
    state.exited = true;
    state.exitCode = code;
  });
  return {
    id,
    child,
    applied,
    state,
    stop: () => stopChild(child, state),
  };
}

/** 1,000 small YAML configs (~0.6 KB each), generation `g`; `changed` of them differ from generation 0. */
async function writeTree(dir, g, changed = 1000) {
  await rm(dir, { recursive: true, force: true });
  for (let i = 0; i < 1000; i++) {
    const v = i < changed ? g : 0;
    const file = path.join(dir, `svc${String(i % 20).padStart(2, '0')}`, `c${String(i).padStart(4, '0')}.yaml`);
    if (i < 20) await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, `# service ${i}\nserver:\n  port: ${8000 + (i % 1000)}\n  generation: ${v}\n  requestTimeoutMs: ${15000 + v}\n  tags: [a, b, c]\nlimits:\n  rps: ${100 + i}\n  burst: ${200 + i}\n${'# padding line to make the config about half a kilobyte\n'.repeat(6)}`);
  }
}

async function releases({ etcd, dir, full, log }) {
  const N = 20;
  const pushes = full ? 10 : 4;
  const prefix = '/fleet-releases/';
  const tree = path.join(dir, 'tree');
  const empty = path.join(dir, 'no-schemas');
  await mkdir(empty, { recursive: true });
  const env = { HOTCONF_REQUIRE_SCHEMA: 'false' };
  const push = async (extra = []) => {
    const r = await cli(['push', '--etcd', etcd.url, '--etcd-prefix', prefix, '--config-dir', tree, '--schema-dir', empty, '--json', ...extra], env);
    if (r.code !== 0) throw new Error(`fleet bench: hotconf push exited ${r.code}: ${r.err}`);
    return { ...JSON.parse(r.out), ms: r.ms };
  };
  await writeTree(tree, 0);
  const first = await push(['-m', 'bench: first release']);
  const cacheDir = path.join(dir, 'cache');
  const members = [];
  // Instance i01 reaches etcd through a counting forwarder: the bytes a push costs one instance.
  const proxy = await countingProxy(etcd.url);
  try {
    for (let i = 0; i < N; i++) {
      members.push(member(i === 1 ? proxy.url : etcd.url, prefix, `i${String(i).padStart(2, '0')}`, i === 0 ? ['--cache-dir', cacheDir] : []));
      if (i % 4 === 3) await until(() => members.every((x) => x.state.ready || x.state.exited), 'release instances running', 180_000);
    }
    await until(() => members.every((x) => x.state.ready || x.state.exited), 'all release instances running', 180_000);
    if (members.some((x) => x.state.exited)) throw new Error(`fleet bench: an instance exited: ${members.flatMap((x) => x.state.errors).join('; ')}`);
    await until(() => members.every((x) => x.applied.has(first.release)), 'every instance on the first release', 60_000);
    log(`${N} release instances on release ${first.release}`);
    const rss = await Promise.all(members.map((x) => rssKiB(x.child.pid)));

    // Push → every instance committed the release: all 1,000 configs changed, then 10 of them.
    const rounds = async (changed, g0) => {
      const out = [];
      for (let k = 0; k < pushes; k++) {
        await writeTree(tree, g0 + k, changed);
        const bytes0 = proxy.counter.down;
        const t0 = Date.now();
        const r = await push(['-m', `bench ${g0 + k}`]);
        await until(() => members.every((x) => x.applied.has(r.release)), `every instance on release ${r.release}`, 120_000);
        const times = members.map((x) => x.applied.get(r.release));
        out.push({ release: r.release, pushMs: r.ms, convergeMs: Math.max(...times) - t0, spreadMs: Math.max(...times) - Math.min(...times), bytesToOneInstance: proxy.counter.down - bytes0 });
        await sleep(200);
      }
      return out;
    };
    const all = await rounds(1000, 1000);
    log(`1,000 changed: p50 ${median(all.map((x) => x.convergeMs))} ms`);
    // Back to the base tree first (not counted: every config differs from the last round), then 10 changed a push.
    await writeTree(tree, 0);
    const base = await push(['-m', 'bench: base tree again']);
    await until(() => members.every((x) => x.applied.has(base.release)), 'every instance on the base tree', 120_000);
    const few = await rounds(10, 2000);
    log(`10 changed: p50 ${median(few.map((x) => x.convergeMs))} ms`);

    // Canary to 2 of 20, then promote.
    await writeTree(tree, 3000, 10);
    const c0 = Date.now();
    const canaryPush = await push(['--canary', '2', '-m', 'bench canary']);
    const ids = canaryPush.canary?.ids ?? [];
    const canaries = members.filter((x) => ids.includes(x.id));
    await until(() => canaries.length === 2 && canaries.every((x) => x.applied.has(canaryPush.release)), 'the 2 canaries on the release', 60_000);
    const canaryMs = Math.max(...canaries.map((x) => x.applied.get(canaryPush.release))) - c0;
    await sleep(500);
    const othersStayed = members.filter((x) => !ids.includes(x.id)).every((x) => !x.applied.has(canaryPush.release));
    const p0 = Date.now();
    const promote = await cli(['rollout', 'promote', '--etcd', etcd.url, '--etcd-prefix', prefix], env);
    if (promote.code !== 0) throw new Error(`fleet bench: rollout promote exited ${promote.code}: ${promote.err}`);
    await until(() => members.every((x) => x.applied.has(canaryPush.release)), 'all on the promoted release', 60_000);
    const promoteMs = Math.max(...members.map((x) => x.applied.get(canaryPush.release))) - p0;
    log(`canary 2/20: ${canaryMs} ms, promote → all: ${promoteMs} ms`);

    // Start from the cache (etcd down) against a start with etcd up: the cached instance is i00, alone (the 19
    // others would be reconnecting to the stopped etcd meanwhile, competing for the 2 cores).
    await Promise.all(members.map((x) => x.stop()));
    const startUp = [];
    const startCached = [];
    for (let k = 0; k < (full ? 5 : 3); k++) {
      const up = member(etcd.url, prefix, 'i00', ['--cache-dir', cacheDir]);
      await until(() => up.state.ready || up.state.exited, 'a start with etcd up', 60_000);
      startUp.push(up.state.readyMs);
      await up.stop();
      await etcd.kill9();
      const cached = member(etcd.url, prefix, 'i00', ['--cache-dir', cacheDir]);
      await until(() => cached.state.ready || cached.state.exited, 'a start from the cache', 60_000);
      if (cached.state.exited) throw new Error(`fleet bench: the cached start exited ${cached.state.exitCode}`);
      startCached.push(cached.state.readyMs);
      await cached.stop();
      await etcd.start();
    }
    log(`start: etcd up p50 ${median(startUp)} ms, from the cache (etcd down) p50 ${median(startCached)} ms`);
    const treeBytes = (await Promise.all([...Array(1000).keys()].map((i) => readFile(path.join(tree, `svc${String(i % 20).padStart(2, '0')}`, `c${String(i).padStart(4, '0')}.yaml`)).then((b) => b.length)))).reduce((a, b) => a + b, 0);
    return { N, pushes, rss, treeBytes, all, few, canary: { ids, canaryMs, promoteMs, othersStayed }, startUp, startCached, firstPushMs: first.ms };
  } finally {
    await Promise.all(members.map((x) => x.stop()));
    await proxy.close();
  }
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
    // The plain-key fleet makes room for the release fleet (2 cores).
    await Promise.all(instances.map((x) => x.stop()));
    const rel = await releases({ etcd, dir, full, log });
    const relTimes = (xs) => xs.map((x) => x.convergeMs);

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
      releases: rel,
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
        {
          id: 'fleet-releases',
          title: `Fleet releases: ${rel.N} instances on a release-mode prefix, \`hotconf push\` of a 1,000-config tree → every instance on the release`,
          command,
          columns: ['scenario', 'runs', 'p50 ms', 'p99 ms', 'max ms', 'first → last instance p50 ms', 'push command p50 ms'],
          rows: [
            ['push, all 1,000 configs changed → all 20 on the release', rel.pushes, median(relTimes(rel.all)), pct(relTimes(rel.all), 99), Math.max(...relTimes(rel.all)), median(rel.all.map((x) => x.spreadMs)), median(rel.all.map((x) => x.pushMs))],
            ['push, 10 of the 1,000 changed → all 20 on the release', rel.pushes, median(relTimes(rel.few)), pct(relTimes(rel.few), 99), Math.max(...relTimes(rel.few)), median(rel.few.map((x) => x.spreadMs)), median(rel.few.map((x) => x.pushMs))],
            ['push --canary 2 → the 2 canaries on it', 1, rel.canary.canaryMs, '—', '—', '—', '—'],
            ['rollout promote → all 20 on it', 1, rel.canary.promoteMs, '—', '—', '—', '—'],
            ['instance start, etcd up → ready', rel.startUp.length, median(rel.startUp), pct(rel.startUp, 99), Math.max(...rel.startUp), '—', '—'],
            ['instance start from its cached release, etcd down → ready (stale)', rel.startCached.length, median(rel.startCached), pct(rel.startCached, 99), Math.max(...rel.startCached), '—', '—'],
          ],
          notes: [
            `Each push is the real CLI (\`hotconf push --json\`, a child process: Node start, validation of the 1,000 files, upload, the head switch); the clock starts before it is spawned and stops at the latest "config committed" (pino epoch ms) for that release among the ${rel.N} instances. 1,000 YAML configs (${Math.round(rel.treeBytes / 1024)} KiB in all); an instance fetches only the configs it does not hold (by sha) and parses only those that differ from the release it serves.`,
            `Canary: \`push --canary 2\` chose ${rel.canary.ids.join(', ')} by the stable hash of their ids; the other 18 stayed on the stable release until \`hotconf rollout promote\` (${rel.canary.othersStayed ? 'checked' : 'NOT the case'}); the promote row runs from the promote command's spawn to the last instance's commit.`,
            `Bytes etcd sent to one instance per push (a TCP forwarder in front of instance i01; the head event, the manifest, the configs it did not hold, its own record's lease and heartbeat traffic meanwhile): median ${median(rel.all.map((x) => x.bytesToOneInstance))} B with all 1,000 configs changed (~${Math.round(rel.treeBytes / 1024)} KiB of configs), ${median(rel.few.map((x) => x.bytesToOneInstance))} B with 10 changed. In release mode an instance watches the head key alone: other pushes' uploads and the other instances' records never reach it.`,
            `Start rows: \`hotconf run --etcd … --cache-dir\` alone (the other instances stopped), from spawn to "hotconf running" (the daemon ready); from the cache, etcd is down (killed), the cached release is validated again and served as stale. RSS of a release-mode instance holding the 1,000 configs: median ${r1(median(rel.rss) / 1024)} MiB.`,
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
