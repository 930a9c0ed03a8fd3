// Footprint suite (issue 16): what hotconf costs a process, each row against bare Node in the same run.
// Import time and RSS of `import('hotconf')`; `hotconf check` wall; idle RSS of `hotconf run` (files, files +
// --http, --etcd against a real etcd) after start and after 1,000 changes; and, from the latency and scale suites
// of the same `npm run bench` (run.mjs runs this suite last), change latency at debounce 0 against the fs.watch
// floor and the 10,000-file rows. Benchmarks are not tests: nothing here asserts speed.
// Run: `npm run build && node bench/run.mjs --only=footprint` (~1 min; the latency/scale rows then come from
// their last bench/results/*.json, dated in the notes).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdServer } from './fleet.mjs';
import { onJsonLines, stopChild } from '../lines.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(root, 'dist', 'cli', 'main.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const r1 = (x) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : x);
const r2 = (x) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : x);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};
const MiB = (kib) => kib / 1024;
/** V8's young generation capped at 1 MiB per semi-space (default: up to 16): the manifests' NODE_OPTIONS. */
const SEMI_FLAG = '--max-semi-space-size=1';
const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HOTCONF_') && k !== 'NOTIFY_SOCKET'));

function rssKiB(pid) {
  return readFile(`/proc/${pid}/status`, 'utf8').then(
    (s) => Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1] ?? NaN),
    () => NaN,
  );
}

/** Wall time (ms) of a child from spawn to exit, and its exit code. */
function wallOf(args, opts = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: 'ignore', cwd: root, env: cleanEnv(), ...opts });
    child.once('exit', (code) => resolve({ ms: performance.now() - t0, code }));
  });
}

/** A child that prints one JSON line of its own figures (import time, RSS before/after). */
function figuresOf(code) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, env: cleanEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const IMPORT_PROBE = (what) => `
const rss0 = process.memoryUsage().rss; const t0 = performance.now();
${what}
const ms = performance.now() - t0; await new Promise((r) => setTimeout(r, 50));
console.log(JSON.stringify({ ms, rss0: rss0 / 1024, rss: process.memoryUsage().rss / 1024 }));`;

/**
 * A long-running child (bare idle Node or `hotconf run`): waits for `readyWhen(line)` on stdout (or a fixed
 * pause for bare Node), then 1 s of idle, and reads VmRSS. `commits` counts "config committed" lines.
 */
async function daemon(args, { ready = (l) => l.msg === 'hotconf running', idleMs = 1000, env = {} } = {}) {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...cleanEnv(), ...env } });
  const state = { ready: false, commits: 0, exited: false, stderr: '' };
  onJsonLines(child.stdout, (l) => {
    if (ready?.(l)) state.ready = true;
    if (l.msg === 'config committed') state.commits++;
  });
  child.stderr.on('data', (d) => (state.stderr = (state.stderr + d.toString()).slice(-2000)));
  child.once('exit', () => (state.exited = true));
  const t0 = performance.now();
  if (ready) {
    while (!state.ready) {
      if (state.exited) throw new Error(`${args.join(' ')} exited before ready: ${state.stderr}`);
      if (performance.now() - t0 > 60_000) throw new Error(`${args.join(' ')} not ready in 60 s`);
      await sleep(5);
    }
  }
  const startMs = performance.now() - t0;
  await sleep(idleMs);
  return {
    child,
    state,
    startMs,
    rss: () => rssKiB(child.pid),
    stop: () => stopChild(child, state),
  };
}

/** A config directory with one small config and its schema. */
function fixture(dir) {
  const configDir = path.join(dir, 'config');
  const schemaDir = path.join(dir, 'schemas');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(schemaDir, { recursive: true });
  writeFileSync(
    path.join(schemaDir, 'app.schema.json'),
    JSON.stringify({ type: 'object', properties: { v: { type: 'integer' }, pad: { type: 'string' } }, required: ['v'], additionalProperties: false }),
  );
  writeFileSync(path.join(configDir, 'app.json'), JSON.stringify({ v: 0, pad: 'x'.repeat(200) }));
  return { configDir, schemaDir };
}

/** `n` atomic saves of config/app.json, each waited for until committed (5 s each at most); the latencies
 *  (rename → its "config committed" line read here, so pipe and polling included: for comparing modes only). */
async function changes(d, configDir, n) {
  const file = path.join(configDir, 'app.json');
  const tmp = path.join(configDir, '.app.json.tmp');
  const latencies = [];
  for (let i = 1; i <= n; i++) {
    const before = d.state.commits;
    writeFileSync(tmp, JSON.stringify({ v: i, pad: 'x'.repeat(200) }));
    const t0 = performance.now();
    renameSync(tmp, file);
    while (d.state.commits === before && performance.now() - t0 < 5000) await new Promise((r) => setImmediate(r));
    latencies.push(performance.now() - t0);
  }
  return latencies;
}

/** Idle RSS after start and after `n` changes, per mode; bare Node idle measured in between, same run. */
async function benchRss({ dir, n, log, etcdUrl }) {
  const out = {};
  const bare = [];
  const measureBare = async () => {
    const d = await daemon(['-e', 'setInterval(() => {}, 1e6)'], { ready: null });
    bare.push(await d.rss());
    await d.stop();
  };
  const modes = [
    ['files', (f) => ['run', '--config-dir', f.configDir, '--schema-dir', f.schemaDir]],
    ['http', (f) => ['run', '--config-dir', f.configDir, '--schema-dir', f.schemaDir, '--http', '127.0.0.1:0']],
  ];
  if (etcdUrl) modes.push(['etcd', (f) => ['run', '--etcd', etcdUrl, '--etcd-prefix', '/footprint/', '--schema-dir', f.schemaDir]]);
  // The same modes with V8's young generation capped (the flag the shipped manifests set), side by side.
  for (const [mode, argsOf] of [...modes]) modes.push([`${mode}+semi`, argsOf, { NODE_OPTIONS: SEMI_FLAG }]);
  for (const [mode, argsOf, env] of modes) {
    await measureBare();
    const f = fixture(path.join(dir, mode));
    const d = await daemon([BIN, ...argsOf(f), '--no-pretty', '--log-level', 'info', '--debounce-ms', '0'], { env });
    const afterStart = await d.rss();
    let afterChanges = NaN;
    let lat;
    if (!mode.startsWith('etcd')) {
      const l = (await changes(d, f.configDir, n)).sort((a, b) => a - b);
      lat = { p50: l[Math.floor(l.length / 2)], p99: l[Math.ceil(l.length * 0.99) - 1] };
      await sleep(1000);
      afterChanges = await d.rss();
    }
    out[mode] = { startMs: d.startMs, afterStartKiB: afterStart, afterChangesKiB: afterChanges, commits: d.state.commits, latency: lat };
    log(`${mode}: ${r1(MiB(afterStart))} MiB after start, ${r1(MiB(afterChanges))} after ${n} changes (${d.state.commits} commits)`);
    await d.stop();
  }
  await measureBare();
  return { bareKiB: bare, ...out };
}

function latest(id) {
  try {
    return JSON.parse(readFileSync(path.join(root, 'bench', 'results', `${id}.json`), 'utf8'));
  } catch {
    return undefined;
  }
}

export async function run({ full, log }) {
  const started = performance.now();
  const loadBefore = os.loadavg().map(r2);
  const reps = full ? 15 : 7;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hotconf-footprint-'));
  const raw = { reps };
  try {
    // 1. import('hotconf') in a fresh process, against the same probe importing nothing. Interleaved.
    raw.import = { hotconf: [], bare: [] };
    for (let i = 0; i < reps; i++) {
      raw.import.bare.push(figuresOf(IMPORT_PROBE('')));
      raw.import.hotconf.push(figuresOf(IMPORT_PROBE("await import('hotconf');")));
    }
    // 2. `hotconf check` on the embedded config against `node -e 0`. Interleaved.
    raw.check = { hotconf: [], bare: [] };
    for (let i = 0; i < reps; i++) {
      raw.check.bare.push((await wallOf(['-e', '0'])).ms);
      const c = await wallOf([BIN, 'check', '--config', 'hotconf.yaml']);
      if (c.code !== 0) throw new Error(`hotconf check exited ${c.code}`);
      raw.check.hotconf.push(c.ms);
    }
    log(`import median ${r1(median(raw.import.hotconf.map((x) => x.ms)))} ms; check median ${r1(median(raw.check.hotconf))} ms vs node -e 0 ${r1(median(raw.check.bare))} ms`);
    // 3. Idle RSS per mode, after start and after 1,000 changes.
    let etcd;
    if (spawnSync('etcd', ['--version']).status === 0) etcd = await etcdServer(path.join(dir, 'etcd'));
    else log('etcd is not installed: the fleet row is skipped');
    try {
      raw.rss = await benchRss({ dir, n: 1000, log, etcdUrl: etcd?.url });
    } finally {
      await etcd?.kill9();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  raw.loadBefore = loadBefore;
  raw.loadAfter = os.loadavg().map(r2);
  raw.suiteSeconds = (performance.now() - started) / 1000;
  return { tables: [table(raw)], ...raw };
}

function table(raw) {
  const rows = [];
  const verdict = (value, limit) => (Number.isFinite(value) ? (value <= limit ? 'met' : 'missed') : '—');
  const imp = median(raw.import.hotconf.map((x) => x.ms));
  const impBare = median(raw.import.bare.map((x) => x.ms));
  const impRss = median(raw.import.hotconf.map((x) => x.rss - x.rss0));
  const impRssBare = median(raw.import.bare.map((x) => x.rss - x.rss0));
  const impDelta = MiB(impRss - impRssBare);
  rows.push(['`import(\'hotconf\')` time', `${r1(impBare)} ms (empty probe)`, `${r1(imp)} ms`, '—', '≤ 60 ms', verdict(imp, 60)]);
  rows.push(['`import(\'hotconf\')` RSS delta', `${r1(MiB(impRssBare))} MiB`, `+${r1(impDelta)} MiB`, '—', '≤ +12 MB', verdict(impDelta, 12)]);
  const chk = median(raw.check.hotconf);
  const chkBare = median(raw.check.bare);
  rows.push(['`hotconf check --config hotconf.yaml`, wall', `${r1(chkBare)} ms (\`node -e 0\`)`, `${r1(chk)} ms`, `${r2(chk / chkBare)}×`, '≤ 200 ms', verdict(chk, 200)]);
  const bare = MiB(median(raw.rss.bareKiB));
  const rssRow = (label, m, goal) => {
    const x = raw.rss[m];
    if (!x) return rows.push([label, `${r1(bare)} MiB`, 'skipped (no etcd)', '—', `≤ ${goal} MB`, '—']);
    const v = MiB(x.afterStartKiB);
    const after = Number.isFinite(x.afterChangesKiB) ? `; ${r1(MiB(x.afterChangesKiB))} MiB after 1,000 changes` : '';
    rows.push([label, `${r1(bare)} MiB (idle \`node -e\`)`, `${r1(v)} MiB after start${after}`, `${r2(v / bare)}×`, `≤ ${goal} MB`, verdict(v, goal)]);
  };
  rssRow('`hotconf run` idle RSS, files, no HTTP', 'files', 55);
  rssRow('`hotconf run --http` idle RSS', 'http', 62);
  rssRow('fleet instance (`run --etcd`) RSS', 'etcd', 70);
  rssRow(`\`hotconf run\` idle RSS, files, no HTTP, \`NODE_OPTIONS=${SEMI_FLAG}\``, 'files+semi', 55);
  rssRow(`\`hotconf run --http\` idle RSS, \`NODE_OPTIONS=${SEMI_FLAG}\``, 'http+semi', 62);
  rssRow(`fleet instance (\`run --etcd\`) RSS, \`NODE_OPTIONS=${SEMI_FLAG}\``, 'etcd+semi', 70);
  const lat = latest('latency');
  const byLabel = (l) => lat?.changeLatency?.find((c) => c.label === l);
  const floor = byLabel('fs.watch (floor)');
  const zero = byLabel('hotconf debounceMs 0');
  if (floor && zero) {
    const d = zero.p99 - floor.p99;
    // hotconf sees a change only after fs.watch does: a floor above hotconf's p99 is the machine's noise, no verdict.
    const v = d < 0 ? 'no verdict (the floor above hotconf: noise, re-run)' : verdict(d, 2);
    rows.push(['change latency, `debounceMs: 0`, p99 − fs.watch p99', `${r2(floor.p99)} ms (fs.watch p99)`, `${r2(zero.p99)} ms (${d < 0 ? '' : '+'}${r2(d)})`, `${r2(zero.p99 / floor.p99)}×`, '≤ +2 ms', v]);
  }
  const sc = latest('scale')?.scale;
  const at = (n) => sc?.find((x) => x.n === n);
  if (at(10_000)) {
    rows.push(['initial load, 10,000 files', `${r1(at(10).loadMs)} ms (10 files)`, `${r1(at(10_000).loadMs)} ms`, `${r2(at(10_000).loadMs / at(10).loadMs)}× vs 10`, '≤ 2,500 ms', verdict(at(10_000).loadMs, 2500)]);
    const ratio = at(10_000).latZero.p50 / at(10).latZero.p50;
    rows.push(['change latency 10,000 vs 10 files, `debounceMs: 0` (p50)', `${r2(at(10).latZero.p50)} ms (10 files)`, `${r2(at(10_000).latZero.p50)} ms`, `${r2(ratio)}×`, '≤ 1.5×', verdict(ratio, 1.5)]);
  }
  const lats = ['files', 'files+semi', 'http', 'http+semi']
    .filter((m) => raw.rss[m]?.latency)
    .map((m) => `${m} ${r2(raw.rss[m].latency.p50)} / ${r2(raw.rss[m].latency.p99)}`);
  const n = raw.reps;
  const notes = [
    `Import: a fresh \`node --input-type=module\` process times \`await import('hotconf')\` (performance.now) and reads process.memoryUsage().rss before and 50 ms after; the bare column is the same probe importing nothing. Medians of ${n}, interleaved.`,
    `check: spawn → exit of \`node dist/cli/main.js check --config hotconf.yaml\` (the embedded config: 3 configs, 4 schemas) against \`node -e 0\`, medians of ${n}, interleaved.`,
    'RSS: VmRSS from /proc 1 s after the daemon logged "hotconf running" (then again 1 s after 1,000 atomic saves of a ~230-byte JSON config, each waited for until committed; debounceMs 0, log level info to stdout) against an idle `node -e "setInterval(()=>{},1e6)"` measured between the modes; the fleet row runs against a real etcd (one instance, empty prefix).',
    `The cost of ${SEMI_FLAG} (more, smaller scavenges): change latency during the 1,000 changes, p50 / p99 ms, as this suite sees it (rename → the commit's log line read from the child's stdout): ${lats.join('; ')}.`,
    lat ? `Latency row: from the latency suite's run of ${lat.machine?.date?.slice(0, 16)} (bench/results/latency.json), fs.watch and hotconf debounceMs 0 in one run.` : 'Latency row: no bench/results/latency.json yet.',
    sc ? `Scale rows: from the scale suite's run of ${latest('scale').machine?.date?.slice(0, 16)} (bench/results/scale.json).` : 'Scale rows: no bench/results/scale.json yet.',
    `Load average (1/5/15 min) at the start ${raw.loadBefore.join(' / ')}, at the end ${raw.loadAfter.join(' / ')}, on ${os.availableParallelism()} cores.`,
  ];
  return {
    id: 'footprint',
    title: 'Footprint: import, check, idle memory, against bare Node in the same run',
    command: 'npm run build && node bench/run.mjs --only=footprint',
    columns: ['what', 'bare Node', 'hotconf', 'ratio', 'target', 'met?'],
    rows,
    notes,
  };
}
