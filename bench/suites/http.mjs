// HTTP sidecar benchmarks: GET /v1/configs/:name throughput (autocannon) against a bare fastify route serving the
// same JSON, and SSE fan-out latency to 1,000 clients against a bare http.createServer broadcasting the same chunk.
// Servers run in this process; every load generator / SSE client runs in a child process so that client and server
// do not share one event loop (the box has 2 cores: one each, roughly).
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { pino } from 'pino';
import { createHotconf } from '../../dist/index.js';
import { startHttpServer } from '../../dist/http/index.js';
import { median, pct, r1, r2, r3, sleep } from '../stats.mjs';

const require = createRequire(import.meta.url);
const AUTOCANNON = require.resolve('autocannon');
const now = () => performance.timeOrigin + performance.now();

/** A realistic ~1 KB service config (no secrets: the redaction path is a no-op, as for most configs). */
function appConfig() {
  return {
    name: 'shop-api',
    environment: 'production',
    server: { host: '127.0.0.1', port: 8080, requestTimeoutMs: 15000, keepAliveTimeoutMs: 5000, bodyLimitBytes: 1048576, trustProxy: true },
    log: { level: 'info', format: 'json', redact: ['req.headers.authorization', 'req.headers.cookie'] },
    cors: { allowedOrigins: ['https://shop.example.com', 'https://admin.example.com'], allowCredentials: true, maxAgeSeconds: 600 },
    database: { host: 'db-primary.internal', port: 5432, name: 'shop', poolMin: 2, poolMax: 20, statementTimeoutMs: 5000, ssl: { mode: 'verify-full', rootCert: '/etc/ssl/certs/db-ca.pem' } },
    cache: { driver: 'redis', host: 'redis.internal', port: 6379, ttlSeconds: 300, maxEntries: 100000, keyPrefix: 'shop:' },
    rateLimit: { enabled: true, windowMs: 60000, max: 600, skipPaths: ['/healthz', '/readyz', '/metrics'] },
    features: { newCheckout: { enabled: true, rolloutPercent: 25 }, recommendations: { enabled: false }, darkMode: { enabled: true, rolloutPercent: 100 } },
    payments: { provider: 'stripe', currency: 'EUR', captureDelayMinutes: 30, webhookPath: '/hooks/payments', retries: { max: 5, backoffMs: 250 } },
    email: { from: 'shop@example.com', smtpHost: 'smtp.internal', smtpPort: 587, templatesDir: '/srv/templates' },
    tracing: { enabled: true, sampleRate: 0.05, exporter: 'otlp', endpoint: 'http://otel-collector:4318' },
  };
}

/** Runs autocannon in a child process (its programmatic API) and returns the figures we report. */
function autocannon(opts) {
  const code = `
    const ac = require(${JSON.stringify(AUTOCANNON)});
    ac(JSON.parse(process.env.AC_OPTS), (err, r) => {
      if (err) { console.error(err); process.exit(1); }
      process.stdout.write(JSON.stringify({
        rps: r.requests.total / r.duration, total: r.requests.total, p50: r.latency.p50, p99: r.latency.p99,
        ok2xx: r['2xx'], non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts, statusCodeStats: r.statusCodeStats,
        duration: r.duration,
      }));
    });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { env: { ...process.env, AC_OPTS: JSON.stringify(opts) }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (rc) => (rc === 0 ? resolve(JSON.parse(out)) : reject(new Error(`autocannon child exited ${rc}`))));
  });
}

// ---- SSE client child: opens raw http.request streams, reports when every client of a tag got an event ----
const SSE_CLIENT = `
const net = require('node:net');
const now = () => performance.timeOrigin + performance.now();
const reqs = [];
const counts = new Map(); // "tag:event:id" -> { n, first, last }
const expect = new Map(); // tag -> number of clients
function seen(tag, type, id, t) {
  const key = tag + ':' + type + ':' + id;
  let c = counts.get(key);
  if (!c) counts.set(key, (c = { n: 0, first: t, last: t }));
  c.n++; c.last = t;
  if (c.n === expect.get(tag)) { counts.delete(key); process.send({ type: 'event', tag, event: type, id, first: c.first, last: c.last }); }
}
// Raw TCP sockets, not http.request: the client side is the bottleneck of a 1,000-way fan-out on 2 cores, so it
// does the least work possible. Each SSE event is one res.write() on the server, hence one HTTP chunk: an event is
// never split by chunked framing, only possibly across TCP reads (handled by the buffer).
const EVENT = /id: (\\d+)\\nevent: (\\w+)\\n[^\\n]*\\n\\n/g;
function open(tag, url) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    sock.setNoDelay(true);
    sock.setEncoding('latin1');
    let buf = '';
    let hello = false;
    sock.on('connect', () => sock.write('GET ' + u.pathname + ' HTTP/1.1\\r\\nHost: ' + u.host + '\\r\\nAccept: text/event-stream\\r\\n\\r\\n'));
    sock.on('data', (chunk) => {
      const t = now();
      buf += chunk;
      if (!hello && !buf.startsWith('HTTP/1.1 200')) return reject(new Error(tag + ': ' + buf.slice(0, 200)));
      EVENT.lastIndex = 0;
      let m, end = 0;
      while ((m = EVENT.exec(buf)) !== null) {
        end = EVENT.lastIndex;
        if (m[2] === 'hello' && !hello) { hello = true; resolve(); }
        else if (m[2] === 'change') seen(tag, m[2], m[1], t);
      }
      if (end > 0) buf = buf.slice(end);
    });
    sock.on('error', reject);
    reqs.push(sock);
  });
}
process.on('message', async (m) => {
  try {
    if (m.type === 'open') {
      expect.set(m.tag, m.count);
      for (let i = 0; i < m.count; i += m.batch) {
        const n = Math.min(m.batch, m.count - i);
        await Promise.all(Array.from({ length: n }, () => open(m.tag, m.url)));
      }
      process.send({ type: 'opened', tag: m.tag });
    } else if (m.type === 'clock') {
      process.send({ type: 'clock', seq: m.seq, t: now() });
    } else if (m.type === 'close') {
      for (const r of reqs) r.destroy();
      process.disconnect();
    }
  } catch (err) {
    process.send({ type: 'error', message: String(err && err.stack || err) });
  }
});
`;

function startSseClients() {
  const child = spawn(process.execPath, ['-e', SSE_CLIENT], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiters = new Map();
  child.on('message', (m) => {
    if (m.type === 'error') {
      for (const w of waiters.values()) w.reject(new Error(m.message));
      waiters.clear();
      return;
    }
    const key = m.type === 'event' ? `event:${m.tag}:${m.id}` : m.type === 'clock' ? `clock:${m.seq}` : `${m.type}:${m.tag}`;
    const w = waiters.get(key);
    if (w) {
      waiters.delete(key);
      w.resolve(m);
    }
  });
  const waitFor = (key, timeoutMs = 15000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(key);
        reject(new Error(`timed out waiting for ${key}`));
      }, timeoutMs);
      waiters.set(key, { resolve: (m) => (clearTimeout(timer), resolve(m)), reject: (e) => (clearTimeout(timer), reject(e)) });
    });
  return {
    async open(tag, url, count) {
      const p = waitFor(`opened:${tag}`, 60000);
      child.send({ type: 'open', tag, url, count, batch: 100 });
      await p;
    },
    waitEvent: (tag, id) => waitFor(`event:${tag}:${id}`),
    /** Offset of the child's clock from ours (child - parent), from the IPC round trip with the smallest RTT. */
    async clockOffset(samples = 30) {
      let best;
      for (let seq = 0; seq < samples; seq++) {
        const p = waitFor(`clock:${seq}`);
        const t0 = now();
        child.send({ type: 'clock', seq });
        const { t } = await p;
        const t1 = now();
        if (!best || t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: t - (t0 + t1) / 2 };
      }
      return best;
    },
    async close() {
      const exited = new Promise((r) => child.once('exit', r));
      if (child.connected) child.send({ type: 'close' });
      const t = setTimeout(() => child.kill(), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** The bare SSE baseline: http.createServer, the same headers and preamble, one shared string written to all. */
async function startBareSse() {
  const clients = new Set();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', Connection: 'close', 'X-Accel-Buffering': 'no' });
    res.write(`retry: 2000\n\nid: 0\nevent: hello\ndata: {"version":0}\n\n`);
    clients.add(res);
    res.on('close', () => clients.delete(res));
  });
  server.maxConnections = 100000;
  await new Promise((r) => server.listen(0, '127.0.0.1', 511, r));
  return {
    url: `http://127.0.0.1:${server.address().port}/v1/events`,
    broadcast(chunk) {
      for (const res of clients) res.write(chunk);
    },
    async close() {
      for (const res of clients) res.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

async function atomicWrite(file, text) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

export async function run({ full, log }) {
  const suiteStart = Date.now();
  const logger = pino({ level: 'silent' });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hotconf-bench-http-'));
  const configDir = path.join(dir, 'config');
  const cfg = appConfig();
  const body = JSON.stringify(cfg);
  await (await import('node:fs/promises')).mkdir(configDir);
  await writeFile(path.join(configDir, 'app.json'), JSON.stringify(cfg, null, 2));
  await writeFile(path.join(configDir, 'flags.json'), JSON.stringify({ counter: 0, enabled: true }));

  const hot = await createHotconf({ configDir, requireSchema: false, logger });
  // Registered before the HTTP server's own subscription, so it is called first after each commit: the
  // commit timestamp for 7b. (onBatch fires only after the post-commit re-stat, i.e. after the SSE broadcast.)
  let onCommit;
  hot.onConfigChange((change) => onCommit?.(change, now()));
  const server = await startHttpServer(hot, { listen: '127.0.0.1:0', logger, heartbeatMs: 3_600_000 });

  const bare = Fastify({ logger: false });
  const etag = `"${hot.snapshot().configs.get('app').hash}"`;
  bare.get('/v1/configs/*', (req, reply) => {
    reply.header('ETag', etag);
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    return cfg;
  });
  await bare.listen({ host: '127.0.0.1', port: 0 });
  const bareUrl = `http://127.0.0.1:${bare.server.address().port}`;

  const tables = [];
  const raw = {};
  let sse;
  let bareSse;
  try {
    // ---- sanity: both serve the same bytes -------------------------------------------------------------
    const [hb, bb] = await Promise.all([fetch(`${server.url}/v1/configs/app`).then((r) => r.text()), fetch(`${bareUrl}/v1/configs/app`).then((r) => r.text())]);
    if (hb !== body || bb !== body) throw new Error(`bodies differ: hotconf ${hb.length} B, bare ${bb.length} B, expected ${body.length} B`);
    log(`GET payload ${Buffer.byteLength(body)} B, identical from both servers`);

    // ---- 7a: GET /v1/configs/app req/s ------------------------------------------------------------------
    const connections = 10;
    const duration = full ? 30 : 2;
    const rounds = full ? 3 : 3;
    const warmup = 2;
    const variants = [
      { key: 'bare', label: 'bare fastify 5 route (200, same JSON)', url: `${bareUrl}/v1/configs/app`, headers: {} },
      { key: 'hotconf', label: 'hotconf GET /v1/configs/app (200)', url: `${server.url}/v1/configs/app`, headers: {}, baseline: 'bare' },
      { key: 'bare304', label: 'bare fastify 5 route, If-None-Match (304)', url: `${bareUrl}/v1/configs/app`, headers: { 'if-none-match': etag } },
      { key: 'hotconf304', label: 'hotconf GET /v1/configs/app, If-None-Match (304)', url: `${server.url}/v1/configs/app`, headers: { 'if-none-match': etag }, baseline: 'bare304' },
    ];
    for (const v of [variants[0], variants[1]]) {
      log(`warm-up ${v.key} ${warmup} s`);
      await autocannon({ url: v.url, connections, duration: warmup, headers: v.headers });
    }
    const runs = Object.fromEntries(variants.map((v) => [v.key, []]));
    for (let round = 0; round < rounds; round++) {
      for (const v of variants) {
        const cpu0 = process.cpuUsage();
        const res = await autocannon({ url: v.url, connections, duration, headers: v.headers });
        const cpu = process.cpuUsage(cpu0);
        // Server CPU per request (this process: user + system): far less sensitive than req/s to other load
        // on the box, since it counts only the cycles this process spent.
        res.serverCpuUsPerReq = (cpu.user + cpu.system) / res.total;
        const expected = v.key.endsWith('304') ? 304 : 200;
        const good = res.statusCodeStats?.[expected]?.count ?? (expected === 200 ? res.ok2xx : res.non2xx);
        if (res.errors || res.timeouts || good !== res.total) log(`WARNING ${v.key}: ${JSON.stringify(res)}`);
        runs[v.key].push(res);
        log(`round ${round + 1}/${rounds} ${v.key}: ${Math.round(res.rps)} req/s, p99 ${res.p99} ms, server ${r1(res.serverCpuUsPerReq)} µs CPU/req`);
      }
    }
    const summary = Object.fromEntries(
      variants.map((v) => [v.key, { rps: median(runs[v.key].map((r) => r.rps)), p99: median(runs[v.key].map((r) => r.p99)), cpu: median(runs[v.key].map((r) => r.serverCpuUsPerReq)) }]),
    );
    raw.get = { connections, durationSeconds: duration, rounds, warmupSeconds: warmup, payloadBytes: Buffer.byteLength(body), runs, summary };
    tables.push({
      id: 'http-get',
      title: 'HTTP: GET /v1/configs/:name throughput vs a bare fastify route',
      command: `npm run build && node bench/run.mjs --only=http${full ? ' --full' : ''}`,
      columns: ['server', 'req/s (median)', 'p99 latency ms (median)', 'ratio to bare', 'target (≥ 70%)', 'met?', 'server CPU µs/req (median)', 'CPU ratio (bare ÷ this)'],
      rows: variants.map((v) => {
        const s = summary[v.key];
        if (!v.baseline) return [v.label, Math.round(s.rps), s.p99, '1.00 (baseline)', '—', '—', r1(s.cpu), '1.00 (baseline)'];
        const ratio = s.rps / summary[v.baseline].rps;
        const cpuRatio = summary[v.baseline].cpu / s.cpu;
        return [v.label, Math.round(s.rps), s.p99, `${ratio.toFixed(2)} (${Math.round(ratio * 100)}%)`, '≥ 70%', ratio >= 0.7 ? 'yes' : 'no', r1(s.cpu), `${cpuRatio.toFixed(2)} (${Math.round(cpuRatio * 100)}%)`];
      }),
      notes: [
        `autocannon ${require('autocannon/package.json').version} (programmatic API) in a child process, ${connections} connections, keep-alive, loopback; ${duration} s per run after one ${warmup} s warm-up per server; ${rounds} alternated rounds (bare, hotconf, bare 304, hotconf 304), median of the rounds. Servers share this process; the client has its own.`,
        `Payload: the same ${Buffer.byteLength(body)}-byte JSON config from both (checked byte-equal). The bare route sets ETag and answers If-None-Match with 304, nothing else; hotconf also sends X-Hotconf-Version, Cache-Control and Vary, and the 304 rows' baseline is the bare 304.`,
        'Server CPU µs/req = process.cpuUsage() (user + system) of the server process over the run ÷ requests completed; the CPU ratio (bare ÷ hotconf, i.e. the req/s hotconf would reach relative to bare if CPU-bound) is the figure to trust when the box is shared, as req/s moves with whatever else runs.',
        full ? 'Full mode.' : 'Quick mode: runs are short (2 s × 3 rounds) to keep the suite under ~45 s; use --full (30 s × 3 rounds) for steadier figures. req/s = requests completed / run duration.',
      ],
    });

    // ---- 7b: SSE fan-out -----------------------------------------------------------------------------------
    const clients = 1000;
    const commits = full ? 100 : 20;
    sse = startSseClients();
    bareSse = await startBareSse();
    const t0 = now();
    await sse.open('hot', `${server.url}/v1/events`, clients);
    await sse.open('bare', bareSse.url, clients);
    log(`SSE: ${clients} + ${clients} clients open in ${Math.round(now() - t0)} ms`);
    const clock = await sse.clockOffset();
    log(`SSE: child clock offset ${r3(clock.offset)} ms (IPC RTT ${r3(clock.rtt)} ms)`);
    const flagsFile = path.join(configDir, 'flags.json');
    const hotLat = [];
    const hotFromWrite = [];
    const hotSpread = [];
    const bareLat = [];
    const bareSpread = [];
    const hotWrite = [];
    const bareWrite = [];
    let lastChunk;
    const toParent = (t) => t - clock.offset;

    const hotCommit = async (k) => {
      let written;
      const loopDone = new Promise((resolve) => (written = resolve));
      // setImmediate from inside the first handler: runs once the HTTP server's handler (next in line, same
      // microtask queue) has written the event to every client: the server-side cost of the broadcast.
      const committed = new Promise((resolve) => (onCommit = (change, t) => (setImmediate(() => written(now())), resolve({ change, t }))));
      const tw = now();
      await atomicWrite(flagsFile, JSON.stringify({ counter: k, enabled: true }));
      const { change, t } = await committed;
      onCommit = undefined;
      const hashes = {};
      for (const name of change.changed) hashes[name] = change.current.configs.get(name)?.hash;
      const data = JSON.stringify({ version: change.version, changed: change.changed, removed: change.removed, hashes });
      lastChunk = `id: ${change.version}\nevent: change\ndata: ${data}\n\n`;
      const m = await sse.waitEvent('hot', String(change.version));
      hotLat.push(toParent(m.last) - t);
      hotFromWrite.push(toParent(m.last) - tw);
      hotSpread.push(m.last - m.first);
      hotWrite.push((await loopDone) - t);
    };
    const bareCommit = async (k) => {
      // The same chunk hotconf sent for its last version, with the baseline's own id sequence.
      const chunk = lastChunk.replace(/^id: \d+/, `id: ${k}`);
      const p = sse.waitEvent('bare', String(k));
      const t = now();
      const loopDone = new Promise((resolve) => setImmediate(() => resolve(now())));
      bareSse.broadcast(chunk);
      const m = await p;
      bareWrite.push((await loopDone) - t);
      bareLat.push(toParent(m.last) - t);
      bareSpread.push(m.last - m.first);
    };
    // One unmeasured warm-up each, then alternate which server goes first.
    await hotCommit(1);
    await bareCommit(1);
    hotLat.length = hotFromWrite.length = hotSpread.length = bareLat.length = bareSpread.length = hotWrite.length = bareWrite.length = 0;
    for (let k = 2; k < commits + 2; k++) {
      if (k % 2) {
        await bareCommit(k);
        await sleep(20);
        await hotCommit(k);
      } else {
        await hotCommit(k);
        await sleep(20);
        await bareCommit(k);
      }
      await sleep(20);
    }
    const hs = { p50: median(hotLat), p99: pct(hotLat, 99), max: Math.max(...hotLat) };
    const bs = { p50: median(bareLat), p99: pct(bareLat, 99), max: Math.max(...bareLat) };
    const hw = { p50: median(hotFromWrite), p99: pct(hotFromWrite, 99) };
    raw.sse = {
      clients,
      commits,
      chunkBytes: Buffer.byteLength(lastChunk),
      clock,
      hotconfCommitToLastClientMs: hotLat.map(r3),
      hotconfWriteToLastClientMs: hotFromWrite.map(r3),
      hotconfFirstToLastClientMs: hotSpread.map(r3),
      bareBroadcastToLastClientMs: bareLat.map(r3),
      bareFirstToLastClientMs: bareSpread.map(r3),
      hotconfServerWriteLoopMs: hotWrite.map(r3),
      bareServerWriteLoopMs: bareWrite.map(r3),
      summary: { hotconf: hs, bare: bs, hotconfFromWrite: hw },
    };
    tables.push({
      id: 'http-sse',
      title: `HTTP: SSE fan-out of one change event to ${clients.toLocaleString('en')} clients`,
      command: `npm run build && node bench/run.mjs --only=http${full ? ' --full' : ''}`,
      columns: ['server', 'commit → last client p50 ms', 'p99 ms', 'max ms', 'p50 ratio to bare', 'p99 ratio to bare', 'server write loop p50 ms', 'write loop p50 ratio', 'first → last client p50 ms'],
      rows: [
        ['bare http.createServer, one shared string written to 1,000 responses', r2(bs.p50), r2(bs.p99), r2(bs.max), '1.00 (baseline)', '1.00 (baseline)', r2(median(bareWrite)), '1.00 (baseline)', r2(median(bareSpread))],
        ['hotconf GET /v1/events (commit → last client)', r2(hs.p50), r2(hs.p99), r2(hs.max), (hs.p50 / bs.p50).toFixed(2), (hs.p99 / bs.p99).toFixed(2), r2(median(hotWrite)), (median(hotWrite) / median(bareWrite)).toFixed(2), r2(median(hotSpread))],
        ['hotconf, from the file rename (watcher + debounce + read + commit + fan-out; no baseline)', r2(hw.p50), r2(hw.p99), r2(Math.max(...hotFromWrite)), '—', '—', '—', '—', '—'],
      ],
      notes: [
        `${commits} commits per server (plus one unmeasured warm-up), alternated; each commit waits until all ${clients} clients of both servers have the previous event. hotconf commits are driven by atomic file writes (temp + rename) of a small flags.json; "commit" is the timestamp taken in an onConfigChange handler registered before the HTTP server's own (called first, in the same tick, just before the broadcast; hotconf's onBatch fires only after the post-commit re-stat, after the broadcast). The baseline's clock starts just before its write loop.`,
        `Event chunk ${Buffer.byteLength(lastChunk)} B (hotconf's own change event, reused verbatim by the baseline). All ${2 * clients} clients are raw TCP sockets (hand-written GET, regex scan for events: lighter than http.request) in ONE child process (so the figures include that process reading 1,000 sockets, equally for both); "last client" = the child's receipt time of the ${clients}th copy. Clocks: performance.timeOrigin + now() in both processes, child offset ${r3(clock.offset)} ms estimated from the fastest of 30 IPC round trips (RTT ${r3(clock.rtt)} ms) and subtracted.`,
        '"server write loop" = commit (or the baseline\'s start) → a setImmediate scheduled at that moment: the synchronous cost of writing the event to all 1,000 sockets on the server. "first → last client" = spread of receipt times in the client process (client-side cost).',
        'SSE heartbeat set to 1 h so that no keepalive broadcast lands inside a measurement.',
      ],
    });
  } finally {
    await sse?.close().catch(() => undefined);
    await bareSse?.close().catch(() => undefined);
    await server.close();
    await hot.close();
    await bare.close();
    await rm(dir, { recursive: true, force: true });
  }
  log(`suite body took ${((Date.now() - suiteStart) / 1000).toFixed(1)} s`);
  return { tables, ...raw };
}
