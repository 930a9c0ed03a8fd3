// Issue 18 (RELIABILITY.md section 7): points 2, 3, 8, 9 and 10 against the daemon and CLI built in DIST (run as root: prlimit --pid).
// usage: node bench/hardening/measure-misc.mjs dist   (FOLLOW=0 for a build without --follow-external-links)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, writeFile, rename, readFile, symlink } from 'node:fs/promises';
import { openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
const dist = process.argv[2];
const FOLLOW = process.env.FOLLOW === '0' ? [] : ['--follow-external-links'];
const bin = path.join(dist, 'cli/main.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const PORT = JSON.stringify({ type: 'object', properties: { port: { type: 'integer' } }, required: ['port'] });
async function world() {
  const root = await mkdtemp(path.join(tmpdir(), 'hc-misc-'));
  await mkdir(`${root}/config`); await mkdir(`${root}/schemas`);
  const w = { root, c: `${root}/config`, s: `${root}/schemas`,
    config: async (rel, text) => { await mkdir(path.dirname(`${root}/config/${rel}`), { recursive: true }); await writeFile(`${root}/t`, text); await rename(`${root}/t`, `${root}/config/${rel}`); },
    schema: async (n, t = PORT) => { await mkdir(path.dirname(`${root}/schemas/${n}.schema.json`), { recursive: true }); await writeFile(`${root}/schemas/${n}.schema.json`, t); } };
  return w;
}
async function daemon(w, extra = []) {
  const log = `${w.root}/log`;
  const out = openSync(log, 'w');
  const child = spawn('node', [bin, 'run', '--config-dir', w.c, '--schema-dir', w.s, '--http', '127.0.0.1:0', '--no-pretty', ...extra], { stdio: ['ignore', out, out] });
  let url;
  for (let i = 0; i < 200 && !url; i++) { await sleep(50); const m = /"url":"(http:[^"]+)"/.exec(await readFile(log, 'utf8').catch(() => '')); if (m) url = m[1]; }
  if (!url) throw new Error(`no url: ${await readFile(log, 'utf8')}`);
  const status = async () => (await fetch(`${url}/v1/status`)).json();
  const ticks = async () => { const f = (await readFile(`/proc/${child.pid}/stat`, 'utf8')).split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };
  return { child, url, status, ticks, log: () => readFile(log, 'utf8'), stop: () => child.kill('SIGKILL') };
}
const cli = (args) => { try { return { code: 0, out: execFileSync('node', [bin, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) }; } catch (e) { return { code: e.status, out: String(e.stdout) + String(e.stderr) }; } };
const result = {};
{ // 2. env.yaml -> /proc/version
  const w = await world(); await w.schema('app'); await w.schema('env', '{}'); await w.config('app.yaml', 'port: 1\n');
  const d = await daemon(w, FOLLOW);
  await symlink('/proc/version', `${w.c}/env.yaml`);
  await sleep(2000);
  await w.config('app.yaml', 'port: 2\n');
  await sleep(1000);
  const t0 = await d.ticks(); await sleep(10_000); const t1 = await d.ticks();
  const st = await d.status();
  const readyz = (await fetch(`${d.url}/readyz`)).status;
  const env = st.configs.find((c) => c.name === 'env');
  const app = st.configs.find((c) => c.name === 'app');
  result.unstable = { cpuPercent: (t1 - t0) / 10 /* ticks of 10 ms over 10 s */, errors: st.errors, envState: env?.state, envCode: env?.error?.code, appState: app?.state, appHeldBy: app?.heldBy, readyz, logLinesMentioningEnv: (await d.log()).split('\n').filter((l) => l.includes('env.yaml')).length };
  d.stop();
  const w2 = await world(); await w2.schema('app'); await w2.schema('env', '{}'); await w2.config('app.yaml', 'port: 1\n');
  await symlink('/proc/version', `${w2.c}/env.yaml`);
  const c = cli(['check', '--config-dir', w2.c, '--schema-dir', w2.s, ...FOLLOW]);
  const t = Date.now();
  const d2 = spawn('node', [bin, 'run', '--config-dir', w2.c, '--schema-dir', w2.s, ...FOLLOW], { stdio: 'ignore' });
  const code = await new Promise((r) => { const timer = setTimeout(() => { d2.kill('SIGKILL'); r('still running after 20 s'); }, 20000); d2.on('exit', (x) => { clearTimeout(timer); r(x); }); });
  result.unstableInitial = { runExit: code, ms: Date.now() - t, checkExit: c.code, checkOut: c.out.trim().split('\n').slice(0, 2) };
}
console.log(JSON.stringify({ unstable: result.unstable, unstableInitial: result.unstableInitial }));
{ // 3. EMFILE via prlimit
  const w = await world(); await w.schema('app'); await w.config('app.yaml', 'port: 1\n');
  const d = await daemon(w, ['--batch-policy', 'per-file']);
  const [soft, hard] = execFileSync('prlimit', ['--pid', String(d.child.pid), '--nofile', '--raw', '--noheadings', '--output', 'SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
  execFileSync('prlimit', ['--pid', String(d.child.pid), `--nofile=3:${hard}`]);
  await w.config('app.yaml', 'port: 2\n');
  for (let i = 0; i < 100 && !(await d.log()).includes('EMFILE'); i++) await sleep(100);
  const sawEmfile = (await d.log()).includes('EMFILE');
  execFileSync('prlimit', ['--pid', String(d.child.pid), `--nofile=${soft}:${hard}`]);
  const t = Date.now(); let port, ms;
  while (Date.now() - t < 15_000) { port = (await (await fetch(`${d.url}/v1/configs/app`)).json()).port; if (port === 2) { ms = Date.now() - t; break; } await sleep(100); }
  const st = await d.status();
  result.transient = { sawEmfile, servedAfter15s: port, msToConverge: ms ?? 'never (15 s)', errors: st.errors };
  d.stop();
}
console.log(JSON.stringify({ transient: result.transient }));
{ // 8 + 9: check with links out and a too-deep dir
  const w = await world(); await w.schema('app'); await w.schema('stolen'); await w.schema('ext/db'); await w.config('app.yaml', 'port: 1\n');
  await mkdir(`${w.root}/secret`); await writeFile(`${w.root}/secret/stolen.yaml`, 'port: 6\n');
  await mkdir(`${w.root}/foreign`); await writeFile(`${w.root}/foreign/db.yaml`, 'port: 7\n');
  await symlink(`${w.root}/secret/stolen.yaml`, `${w.c}/stolen.yaml`); await symlink(`${w.root}/foreign`, `${w.c}/ext`);
  const c = cli(['check', '--config-dir', w.c, '--schema-dir', w.s]);
  const d = await daemon(w, ['--start-with-valid']);
  const served = (await fetch(`${d.url}/v1/configs/stolen`)).status;
  d.stop();
  result.links = { checkExit: c.code, checkOut: c.out.trim().split('\n'), servedStolenHttpStatus: served };
  const w2 = await world(); await w2.schema('app'); await w2.config('app.yaml', 'port: 1\n');
  await w2.config(`${Array.from({ length: 33 }, (_, i) => `d${i}`).join('/')}/lost.yaml`, 'port: "not a number"\n');
  const c2 = cli(['check', '--config-dir', w2.c, '--schema-dir', w2.s]);
  result.depth = { checkExit: c2.code, checkOut: c2.out.trim().split('\n').map((l) => l.replace(/.*\/d3[01]/, '…')) };
}
console.log(JSON.stringify({ links: result.links, depth: result.depth }));
{ // 10. a\b.yaml and publishing
  const w = await world(); await w.schema('app'); await w.schema('a\\b'); await w.config('app.yaml', 'port: 1\n');
  const pub = `${w.root}/publish`;
  const d = await daemon(w, ['--batch-policy', 'per-file', '--publish-dir', pub]);
  await sleep(1000);
  await writeFile(`${w.c}/a\\b.yaml`, 'port: 5\n');
  await sleep(1000);
  await w.config('app.yaml', 'port: 2\n');
  await sleep(3000);
  const published = JSON.parse(await readFile(`${pub}/app.json`, 'utf8').catch(() => 'null'))?.port;
  const st = await d.status();
  const ab = st.configs.find((c) => c.name === 'a\\b');
  result.name = { publishedAppPort: published, servedAppPort: (await (await fetch(`${d.url}/v1/configs/app`)).json()).port, nameState: ab?.state, nameCode: ab?.error?.code, publishFailures: (await d.log()).split('\n').filter((l) => /publish/.test(l) && /"level":(50|40)/.test(l)).length };
  d.stop();
}
console.log(JSON.stringify({ name: result.name }));
