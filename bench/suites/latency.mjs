// Latency suite: (1) change latency of one config file saved by atomic rename, hotconf against raw fs.watch
// (the floor), chokidar 5 (default options) and spf13/viper's WatchConfig (a Go program, bench/viper);
// (2) burst convergence: many files written as fast as possible, time until hotconf's store equals the disk,
// against chokidar (time until it reported an event for every file's last write).
// Benchmarks are not tests: nothing here asserts speed. Run: `npm run build && node bench/run.mjs --only=latency`.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, renameSync, watch as fsWatch, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { watch as chokidarWatch } from 'chokidar';
import { pino } from 'pino';
import { createHotconf } from '../../dist/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const logger = pino({ level: 'silent' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Wall-clock ms with µs precision (comparable across processes and threads: CLOCK_REALTIME based). */
const wall = () => performance.timeOrigin + performance.now();
const MISS_MS = 1000;
const DEFAULT_DEBOUNCE = 25;
/** chokidar drops every `change` within 50 ms of the previous one for a path (its _throttle), so about half of
 *  the saves are misses that each cost the full MISS_MS wait: it runs as this many independent files/watchers
 *  at once, each with its own sequential chain of saves, to fit the time budget. */
const CHOKIDAR_LANES = 20;

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
const r2 = (x) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : x);
const median = (xs) => pct([...xs].sort((a, b) => a - b), 50);

// ---------------------------------------------------------------------------------------------------------
// 1. Change latency
// ---------------------------------------------------------------------------------------------------------

const SCHEMA = JSON.stringify({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  properties: { v: { type: 'integer' }, pad: { type: 'string' } },
  required: ['v'],
  additionalProperties: false,
});
const PAD = 'x'.repeat(200);
const content = (v) => `${JSON.stringify({ v, pad: PAD }, null, 2)}\n`;

/**
 * Drives `total` atomic saves of `file` (write `.app.json.tmp`, then rename over) and waits for the contender
 * to report each one (or MISS_MS). `contender.start(onSeen)` wires the watcher; onSeen(value|undefined, t)
 * with t on the contender's clock (`clock`: performance.now or wall ms). Returns latencies of the measured
 * changes (warm-up excluded), misses, and value mismatches (callbacks with another value than the one written).
 */
async function driveChanges({ file, total, warmup, clock, contender }) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  let pending;
  let mismatches = 0;
  let strays = 0;
  const onSeen = (value, t) => {
    if (!pending) {
      strays++;
      return;
    }
    if (value !== undefined && value !== pending.i) {
      mismatches++;
      return;
    }
    const p = pending;
    pending = undefined;
    p.resolve(t);
  };
  await contender.start(onSeen);
  const latencies = [];
  let missed = 0;
  let i0 = contender.firstValue ?? 1;
  for (let k = 0; k < total; k++) {
    const i = i0 + k;
    writeFileSync(tmp, content(i));
    let timer;
    const seen = new Promise((resolve) => {
      pending = { i, resolve };
      timer = setTimeout(() => {
        if (pending?.i === i) {
          pending = undefined;
          resolve(undefined);
        }
      }, MISS_MS);
    });
    const t0 = clock();
    renameSync(tmp, file);
    const t1 = await seen;
    clearTimeout(timer);
    if (k >= warmup) {
      if (t1 === undefined) missed++;
      else latencies.push(t1 - t0);
    }
    await sleep(10 + Math.random() * 2);
  }
  await contender.stop();
  return { latencies, missed, mismatches, strays };
}

function fsWatchContender(dir, name) {
  let w;
  return {
    async start(onSeen) {
      w = fsWatch(dir, (_ev, filename) => {
        if (filename === name) onSeen(undefined, performance.now());
      });
    },
    async stop() {
      w.close();
    },
  };
}

function chokidarContender(file) {
  let w;
  return {
    async start(onSeen) {
      w = chokidarWatch(file);
      w.on('change', () => onSeen(undefined, performance.now()));
      w.on('add', () => onSeen(undefined, performance.now()));
      await new Promise((r) => w.once('ready', r));
    },
    async stop() {
      await w.close();
    },
  };
}

function hotconfContender(configDir, schemaDir, debounceMs) {
  let hot;
  return {
    async start(onSeen) {
      hot = await createHotconf({ configDir, schemaDir, ...(debounceMs === undefined ? {} : { debounceMs }), logger });
      hot.onConfigChange('app', ({ current }) => {
        const t = performance.now();
        onSeen(current.get('app')?.v, t);
      });
    },
    async stop() {
      await hot.close();
    },
  };
}

function viperContender(bin, file) {
  let child;
  return {
    async start(onSeen) {
      child = spawn(bin, [file], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const rl = readline.createInterface({ input: child.stdout });
      await new Promise((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (code) => reject(new Error(`viperbench exited ${code}: ${stderr.trim().slice(0, 200)}`)));
        rl.on('line', (line) => {
          if (line === 'ready') return resolve();
          const [ns, v] = line.split(' ');
          onSeen(Number(v), Number(BigInt(ns) / 1000n) / 1000);
        });
      });
      await sleep(50);
    },
    async stop() {
      child.removeAllListeners('exit');
      child.stdin.end();
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    },
  };
}

/** Builds bench/viper with Debian's Go and viper; resolves { bin } or { skipped: reason }. */
function buildViper(tmpRoot) {
  const gopath = '/usr/share/gocode';
  if (!existsSync(path.join(gopath, 'src', 'github.com', 'spf13', 'viper'))) {
    return Promise.resolve({ skipped: 'golang-github-spf13-viper-dev not installed' });
  }
  const bin = path.join(tmpRoot, 'viperbench');
  return new Promise((resolve) => {
    let err = '';
    const child = spawn('go', ['build', '-o', bin, './bench/viper'], {
      cwd: root,
      env: { ...process.env, GOPATH: gopath, GO111MODULE: 'off' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr.on('data', (d) => (err += d));
    child.once('error', (e) => resolve({ skipped: `go unavailable (${e.code ?? e.message})` }));
    child.once('exit', (code) => resolve(code === 0 ? { bin } : { skipped: `go build failed: ${err.trim().split('\n').slice(-1)[0]}` }));
  });
}

async function changeLatency({ full, log, tmpRoot, viperBuild }) {
  const total = (full ? 2000 : 500) + 20;
  const warmup = 20;
  const results = [];
  const fresh = (label) => {
    const dir = path.join(tmpRoot, `lat-${label}`);
    const configDir = path.join(dir, 'config');
    const schemaDir = path.join(dir, 'schemas');
    mkdirSync(configDir, { recursive: true });
    mkdirSync(schemaDir, { recursive: true });
    writeFileSync(path.join(schemaDir, 'app.schema.json'), SCHEMA);
    const file = path.join(configDir, 'app.json');
    writeFileSync(file, content(0));
    return { configDir, schemaDir, file };
  };
  const contenders = [
    ['fs.watch (floor)', (d) => fsWatchContender(d.configDir, 'app.json'), performance.now.bind(performance)],
    ['chokidar 5 (defaults)', (d) => chokidarContender(d.file), performance.now.bind(performance)],
    ['hotconf debounceMs 0', (d) => hotconfContender(d.configDir, d.schemaDir, 0), performance.now.bind(performance)],
    [`hotconf default (debounce ${DEFAULT_DEBOUNCE} ms)`, (d) => hotconfContender(d.configDir, d.schemaDir, undefined), performance.now.bind(performance)],
    ['spf13/viper WatchConfig (Go)', null, wall],
  ];
  for (const [label, make, clock] of contenders) {
    const d = fresh(results.length);
    const t0 = Date.now();
    if (make === null) {
      const built = await viperBuild;
      if (built.skipped) {
        log(`${label}: skipped: ${built.skipped}`);
        results.push({ label, skipped: built.skipped });
        continue;
      }
      const r = await driveChanges({ file: d.file, total, warmup, clock, contender: viperContender(built.bin, d.file) });
      results.push({ label, ...r, seconds: (Date.now() - t0) / 1000 });
    } else {
      const lanes = label.startsWith('chokidar') ? CHOKIDAR_LANES : 1;
      const parts = await Promise.all(
        Array.from({ length: lanes }, (_, l) => {
          const dl = l === 0 ? d : fresh(`${results.length}-${l}`);
          const n = Math.ceil((total - warmup) / lanes);
          return driveChanges({ file: dl.file, total: n + Math.ceil(warmup / lanes), warmup: Math.ceil(warmup / lanes), clock, contender: make(dl) });
        }),
      );
      const merged = { latencies: [], missed: 0, mismatches: 0, strays: 0 };
      for (const p of parts) {
        merged.latencies.push(...p.latencies);
        merged.missed += p.missed;
        merged.mismatches += p.mismatches;
        merged.strays += p.strays;
      }
      results.push({ label, lanes, ...merged, seconds: (Date.now() - t0) / 1000 });
    }
    const last = results.at(-1);
    log(`${label}: ${last.latencies.length} seen, ${last.missed} missed, ${last.mismatches} mismatches in ${last.seconds.toFixed(1)} s`);
  }
  for (const r of results) {
    if (r.skipped) continue;
    const s = [...r.latencies].sort((a, b) => a - b);
    r.p50 = pct(s, 50);
    r.p99 = pct(s, 99);
    r.max = s.at(-1);
  }
  const floor = results[0].p99;
  const rows = results.map((r, idx) => {
    if (r.skipped) return [r.label, `skipped: ${r.skipped}`, '', '', '', '', '', ''];
    let target = '—';
    let met = '—';
    if (idx === 2) {
      target = 'p99 ≤ floor p99 + 2 ms';
      met = r.p99 - floor <= 2 && r.missed === 0 ? 'yes' : 'no';
    } else if (idx === 3) {
      target = `p99 ≤ ${DEFAULT_DEBOUNCE} + 5 ms`;
      met = r.p99 <= DEFAULT_DEBOUNCE + 5 && r.missed === 0 ? 'yes' : 'no';
    }
    const missed = `${r.missed}${r.mismatches ? ` (+${r.mismatches} wrong value)` : ''}`;
    return [r.label, r2(r.p50), r2(r.p99), r2(r.max), missed, idx === 0 ? 0 : r2(r.p99 - floor), target, met];
  });
  const raw = results.map(({ latencies, ...rest }) => ({
    ...rest,
    p50: r2(rest.p50),
    p99: r2(rest.p99),
    max: r2(rest.max),
    latencies: latencies?.map(r2),
  }));
  return {
    table: {
      id: 'latency-change',
      title: 'Change latency: atomic save → consumer notified',
      command: `npm run build && node bench/run.mjs --only=latency${full ? ' --full' : ''}`,
      columns: ['contender', 'p50 ms', 'p99 ms', 'max ms', 'missed', 'p99 − floor p99 (ms)', 'target', 'met?'],
      rows,
      notes: [
        `${total - warmup} changes per contender (first ${warmup} are warm-up, excluded), back to back, each in a fresh directory; one ~230-byte JSON file saved by write temp (hidden \`.app.json.tmp\`) + rename; the next save 10–12 ms after the previous one was seen (or after ${MISS_MS} ms: a miss).`,
        'Measured from just before rename() to the callback. fs.watch: first event naming the file. chokidar: `change`/`add` event (an event only, no read). hotconf: the `onConfigChange` subscriber, after read + parse + schema validation + commit, with the value checked against the one written (a wrong value counts separately). viper: its OnConfigChange after its own re-read, value checked.',
        'JS contenders use performance.now() in this process. viper runs in a child process: Go `time.Now().UnixNano()` at its callback against `performance.timeOrigin + performance.now()` here (both CLOCK_REALTIME).',
        `chokidar drops any \`change\` for a path within 50 ms of its previous one (its \`_throttle('change', path, 50)\`), so with saves 10–12 ms after the previous one was seen it misses about every other save; each miss costs a ${MISS_MS} ms wait, so its saves run as ${CHOKIDAR_LANES} independent files, each with its own watcher and sequential chain of saves, concurrently (the other contenders: one file, one chain). Its latencies therefore include some contention between lanes.`,
        'hotconf runs with its default verifyIntervalMs (1000 ms sweep), pino at level silent.',
      ],
    },
    raw,
  };
}

// ---------------------------------------------------------------------------------------------------------
// 2. Burst convergence
// ---------------------------------------------------------------------------------------------------------

// The writer runs in a worker thread (sync fs calls, as fast as possible) so that the watcher side keeps its
// event loop, as with a writer in another process.
const WRITER = `
const { parentPort, workerData } = require('node:worker_threads');
const { writeFileSync, renameSync } = require('node:fs');
const path = require('node:path');
const wall = () => performance.timeOrigin + performance.now();
const { dir, files, writes, plan } = workerData;
const lastStart = new Array(files).fill(0);
let k = 0;
for (let w = 0; w < writes; w++) {
  for (let f = 0; f < files; f++) {
    const file = path.join(dir, 'c' + f + '.json');
    const body = JSON.stringify({ f, w }) + '\\n';
    lastStart[f] = wall();
    if (plan[k++]) {
      const tmp = path.join(dir, '.c' + f + '.json.tmp');
      writeFileSync(tmp, body);
      renameSync(tmp, file);
    } else {
      writeFileSync(file, body);
    }
  }
}
parentPort.postMessage({ lastEnd: wall(), lastStart });
`;

function runWriter(dir, files, writes) {
  const plan = Array.from({ length: files * writes }, () => Math.random() < 0.5);
  const worker = new Worker(WRITER, { eval: true, workerData: { dir, files, writes, plan } });
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

const BURST_SCHEMA = JSON.stringify({
  type: 'object',
  properties: { f: { type: 'integer' }, w: { type: 'integer' } },
  required: ['f', 'w'],
  additionalProperties: false,
});

function burstDirs(tmpRoot, label, files) {
  const base = path.join(tmpRoot, `burst-${label}`);
  const configDir = path.join(base, 'config');
  const schemaDir = path.join(base, 'schemas');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(schemaDir, { recursive: true });
  for (let f = 0; f < files; f++) {
    writeFileSync(path.join(configDir, `c${f}.json`), `${JSON.stringify({ f, w: -1 })}\n`);
    writeFileSync(path.join(schemaDir, `c${f}.schema.json`), BURST_SCHEMA);
  }
  return { configDir, schemaDir };
}

async function burstHotconf(tmpRoot, label, files, writes) {
  const { configDir, schemaDir } = burstDirs(tmpRoot, label, files);
  const hot = await createHotconf({ configDir, schemaDir, logger });
  const v0 = hot.version;
  const last = writes - 1;
  const equal = () => {
    for (let f = 0; f < files; f++) if (hot.get(`c${f}`)?.w !== last) return false;
    return true;
  };
  let tEq;
  const poll = setInterval(() => {
    if (tEq === undefined && equal()) tEq = wall();
  }, 1);
  const t0 = wall();
  const { lastEnd } = await runWriter(configDir, files, writes);
  const deadline = Date.now() + 5000;
  while (tEq === undefined && Date.now() < deadline) await sleep(5);
  clearInterval(poll);
  let lost = 0;
  for (let f = 0; f < files; f++) if (hot.get(`c${f}`)?.w !== last) lost++;
  const commits = hot.version - v0;
  const errors = hot.status().configs.filter((s) => s.state === 'error').length;
  await hot.close();
  return { settleMs: tEq === undefined ? null : tEq - lastEnd, writeMs: lastEnd - t0, commits, lost, errors };
}

async function burstChokidar(tmpRoot, label, files, writes) {
  const { configDir } = burstDirs(tmpRoot, label, files);
  const w = chokidarWatch(configDir);
  const lastEvent = new Map();
  const onEv = (p) => {
    const m = /c(\d+)\.json$/.exec(p);
    if (m) lastEvent.set(Number(m[1]), wall());
  };
  w.on('change', onEv);
  w.on('add', onEv);
  await new Promise((r) => w.once('ready', r));
  const t0 = wall();
  const { lastEnd, lastStart } = await runWriter(configDir, files, writes);
  // Wait up to 2 s for every file's last write to be reported.
  const allReported = () => lastStart.every((t, f) => (lastEvent.get(f) ?? 0) >= t);
  for (const end = Date.now() + 2000; Date.now() < end && !allReported(); ) await sleep(10);
  await w.close();
  let unreported = 0;
  let latest = 0;
  for (let f = 0; f < files; f++) {
    const t = lastEvent.get(f);
    if (t === undefined || t < lastStart[f]) unreported++;
    else latest = Math.max(latest, t);
  }
  // lastEvent keeps the latest event per file: the settle time is when the last file's last write was reported.
  return { settleMs: unreported === 0 ? latest - lastEnd : null, lastEventMs: latest ? latest - lastEnd : null, writeMs: lastEnd - t0, unreported };
}

async function burstConvergence({ full, log, tmpRoot }) {
  const files = full ? 100 : 20;
  const writes = full ? 100 : 50;
  const reps = full ? 5 : 3;
  const hc = [];
  const ck = [];
  for (let r = 0; r < reps; r++) {
    hc.push(await burstHotconf(tmpRoot, `h${r}`, files, writes));
    log(`burst hotconf rep ${r + 1}: ${JSON.stringify(hc.at(-1))}`);
    ck.push(await burstChokidar(tmpRoot, `c${r}`, files, writes));
    log(`burst chokidar rep ${r + 1}: ${JSON.stringify(ck.at(-1))}`);
  }
  const settled = (xs) => xs.map((x) => x.settleMs).filter((x) => x !== null);
  const fmtMax = (xs) => (xs.some((x) => x.settleMs === null) ? 'never (within window)' : r2(Math.max(...settled(xs))));
  const hs = settled(hc);
  const cs = settled(ck);
  const hMax = hc.some((x) => x.settleMs === null) ? Infinity : Math.max(...hs);
  const rows = [
    [
      `hotconf defaults (debounce ${DEFAULT_DEBOUNCE} ms)`,
      hs.length ? r2(median(hs)) : 'never',
      fmtMax(hc),
      hc.map((x) => x.commits).join(' / '),
      hc.map((x) => x.lost).join(' / '),
      r2(median(hc.map((x) => x.writeMs))),
      `max settle ≤ ${DEFAULT_DEBOUNCE} + 50 ms, 0 lost`,
      hMax <= DEFAULT_DEBOUNCE + 50 && hc.every((x) => x.lost === 0) ? 'yes' : 'no',
    ],
    [
      'chokidar 5 (defaults): last write of every file reported',
      cs.length ? r2(median(cs)) : 'never',
      fmtMax(ck),
      '—',
      ck.map((x) => x.unreported).join(' / '),
      r2(median(ck.map((x) => x.writeMs))),
      '—',
      '—',
    ],
  ];
  return {
    table: {
      id: 'latency-burst',
      title: `Burst convergence: ${files} files × ${writes} writes, as fast as possible`,
      command: `npm run build && node bench/run.mjs --only=latency${full ? ' --full' : ''}`,
      columns: ['contender', 'settle median ms', 'settle max ms', 'commits (per rep)', 'lost / unreported files (per rep)', 'burst duration ms', 'target', 'met?'],
      rows,
      notes: [
        `${reps} repetitions, each in fresh directories; hotconf and chokidar back to back per repetition. The writer is a worker thread doing sync writes as fast as it can, files round-robin, each write randomly (50/50) atomic (hidden temp + rename) or in place (writeFileSync: truncate + write).`,
        'hotconf: default options with one JSON Schema per file (requireSchema stays true; the schemas are identical small objects). Settle = first time (polling hot.get every 1 ms) that every file\'s store value equals its last written value, minus the end of the last write. Lost = files whose store value differs from the last write 5 s later.',
        'chokidar: settle = time of the latest event seen for the last file to be reported after its last write began, minus the end of the last write; unreported = files with no event after their last write began within 2 s. chokidar reads nothing: an event does not mean the consumer has the value.',
        'Timestamps cross threads as performance.timeOrigin + performance.now() (CLOCK_REALTIME based).',
      ],
    },
    raw: { files, writes, reps, hotconf: hc.map((x) => ({ ...x, settleMs: x.settleMs === null ? null : r2(x.settleMs) })), chokidar: ck },
  };
}

// ---------------------------------------------------------------------------------------------------------

export async function run({ full, log }) {
  const started = Date.now();
  const tmpRoot = mkdtempSync(path.join(os.tmpdir(), 'hotconf-bench-latency-'));
  try {
    const loadBefore = os.loadavg().map(r2);
    const viperBuild = buildViper(tmpRoot); // in parallel with the JS contenders
    const change = await changeLatency({ full, log, tmpRoot, viperBuild });
    const burst = await burstConvergence({ full, log, tmpRoot });
    const seconds = (Date.now() - started) / 1000;
    log(`latency suite body: ${seconds.toFixed(1)} s`);
    const loadAfter = os.loadavg().map(r2);
    const loadNote = `Load average (1/5/15 min) at the start of the suite ${loadBefore.join(' / ')}, at the end ${loadAfter.join(' / ')}, on ${os.availableParallelism()} cores: tails (p99, max) move a lot with what else runs on the machine.`;
    change.table.notes.push(loadNote);
    burst.table.notes.push(loadNote);
    return { tables: [change.table, burst.table], loadBefore, loadAfter, changeLatency: change.raw, burst: burst.raw, suiteSeconds: seconds };
  } finally {
    rmSync(tmpRoot, { recursive: true, force: true });
  }
}
