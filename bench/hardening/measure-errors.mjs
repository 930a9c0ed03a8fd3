// Issue 18 (RELIABILITY.md section 7), point 1. usage: node bench/hardening/measure-errors.mjs dist BYTES — a config {"list":[1,1,…]} of BYTES against items: {type: string},
// written over a valid one in a running daemon; prints peak RSS, log bytes, /v1/status bytes, /healthz max latency.
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile, rename, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
const [dist, bytesArg] = process.argv.slice(2);
const bytes = Number(bytesArg);
const root = await mkdtemp(path.join(tmpdir(), 'hc-measure-'));
await Promise.all([import('node:fs/promises').then((f) => f.mkdir(`${root}/config`)), import('node:fs/promises').then((f) => f.mkdir(`${root}/schemas`))]);
await writeFile(`${root}/schemas/big.schema.json`, JSON.stringify({ type: 'object', properties: { list: { type: 'array', items: { type: 'string' } } } }));
await writeFile(`${root}/config/big.json`, '{"list":["ok"]}');
const n = Math.floor((bytes - 10) / 2);
const bad = `{"list":[${Array(n).fill('1').join(',')}]}`;
const logFile = `${root}/log`;
const { openSync } = await import('node:fs');
const out = openSync(logFile, 'w');
const child = spawn('node', [path.join(dist, 'cli/main.js'), 'run', '--config-dir', `${root}/config`, '--schema-dir', `${root}/schemas`, '--http', '127.0.0.1:0', '--no-pretty'], { stdio: ['ignore', out, out] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let url;
for (let i = 0; i < 200 && !url; i++) {
  await sleep(50);
  const m = /"url":"(http:[^"]+)"/.exec(await readFile(logFile, 'utf8'));
  if (m) url = m[1];
}
const rss = async () => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024;
const rss0 = await rss();
const log0 = (await readFile(logFile)).length;
let peak = rss0, maxHealthz = 0, stop = false;
const sampler = (async () => { while (!stop) { peak = Math.max(peak, await rss()); await sleep(10); } })();
const prober = (async () => { while (!stop) { const t = performance.now(); await fetch(`${url}/healthz`).then((r) => r.arrayBuffer()).catch(() => undefined); maxHealthz = Math.max(maxHealthz, performance.now() - t); await sleep(20); } })();
const t0 = performance.now();
await writeFile(`${root}/big.tmp`, bad);
await rename(`${root}/big.tmp`, `${root}/config/big.json`);
let status, verdictMs;
for (;;) {
  const res = await fetch(`${url}/v1/status`);
  const text = await res.text();
  const st = JSON.parse(text);
  if (st.configs.find((c) => c.name === 'big')?.state === 'error') { status = text; verdictMs = performance.now() - t0; break; }
  if (performance.now() - t0 > 120_000) throw new Error('no verdict');
  await sleep(100);
}
await sleep(1500);
stop = true;
await Promise.all([sampler, prober]);
const rssAfter = await rss();
const logBytes = (await readFile(logFile)).length - log0;
const cfg = JSON.parse(status).configs.find((c) => c.name === 'big');
console.log(JSON.stringify({ dist, fileBytes: bad.length, values: n, errorsInStatus: cfg.errors.length, last: cfg.errors.at(-1)?.message.slice(-120), rss0MiB: +rss0.toFixed(1), peakRssMiB: +peak.toFixed(1), rssAfterMiB: +rssAfter.toFixed(1), logBytes, statusBytes: status.length, maxHealthzMs: Math.round(maxHealthz), verdictMs: Math.round(verdictMs) }));
child.kill('SIGTERM');
