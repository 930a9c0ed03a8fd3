// The unit under a real systemd (PID 1 of a throw-away container, booted by systemd-box): the packed tarball
// installed as the README says, systemd/hotconf.service verbatim. `systemctl reload` returns only after the
// reload, and fails when it refused a config; journald files a refused config at priority err.
//
// systemd-box is a tool of this machine, not of the repository (it needs root, overlayfs and systemd-nspawn):
// set $SYSTEMD_BOX to its path (default /work/shared/tools/systemd-box). Where it is missing, or not root, this
// file is skipped, and says so.
import { execFile } from 'node:child_process';
import { access, constants, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, type TempDir } from '../helpers.js';
import { ROOT } from './cli-helpers.js';

const BOX = process.env.SYSTEMD_BOX ?? '/work/shared/tools/systemd-box';
const NAME = `hotconf-e2e-${process.pid}`;
const available = process.getuid?.() === 0 && (await access(BOX, constants.X_OK).then(() => true, () => false));
if (!available) console.warn(`systemd-box.test.ts skipped: needs root and ${BOX} (set $SYSTEMD_BOX)`);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 120_000, cwd = ROOT): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr: err && code === -1 ? `${stderr}\n${err.message}` : stderr });
    });
  });
}

/** Runs `sh -c script` in the box. */
const box = (script: string, timeoutMs?: number) => run(BOX, ['exec', '--name', NAME, '--', 'sh', '-c', script], timeoutMs);

async function ok(result: Promise<Result>, what: string): Promise<string> {
  const r = await result;
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The watcher waits a minute: within these tests only a reload's rescan commits an edit. */
const SETTINGS = 'configDir: config\nschemaDir: schemas\ndebounceMs: 60000\nmaxBatchDelayMs: 60000\nhttp:\n  listen: 127.0.0.1:7070\n';

describe.skipIf(!available)('systemd/hotconf.service under systemd', () => {
  let pack: TempDir;

  beforeAll(async () => {
    pack = await tempDir('hotconf-box-');
    // Built first (whether or not `npm pack` runs a build of its own); installing the tarball once on the host
    // fills ~/.npm, which the box (no network) installs from.
    await ok(run('npm', ['run', 'build']), 'npm run build');
    await ok(run('npm', ['pack', '--pack-destination', pack.dir]), 'npm pack');
    const tgz = path.join(pack.dir, (await readdir(pack.dir)).find((f) => f.endsWith('.tgz'))!);
    await ok(run('npm', ['install', '-g', '--prefix', pack.file('global'), '--no-audit', '--no-fund', tgz]), 'npm install (host cache)');
    await pack.write('hotconf.yaml', SETTINGS);
    await ok(run(BOX, ['start', '--name', NAME], 150_000), 'systemd-box start');
    await ok(run(BOX, ['cp', '--name', NAME, tgz, '/root/']), 'cp tarball');
    await ok(box('npm install -g --prefix /usr/local --offline --no-audit --no-fund /root/hotconf-*.tgz', 180_000), 'npm install in the box');
    await ok(run(BOX, ['cp', '--name', NAME, path.join(ROOT, 'systemd', 'hotconf.service'), '/etc/systemd/system/']), 'cp unit');
    await ok(run(BOX, ['cp', '--name', NAME, path.join(ROOT, 'config'), path.join(ROOT, 'schemas'), pack.file('hotconf.yaml'), '/etc/hotconf/']), 'cp configs');
    await ok(box('rm /etc/hotconf/schemas/hotconf.schema.json && systemctl daemon-reload && systemctl start hotconf'), 'systemctl start');
  }, 600_000);

  afterAll(async () => {
    await run(BOX, ['stop', '--name', NAME], 120_000);
    await pack?.[Symbol.asyncDispose]();
  }, 180_000);

  it('`systemctl reload` returns after the reload: 20 of 20 edits are served the moment it returns', async () => {
    // One script in the box: 20 rounds of edit, reload, read back over HTTP without waiting.
    const out = await ok(
      box(
        `for i in $(seq 1 20); do
           v=$((20000 + i))
           sed -i "s/requestTimeoutMs: .*/requestTimeoutMs: $v/" /etc/hotconf/config/app.yaml
           systemctl reload hotconf || echo "reload $i failed"
           echo "$v $(curl -s 127.0.0.1:7070/v1/configs/app)"
         done`,
        180_000,
      ),
      '20 reloads',
    );
    const rounds = out.trim().split('\n');
    expect(rounds).toHaveLength(20);
    for (const round of rounds) {
      const [wanted, json] = [round.slice(0, round.indexOf(' ')), round.slice(round.indexOf(' ') + 1)];
      expect((JSON.parse(json) as { server: { requestTimeoutMs: number } }).server.requestTimeoutMs, round).toBe(Number(wanted));
    }
  }, 240_000);

  it('a refused config makes `systemctl reload` fail, says why in the journal, and the service keeps running its last good config', async () => {
    const refused = await box('sed -i "s/port: 8080/port: 99999/" /etc/hotconf/config/app.yaml && systemctl reload hotconf');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Job for hotconf\.service failed/);
    const state = await ok(box('systemctl show -p ActiveState,SubState,NRestarts,StatusText hotconf'), 'systemctl show');
    expect(state).toMatch(/ActiveState=active/);
    expect(state).toMatch(/SubState=running/);
    expect(state).toMatch(/NRestarts=0/);
    expect(state).toMatch(/StatusText=version \d+, 3 configs, 1 errors/);
    // ExecReload='s own report: the file, line and column, then the verdict
    const journal = await ok(box('journalctl -u hotconf --no-pager -o cat -n 20'), 'journalctl');
    expect(journal).toContain('/etc/hotconf/config/app.yaml:6:9: /server/port: must be <= 65535');
    expect(journal).toMatch(/hotconf: reload failed \(process \d+: version \d+, \d+ ms\): 1 problem\(s\) above/);
    const served = await ok(box('curl -s 127.0.0.1:7070/v1/configs/app'), 'curl');
    expect((JSON.parse(served) as { server: { port: number } }).server.port).toBe(8080);

    const fixed = await box('sed -i "s/port: 99999/port: 8080/" /etc/hotconf/config/app.yaml && systemctl reload hotconf');
    expect(fixed.code, fixed.stderr).toBe(0);
  }, 120_000);

  it('`journalctl -u hotconf -p err` lists a refused config (pino levels mapped to journald priorities)', async () => {
    await ok(box('sed -i "s/port: 8080/port: 70000/" /etc/hotconf/config/app.yaml && (systemctl reload hotconf; true)'), 'break app.yaml');
    const errors = await ok(box('journalctl -u hotconf -p err --no-pager -o cat'), 'journalctl -p err');
    expect(errors).toMatch(/\/etc\/hotconf\/config\/app\.yaml:6:9: \/server\/port: must be <= 65535/);
    await ok(box('sed -i "s/port: 70000/port: 8080/" /etc/hotconf/config/app.yaml && systemctl reload hotconf'), 'fix app.yaml');
  }, 120_000);
});
