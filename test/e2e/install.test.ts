// hotconf as a stranger installs it: the packed tarball (`npm pack`) into a fresh project, on a PATH with node and
// npm but no C/C++ compiler, make or Python (as on node:20-slim or a bare CI runner), from the npm cache alone
// (`--offline`). Then the README's library example, compiled by the real tsc with `tsc --init`'s defaults, runs
// there, and `npx hotconf check` checks the project's own ./config: a broken one exits 1 and names the directory.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { access, constants, cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { tempDir, until } from '../helpers.js';
import { childEnv, ROOT, runCommand } from './cli-helpers.js';

// The receiving end, as systemd's: the repository's own unix-dgram (built by `npm ci` where a compiler is).
const { createSocket } = createRequire(import.meta.url)('unix-dgram') as typeof import('unix-dgram');

interface Run {
  code: number | null;
  out: string;
  err: string;
}

async function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  const r = await runCommand(cmd, args, { cwd, env });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

/** The first `name` on the test's own PATH. */
async function onPath(name: string): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, name);
    if (await access(file, constants.X_OK).then(() => true, () => false)) return file;
  }
  throw new Error(`${name} is not on the PATH`);
}

/** A PATH of one directory: node, npm, npx and the shell basics npm's scripts use (and `extra`); no compiler,
 *  make or Python. */
async function bareBin(dir: string, extra: string[] = []): Promise<string> {
  await mkdir(dir);
  await symlink(process.execPath, path.join(dir, 'node'));
  for (const tool of ['npm', 'npx', 'sh', 'env', 'cat', 'ls', 'rm', 'mkdir', 'cp', 'mv', 'chmod', 'uname', ...extra]) {
    await symlink(await onPath(tool), path.join(dir, tool));
  }
  return dir;
}

it('the packed tarball installs offline without a compiler; the README example and `npx hotconf check` work there', { timeout: 300_000 }, async (ctx) => {
  await using tmp = await tempDir();
  const npm = await onPath('npm');
  const env = childEnv();
  delete env.npm_config_python; // node-gyp would look there before the PATH
  for (const k of ['PYTHON', 'CC', 'CXX', 'npm_config_node_gyp']) delete env[k];

  // 1. Pack the built package (dist/ is built by `npm test`'s pretest), as `npm publish` would.
  await mkdir(tmp.file('pack'));
  const packed = await run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp.file('pack')], ROOT, env);
  if (packed.code !== 0) ctx.skip(`npm pack failed, nothing to install: ${packed.err.trim().split('\n').at(-1)}`);
  const { filename, files } = (JSON.parse(packed.out) as Array<{ filename: string; files: Array<{ path: string }> }>)[0]!;
  const tarball = tmp.file(path.join('pack', filename));
  const shipped = files.map((f) => f.path);
  expect(shipped).toContain('LICENSE');
  expect(shipped).toContain('dist/cli/main.js');
  expect(shipped.filter((f) => f.endsWith('.map'))).toEqual([]);

  // 2. A fresh project; fill the npm cache with what the install needs (scripts off: nothing is built here).
  const app = tmp.file('app');
  await mkdir(app);
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const fill = await run(npm, ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball], app, env);
  expect(fill.code, fill.err).toBe(0);
  await rm(path.join(app, 'node_modules'), { recursive: true });
  await rm(path.join(app, 'package-lock.json'));

  // 3. The real install, scripts on, offline, on a PATH where node-gyp finds no compiler, make or Python.
  const bin = await bareBin(tmp.file('bin'));
  const bare = { ...env, PATH: bin };
  const tools = await run('/bin/sh', ['-c', 'command -v cc gcc g++ c++ clang make python3 python'], app, bare);
  expect(tools.out).toBe('');
  const install = await run(path.join(bin, 'npm'), ['install', '--offline', '--no-audit', '--no-fund', tarball], app, bare);
  expect(install.code, install.err).toBe(0);
  expect(install.err).not.toMatch(/EBADENGINE|gyp ERR/);

  // 4. The README's library example, compiled with `tsc --init`'s defaults by the real tsc, run by Node.
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const code = /```ts\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('## Library quick-start')))?.[1];
  expect(code).toBeDefined();
  await writeFile(path.join(app, 'quickstart.ts'), code!);
  await cp(path.join(ROOT, 'config'), path.join(app, 'config'), { recursive: true });
  await cp(path.join(ROOT, 'schemas'), path.join(app, 'schemas'), { recursive: true });
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  expect((await run(process.execPath, [tsc, '--init'], app, bare)).code).toBe(0);
  const compiled = await run(process.execPath, [tsc, '-p', '.'], app, bare);
  expect(compiled.code, compiled.out).toBe(0);
  const yaml = await readFile(path.join(app, 'config', 'app.yaml'), 'utf8');
  const child = spawn(process.execPath, ['quickstart.js'], { cwd: app, env: bare, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    await until(() => err.includes('hotconf ready') || child.exitCode !== null, 'the example to load its config', { timeoutMs: 30_000 });
      await writeFile(path.join(app, 'config', 'app.yaml'), yaml.replace('port: 8080', 'port: 9090'));
    expect(await exited, err).toBe(0);
  } finally {
    child.kill();
  }
  expect(out).toMatch(/v2: app changed/);

  // 5. `npx hotconf check` checks this project's ./config + ./schemas, not the package's demo.
  const npx = path.join(bin, 'npx');
  const good = await run(npx, ['--offline', 'hotconf', 'check'], app, bare);
  expect(good.out).toMatch(/^checking \.\/config against the schemas in \.\/schemas$/m);
  expect(good.code, good.out + good.err).toBe(0);
  await writeFile(path.join(app, 'config', 'app.yaml'), (await readFile(path.join(app, 'config', 'app.yaml'), 'utf8')).replace('port: 9090', 'port: 70000'));
  const bad = await run(npx, ['--offline', 'hotconf', 'check'], app, bare);
  expect(bad.code).toBe(1);
  expect(bad.out).toMatch(/^checking \.\/config against the schemas in \.\/schemas$/m);
  expect(bad.out).toMatch(/config\/app\.yaml:\d+:\d+: \/server\/port: must be <= 65535/);
  expect(bad.out).toMatch(/, 1 invalid$/m);
  await writeFile(path.join(app, 'config', 'app.yaml'), yaml);

  // 6. sd_notify from that install. unix-dgram, the native addon, could not be built, and npm left it out (an
  //    optional dependency); systemd-notify sends the datagrams instead, and the daemon says so once. Without
  //    systemd-notify either, it says in one error line what is missing and runs on.
  expect(await access(path.join(app, 'node_modules', 'unix-dgram')).then(() => true, () => false)).toBe(false);
  const cli = path.join(app, 'node_modules', 'hotconf', 'dist', 'cli', 'main.js');
  const notify = tmp.file('notify.sock');
  const received: string[] = [];
  const socket = createSocket('unix_dgram', (buf) => received.push(buf.toString()));
  socket.bind(notify);
  const daemon = async (pathDir: string, until_: (lines: Array<Record<string, unknown>>) => boolean, what: string) => {
    const lines: Array<Record<string, unknown>> = [];
    let buf = '';
    const child = spawn(process.execPath, [cli, 'run', '--no-pretty'], { cwd: app, env: { ...bare, PATH: pathDir, NOTIFY_SOCKET: notify }, stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
    });
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await until(() => until_(lines), what, { timeoutMs: 30_000 });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await closed).toBe(0);
    return lines.filter((l) => l.module === 'sd_notify');
  };
  try {
    const withNotify = await bareBin(tmp.file('bin-notify'), ['systemd-notify']);
    const via = await daemon(withNotify, () => received.some((m) => m.split('\n').includes('READY=1')), 'READY=1 through systemd-notify');
    expect(via).toHaveLength(1);
    expect(via[0]).toMatchObject({ level: 40, via: path.join(withNotify, 'systemd-notify') });
    expect(String(via[0]!.msg)).toMatch(/^sd_notify through systemd-notify: unix-dgram .* is not installed\. .*NotifyAccess=all/);

    const none = await daemon(bin, (lines) => lines.some((l) => l.msg === 'hotconf running'), 'the daemon running without sd_notify');
    expect(none).toHaveLength(1);
    expect(none[0]).toMatchObject({ level: 50, socket: notify });
    expect(String(none[0]!.msg)).toMatch(/^sd_notify disabled: neither unix-dgram .* nor systemd-notify is available/);
  } finally {
    socket.close();
  }
});
