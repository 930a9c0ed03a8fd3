// Issue 18 against the real daemon and CLI (dist/cli/main.js) as child processes: file descriptors under a low
// limit (prlimit), the token rule, the notify command's environment and its JSON name lists, a pid file naming
// PID 1 (in a private PID namespace), published files' modes under a 022 umask, and names that carry control
// characters through `hotconf check`.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { until } from '../helpers.js';
import { world, type World } from '../hotconf/fixtures.js';
import { BIN, childEnv, hotconf, startHotconf } from './cli-helpers.js';

const OBJECT_SCHEMA = { type: 'object', properties: { n: { type: 'integer' } } };

async function appWorld(): Promise<World> {
  const w = await world();
  await w.schema('app', OBJECT_SCHEMA);
  await w.config('app.yaml', 'n: 1\n');
  return w;
}

const runArgs = (w: World, ...more: string[]) => ['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--no-pretty', ...more];

describe('file descriptors (point 4)', () => {
  it('600 parked long-polls under a 256-descriptor limit: the connection limit answers 503 + Retry-After or drops, and a valid edit still applies', async () => {
    await using w = await appWorld();
    await using d = startHotconf(runArgs(w, '--http', '127.0.0.1:0'), { prefix: ['prlimit', '--nofile=256:256'] });
    const listening = await d.line((l) => l.msg === 'http listening', 'the API listening');
    const port = Number(new URL(String(listening.url)).port);
    const sockets: net.Socket[] = [];
    let refused = 0;
    try {
      for (let i = 0; i < 600; i++) {
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => undefined);
        socket.setEncoding('latin1');
        socket.on('data', (text: string) => {
          if (/^HTTP\/1\.1 503 .*\r\n[^]*Retry-After: 5\r\n/i.test(text)) refused++;
        });
        socket.write('GET /v1/configs/app?wait=120&after=1 HTTP/1.1\r\nHost: localhost\r\n\r\n');
        sockets.push(socket);
      }
      await until(() => refused > 0, 'connections over the limit answered 503 with Retry-After', { timeoutMs: 20_000 });
      await w.configAtomic('app.yaml', 'n: 2\n');
      // The parked long-polls are woken by the commit: the edit went through while 600 clients pressed.
      await d.line((l) => l.msg === 'batch committed' || (typeof l.version === 'number' && l.version >= 2), 'version 2 committed', 20_000);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
    const status = (await (await fetch(`${String(listening.url)}/v1/status`)).json()) as { version: number; errors: number };
    expect(status).toMatchObject({ version: 2, errors: 0 });
    expect(JSON.stringify(d.lines)).not.toContain('EMFILE');
    expect(listening.maxConnections).toBe(128); // half the limit
  }, 60_000);
});

describe('the bearer token (point 7)', () => {
  it('one rule for $HOTCONF_HTTP_TOKEN and http.tokenFile: at least 16 visible characters, with a clear error', async () => {
    await using w = await appWorld();
    const env = await hotconf(runArgs(w, '--http', '127.0.0.1:0'), { env: { HOTCONF_HTTP_TOKEN: 'a' } });
    expect(env.code).toBe(3);
    expect(env.stdout).toContain('$HOTCONF_HTTP_TOKEN is too short (1 characters; at least 16');
    expect(env.stdout).not.toContain('"a"');

    const file = w.tmp.file('token');
    await writeFile(file, 'a\n');
    const fromFile = await hotconf(runArgs(w, '--http', '127.0.0.1:0', '--http-token-file', file));
    expect(fromFile.code).toBe(3);
    expect(fromFile.stdout).toContain(`the token in ${file} is too short (1 characters; at least 16`);

    const spaced = await hotconf(runArgs(w, '--http', '127.0.0.1:0'), { env: { HOTCONF_HTTP_TOKEN: 'sixteen chars and spaces' } });
    expect(spaced.code).toBe(3);
    expect(spaced.stdout).toContain('$HOTCONF_HTTP_TOKEN must be visible ASCII characters only');

    await using ok = startHotconf(runArgs(w, '--http', '127.0.0.1:0'), { env: { HOTCONF_HTTP_TOKEN: '0123456789abcdef' } });
    const listening = await ok.line((l) => l.msg === 'http listening', 'the API listening with a 16-character token');
    expect(listening.auth).toBe(true);
  });
});

describe('the notify command (points 13 and 15)', () => {
  it('runs without the credentials and control variables of the daemon, and gets the names as JSON arrays', async () => {
    await using w = await world();
    for (const name of ['a', 'b', 'a,b']) {
      await w.schema(name, OBJECT_SCHEMA);
      await w.config(`${name}.yaml`, 'n: 1\n');
    }
    const record = w.tmp.file('env.ndjson');
    const script = `require('node:fs').appendFileSync(process.argv[1], JSON.stringify(process.env) + '\\n')`;
    const settings = w.tmp.file('hotconf.yaml');
    await writeFile(settings, JSON.stringify({ configDir: w.configDir, schemaDir: w.schemaDir, notify: { command: { command: [process.execPath, '-e', script, record] } } }));
    const secrets = {
      HOTCONF_HTTP_TOKEN: 'token-0123456789abcdef',
      HOTCONF_ETCD_PASSWORD: 'etcd-password-42',
      HOTCONF_LOG_LEVEL: 'info',
      CREDENTIALS_DIRECTORY: '/run/credentials/hotconf.service',
      WATCHDOG_PID: '1',
    };
    await using d = startHotconf(['run', '--config', settings, '--no-pretty'], { env: { ...secrets, APP_SETTING: 'kept' } });
    const envs = async (count: number) => {
      await until(async () => (await readFile(record, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).length >= count, `${count} notice(s)`);
      return (await readFile(record, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    };
    const [first] = await envs(1);
    for (const key of Object.keys(secrets)) expect(first).not.toHaveProperty(key);
    expect(Object.keys(first!).filter((k) => k.startsWith('HOTCONF_')).sort()).toEqual(['HOTCONF_CHANGED', 'HOTCONF_REMOVED', 'HOTCONF_VERSION']);
    expect(first!.APP_SETTING).toBe('kept');
    expect(first!.PATH).toBe(process.env.PATH);
    // One config `a,b` and two configs `a` and `b` can be told apart.
    expect(JSON.parse(first!.HOTCONF_CHANGED!)).toEqual(['a', 'a,b', 'b']);
    expect(JSON.parse(first!.HOTCONF_REMOVED!)).toEqual([]);

    await rm(path.join(w.configDir, 'a,b.yaml'));
    const [, second] = await envs(2);
    expect(JSON.parse(second!.HOTCONF_CHANGED!)).toEqual([]);
    expect(JSON.parse(second!.HOTCONF_REMOVED!)).toEqual(['a,b']);
    expect(JSON.stringify(d.lines)).not.toContain('etcd-password-42');
  });
});

describe('the signal target (point 14)', () => {
  it('a pid file holding 1 is refused like `pid: 1`: PID 1 of a private PID namespace gets no SIGHUP', async () => {
    await using w = await appWorld();
    const pidFile = w.tmp.file('app.pid');
    await writeFile(pidFile, '1\n');
    const settings = w.tmp.file('hotconf.yaml');
    await writeFile(settings, JSON.stringify({ configDir: w.configDir, schemaDir: w.schemaDir, notify: { signal: { pidFile } } }));
    const hups = w.tmp.file('hups');
    // PID 1 of the namespace records every SIGHUP and runs the daemon as its child.
    const init = `
      const fs = require('node:fs');
      process.on('SIGHUP', () => fs.appendFileSync(${JSON.stringify(hups)}, 'HUP\\n'));
      const c = require('node:child_process').spawn(process.execPath, [${JSON.stringify(BIN)}, 'run', '--config', ${JSON.stringify(settings)}, '--no-pretty'], { stdio: 'inherit' });
      process.on('SIGTERM', () => c.kill('SIGTERM'));
      c.on('exit', (code) => process.exit(code ?? 1));`;
    const child = spawn('unshare', ['--user', '--map-root-user', '--pid', '--fork', '--kill-child', process.execPath, '-e', init], {
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    const exited = once(child, 'exit');
    try {
      await until(() => /"msg":"signal (failed|sent)"/.test(out), 'the signal attempted', { timeoutMs: 20_000 });
      // A SIGHUP to PID 1 would be recorded by now (its handler runs before the daemon logs `signal sent`).
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await readFile(hups, 'utf8').catch(() => '')).toBe('');
      expect(out).toContain(`refusing to signal pid 1 (from ${pidFile})`);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });
});

describe('published files (point 12)', () => {
  it('under a 022 umask they are owner-only by default; with publish.group the group reads them, nobody else', async () => {
    await using w = await appWorld();
    await chmod(w.tmp.file(''), 0o755); // the temp dir itself must be traversable by the "application" user below
    const umask022 = ['sh', '-c', 'umask 022; exec "$0" "$@"'];
    const out = w.tmp.file('published');
    {
      await using d = startHotconf(runArgs(w, '--publish-dir', out), { prefix: umask022 });
      await d.line((l) => l.msg === 'published', 'published');
      const [vdir] = (await readdir(out)).filter((e) => e.startsWith('..v'));
      expect(((await stat(out)).mode & 0o777).toString(8)).toBe('700');
      expect(((await stat(path.join(out, vdir!))).mode & 0o777).toString(8)).toBe('700');
      expect(((await stat(path.join(out, 'app.json'))).mode & 0o777).toString(8)).toBe('600');
      d.signal('SIGTERM');
      await d.exited;
    }
    await rm(out, { recursive: true });
    const settings = w.tmp.file('hotconf.yaml');
    const gid = 4242;
    await writeFile(settings, JSON.stringify({ configDir: w.configDir, schemaDir: w.schemaDir, publish: { dir: out, group: gid } }));
    await using d = startHotconf(['run', '--config', settings, '--no-pretty'], { prefix: umask022 });
    await d.line((l) => l.msg === 'published', 'published');
    const file = await stat(path.join(out, 'app.json'));
    expect({ mode: (file.mode & 0o777).toString(8), gid: file.gid }).toEqual({ mode: '640', gid });
    expect(((await stat(out)).mode & 0o777).toString(8)).toBe('750');
    // The application: another user, in the group; and a stranger, not in it.
    const readAs = (g: number) =>
      new Promise<number | null>((resolve) => spawn('setpriv', ['--reuid=65534', `--regid=${g}`, '--clear-groups', 'cat', path.join(out, 'app.json')], { stdio: 'ignore' }).on('exit', resolve));
    expect(await readAs(gid)).toBe(0);
    expect(await readAs(65534)).not.toBe(0);
  });
});

describe('names with control characters (point 11)', () => {
  it('`hotconf check` escapes a newline and an escape sequence in file names: no forged line, nothing for the terminal', async () => {
    await using w = await world();
    const forged = 'x\napp.yaml:1:1: forged';
    const ansi = 'e\x1b[31mred';
    for (const name of [forged, ansi]) await w.schema(name, OBJECT_SCHEMA);
    await w.config(`${forged}.yaml`, 'n: nope\n');
    await w.config(`${ansi}.yaml`, 'n: [\n');
    const res = await hotconf(['check', '--config-dir', w.configDir, '--schema-dir', w.schemaDir]);
    expect(res.code).toBe(1);
    const lines = res.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4); // the directories checked, two errors and the summary
    expect(res.stdout).not.toContain('\x1b');
    expect(lines.some((l) => l.startsWith('app.yaml:1:1: forged'))).toBe(false);
    // Such a name is refused at load (issue 18 point 10, E_NAME), its path still shown escaped.
    expect(res.stdout).toContain('x\\napp.yaml:1:1: forged.yaml: config name "x\\napp.yaml:1:1: forged" cannot be used');
    expect(res.stdout).toContain('e\\e[31mred.yaml:');
  });
});
