// The container image, built from the Dockerfile and run as a platform would run it: read-only root file
// system, no capabilities, the configs mounted read-only. It starts, serves /readyz, keeps the last good config
// when an edit is invalid, refuses an invalid config at start, and stops with 0 on SIGTERM.
//
// No registry is reachable here, so test/deploy/local-bases.sh makes the two bases the Dockerfile names from this
// machine's own Node.js (buildah). Needs root: .ci/run runs as root and installs podman, buildah and runc. Where
// root is missing this file is skipped (and says so); where root is there but a tool is missing, it fails.
import { execFile } from 'node:child_process';
import { chmod, cp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, until, type TempDir } from '../helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const IMAGE = `localhost/hotconf:e2e-${process.pid}`;
const root = process.getuid?.() === 0;
if (!root) console.warn('image.test.ts skipped: building the bases (buildah mount) and running podman need root');

// runc: crun refuses a cgroup v1/v2 hybrid host (`cgroups in hybrid mode not supported`), as this machine is.
// Explicit ulimits: podman's defaults (nofile 1048576, nproc from the host) cannot be set without
// CAP_SYS_RESOURCE, which a sandboxed CI may lack (`setrlimit RLIMIT_NOFILE: Operation not permitted`).
const RUNTIME = ['--runtime', 'runc', '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: ROOT, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(`${cmd} is not installed: .ci/run installs podman, buildah and runc (apt-get install -y podman buildah runc)`));
        return;
      }
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr: err && typeof err.code !== 'number' ? `${stderr}\n${err.message}` : stderr });
    });
  });
}

async function ok(result: Promise<Result>, what: string): Promise<string> {
  const r = await result;
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const podman = (...args: string[]) => run('podman', args);
/** `podman run --rm` of the image, as Kubernetes runs it: read-only root (no tmpfs either), no capabilities. */
const runImage = (mounts: string[], args: string[]) =>
  podman('run', '--rm', ...RUNTIME, '--read-only', '--read-only-tmpfs=false', '--cap-drop=ALL', '--security-opt', 'no-new-privileges', ...mounts, IMAGE, ...args);

/** /etc/hotconf for the container: the repository's example configs, the API on all interfaces of the container. */
async function etcHotconf(): Promise<TempDir> {
  const tmp = await tempDir('hotconf-image-');
  await cp(path.join(ROOT, 'config'), tmp.file('config'), { recursive: true });
  await cp(path.join(ROOT, 'schemas'), tmp.file('schemas'), { recursive: true });
  await rm(tmp.file('schemas/hotconf.schema.json'));
  await tmp.write('hotconf.yaml', 'configDir: /etc/hotconf/config\nschemaDir: /etc/hotconf/schemas\nhttp:\n  listen: 0.0.0.0:8081\n  allowAllInterfaces: true\n');
  await chmod(tmp.dir, 0o755); // the image's user (10001) reads it through the mount
  return tmp;
}

describe.skipIf(!root)('the container image (Dockerfile)', () => {
  beforeAll(async () => {
    await ok(run(path.join(ROOT, 'test', 'deploy', 'local-bases.sh'), [], 120_000), 'local-bases.sh');
    await ok(
      run(
        'podman',
        [
          'build', ...RUNTIME, '--layers=false',
          '--build-arg', 'BUILD_IMAGE=localhost/hotconf-base/build:node20',
          '--build-arg', 'RUNTIME_IMAGE=localhost/hotconf-base/runtime:node20',
          '-t', IMAGE, '.',
        ],
        420_000,
      ),
      'podman build',
    );
  }, 600_000);

  afterAll(async () => {
    // the bases too: a rebuilt base leaves the previous one behind, untagged, on every run
    await podman('rmi', '-f', IMAGE, 'localhost/hotconf-base/build:node20', 'localhost/hotconf-base/runtime:node20');
  }, 60_000);

  it('runs the CLI as a numeric non-root user, with no shell and no npm in it', async () => {
    const [config] = JSON.parse(await ok(podman('image', 'inspect', IMAGE), 'inspect')) as Array<{ Config: { User: string; Entrypoint: string[]; Cmd: string[] } }>;
    expect(config!.Config.User).toBe('10001:10001');
    expect(config!.Config.Entrypoint).toEqual(['/nodejs/bin/node', '/app/dist/cli/main.js']);
    expect(config!.Config.Cmd).toEqual(['run', '--config', '/etc/hotconf/hotconf.yaml']);
    const version = await runImage([], ['--version']);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    for (const tool of ['/bin/sh', '/usr/local/bin/npm', '/usr/bin/env']) {
      const r = await podman('run', '--rm', ...RUNTIME, '--entrypoint', tool, IMAGE);
      expect(r.code, `${tool} in the image`).not.toBe(0);
      expect(r.stderr).toMatch(/no such file or directory/);
    }
    // production dependencies only: what package.json lists under dependencies, no TypeScript, no test runner
    const listed = await podman('run', '--rm', ...RUNTIME, '--entrypoint', '/nodejs/bin/node', IMAGE, '-e', "console.log(require('fs').readdirSync('/app/node_modules').join(' '))");
    const modules = listed.stdout.trim().split(' ');
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies)) expect(modules).toContain(dep.split('/')[0]);
    for (const dev of ['typescript', 'vitest', 'eslint']) expect(modules).not.toContain(dev);
  }, 120_000);

  it('starts with a read-only root, serves /readyz, keeps the last good config when an edit is invalid, stops with 0', async () => {
    await using etc = await etcHotconf();
    const name = `hotconf-e2e-${process.pid}`;
    await ok(
      podman('run', '-d', '--name', name, ...RUNTIME, '--read-only', '--read-only-tmpfs=false', '--cap-drop=ALL', '--security-opt', 'no-new-privileges',
        '-p', '127.0.0.1::8081', '-v', `${etc.dir}:/etc/hotconf:ro`, IMAGE),
      'podman run -d',
    );
    try {
      const port = (await ok(podman('port', name, '8081'), 'podman port')).trim().split(':').at(-1);
      const url = `http://127.0.0.1:${port}`;
      const ready = await until(() => fetch(`${url}/readyz`).then((r) => (r.ok ? r.json() : undefined), () => undefined), '/readyz 200', { timeoutMs: 30_000, intervalMs: 100 });
      expect(ready).toEqual({ ready: true, version: 1 });

      await etc.writeAtomic('config/app.yaml', (await readFile(etc.file('config/app.yaml'), 'utf8')).replace('port: 8080', 'port: 99999'));
      const status = await until(
        async () => {
          const s = (await (await fetch(`${url}/v1/status`)).json()) as { errors: number; version: number };
          return s.errors === 1 ? s : undefined;
        },
        'the invalid edit reported',
      );
      expect(status.version).toBe(1);
      expect(((await (await fetch(`${url}/v1/configs/app`)).json()) as { server: { port: number } }).server.port).toBe(8080);
      expect((await podman('logs', name)).stdout).toContain('/etc/hotconf/config/app.yaml:6:9: /server/port: must be <= 65535');

      await ok(podman('stop', '-t', '20', name), 'podman stop');
      expect((await ok(podman('inspect', name, '--format', '{{.State.ExitCode}}'), 'inspect')).trim()).toBe('0');
    } finally {
      await podman('rm', '-f', name);
    }
  }, 120_000);

  it('refuses an invalid config: `run` exits 1 and `check` exits 1, both naming file:line:col', async () => {
    await using etc = await etcHotconf();
    await etc.write('config/app.yaml', 'name: shop-api\nserver:\n  host: 0.0.0.0\n  port: 99999\n');
    const mounts = ['-v', `${etc.dir}:/etc/hotconf:ro`];
    const started = await runImage(mounts, []);
    expect(started.code).toBe(1);
    expect(started.stdout).toContain('/etc/hotconf/config/app.yaml:4:9: /server/port: must be <= 65535');
    expect(started.stdout).toMatch(/initial config is invalid; not starting/);
    const checked = await runImage(mounts, ['check', '--config', '/etc/hotconf/hotconf.yaml']);
    expect(checked.code).toBe(1);
    expect(checked.stdout).toContain('/etc/hotconf/config/app.yaml:4:9: /server/port: must be <= 65535');
  }, 120_000);
});
