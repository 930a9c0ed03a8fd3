// Fleet releases end to end (issue 15), as a user drives them: the real `hotconf push` / `hotconf rollout` CLI and
// real `hotconf run --etcd` daemons (child processes) on a real etcd. A 2,000-config / 20 MB push lands on two
// instances in one version each; a canary of 1 of 3, aborted, then another promoted; an automatic abort when the
// canary instance's schema is stricter than the one push validated with.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { tempDir, until, type TempDir } from '../helpers.js';
import { HAVE_ETCD, startEtcd, type EtcdServer } from '../etcd/etcd-server.js';
import { hotconf, startHotconf, type Daemon } from './cli-helpers.js';

const schema = (maxPort: number) =>
  JSON.stringify({ type: 'object', additionalProperties: false, required: ['port'], properties: { port: { type: 'integer', maximum: maxPort }, pad: { type: 'string' }, i: { type: 'integer' } } });

let etcd: EtcdServer;
let tmp: TempDir;

beforeAll(async () => {
  if (!HAVE_ETCD) return;
  etcd = await startEtcd();
  tmp = await tempDir();
  await tmp.write('schemas/app.schema.json', schema(65535));
  await tmp.write('strict/app.schema.json', schema(1023));
}, 30_000);
afterAll(async () => {
  await etcd?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

interface Sidecar extends Daemon {
  url: string;
  id: string;
}

async function sidecar(prefix: string, id: string, schemaDir = tmp.file('schemas'), env: NodeJS.ProcessEnv = {}): Promise<Sidecar> {
  const d = startHotconf(['run', '--etcd', etcd.url, '--etcd-prefix', prefix, '--schema-dir', schemaDir, '--http', '127.0.0.1:0', '--instance-id', id, '--no-pretty'], { env });
  try {
    const listening = await d.line((l) => l.msg === 'http listening', `sidecar ${id}`, 30_000);
    return Object.assign(d, { url: String(listening.url), id });
  } catch (err) {
    await d[Symbol.asyncDispose]();
    throw err;
  }
}

const get = async (url: string) => (await fetch(url)).json() as Promise<Record<string, unknown>>;
const releaseOf = async (s: Sidecar) => (await get(`${s.url}/v1/status`)).release;
const push = (prefix: string, dir: string, ...extra: string[]) =>
  hotconf(['push', '--etcd', etcd.url, '--etcd-prefix', prefix, '--config-dir', dir, '--schema-dir', tmp.file('schemas'), ...extra]);
const rollout = (prefix: string, ...args: string[]) => hotconf(['rollout', ...args, '--etcd', etcd.url, '--etcd-prefix', prefix]);

describe.skipIf(!HAVE_ETCD)('fleet releases with the real CLI and daemons', () => {
  test('a 2,000-config, 20 MB push lands on two instances, one version each', async () => {
    const prefix = '/e2e-big/';
    const env = { HOTCONF_REQUIRE_SCHEMA: 'false' };
    await tmp.write('big0/app.yaml', 'port: 1\n');
    const first = await push(prefix, tmp.file('big0'), '--json');
    expect(first.code, first.stderr).toBe(0);
    const sidecars = [await sidecar(prefix, 'big-a', tmp.file('schemas'), env), await sidecar(prefix, 'big-b', tmp.file('schemas'), env)];
    try {
      for (const s of sidecars) await until(async () => (await releaseOf(s)) === 1, `${s.id} on release 1`);
      const pad = 'x'.repeat(10_000);
      for (let i = 0; i < 2000; i++) await tmp.write(`big1/svc/c${String(i).padStart(4, '0')}.json`, JSON.stringify({ port: 1000 + (i % 60000), i, pad }));
      const big = await hotconf(['push', '--etcd', etcd.url, '--etcd-prefix', prefix, '--config-dir', tmp.file('big1'), '--schema-dir', tmp.file('schemas'), '--json', '-m', 'twenty megabytes'], { env });
      expect(big.code, big.stderr).toBe(0);
      const report = JSON.parse(big.stdout) as { release: number; changed: string[]; removed: string[] };
      expect(report.release).toBe(2);
      expect(report.changed).toHaveLength(2000);
      for (const s of sidecars) {
        await until(async () => (await releaseOf(s)) === 2, `${s.id} on release 2`, { timeoutMs: 90_000, intervalMs: 250 });
        // One version: one commit for release 2, with every config of it (and app removed), never a part.
        const commits = s.lines.filter((l) => l.msg === 'config committed' && l.release === 2);
        expect(commits).toHaveLength(1);
        expect(commits[0]!.changed).toHaveLength(2000);
        expect(commits[0]!.removed).toEqual(['app']);
        const configs = await get(`${s.url}/v1/configs`);
        expect(configs).toMatchObject({ release: 2 });
        expect(configs.configs).toHaveLength(2000);
        expect(await get(`${s.url}/v1/configs/svc/c1999`)).toEqual({ port: 1000 + 1999, i: 1999, pad });
      }
      // Both at the same release serve the same revision (the head's).
      expect((await get(`${sidecars[0]!.url}/v1/configs`)).sourceRevision).toBe((await get(`${sidecars[1]!.url}/v1/configs`)).sourceRevision);
    } finally {
      for (const s of sidecars) await s[Symbol.asyncDispose]();
    }
  }, 180_000);

  test('a canary of 1 of 3: abort returns it to stable; the next canary is promoted to all', async () => {
    const prefix = '/e2e-canary/';
    await tmp.write('c/app.yaml', 'port: 1\n');
    expect((await push(prefix, tmp.file('c'))).code).toBe(0);
    const sidecars = await Promise.all(['web-1', 'web-2', 'web-3'].map((id) => sidecar(prefix, id)));
    try {
      for (const s of sidecars) await until(async () => (await releaseOf(s)) === 1, `${s.id} on release 1`);
      await until(async () => (JSON.parse((await rollout(prefix, 'status', '--json')).stdout) as { instances: unknown[] }).instances.length === 3, 'three instances registered', { intervalMs: 200 });

      await tmp.write('c/app.yaml', 'port: 2\n');
      const canary = await push(prefix, tmp.file('c'), '--canary', '1', '--json');
      expect(canary.code, canary.stderr).toBe(0);
      const { release, canary: chosen } = JSON.parse(canary.stdout) as { release: number; canary: { ids: string[] } };
      expect(release).toBe(2);
      expect(chosen.ids).toHaveLength(1);
      const [picked] = sidecars.filter((s) => chosen.ids.includes(s.id));
      const others = sidecars.filter((s) => s !== picked);
      await until(async () => (await releaseOf(picked!)) === 2, 'the canary on release 2');
      expect(await get(`${picked!.url}/v1/configs/app`)).toEqual({ port: 2 });
      for (const s of others) expect(await get(`${s.url}/v1/configs/app`)).toEqual({ port: 1 });
      const status = JSON.parse((await rollout(prefix, 'status', '--json')).stdout) as { stable: number; canary: { release: number; ids: string[] }; instances: Array<{ id: string; release: number }> };
      expect(status).toMatchObject({ stable: 1, canary: { release: 2, ids: chosen.ids } });
      await until(async () => {
        const fleet = (await get(`${others[0]!.url}/v1/fleet`)) as { instances: Array<{ id: string; release: number }> };
        return fleet.instances.find((i) => i.id === picked!.id)?.release === 2;
      }, "the canary's record");

      const abort = await rollout(prefix, 'abort');
      expect(abort.code, abort.stderr).toBe(0);
      await until(async () => (await releaseOf(picked!)) === 1, 'the canary back on release 1');
      expect(await get(`${picked!.url}/v1/configs/app`)).toEqual({ port: 1 });

      await tmp.write('c/app.yaml', 'port: 3\n');
      const again = await push(prefix, tmp.file('c'), '--canary', '1', '--json');
      expect(again.code, again.stderr).toBe(0);
      const next = (JSON.parse(again.stdout) as { release: number }).release;
      await until(async () => (await Promise.all(sidecars.map(releaseOf))).filter((r) => r === next).length === 1, 'one canary on the new release');
      const promote = await rollout(prefix, 'promote');
      expect(promote.code, promote.stderr).toBe(0);
      for (const s of sidecars) await until(async () => (await releaseOf(s)) === next, `${s.id} on release ${next}`);
      for (const s of sidecars) expect(await get(`${s.url}/v1/configs/app`)).toEqual({ port: 3 });
    } finally {
      for (const s of sidecars) await s[Symbol.asyncDispose]();
    }
  }, 120_000);

  test('push --canary 1 --auto --wait: the canary instance refuses the release (a stricter schema), aborts it, push exits non-zero', async () => {
    const prefix = '/e2e-auto/';
    // The canary is the id with the lowest sha-256 (the stable hash): that instance runs the stricter schema.
    const ids = ['api-a', 'api-b'].sort((a, b) => (sha(a) < sha(b) ? -1 : 1));
    await tmp.write('auto/app.yaml', 'port: 80\n');
    expect((await push(prefix, tmp.file('auto'))).code).toBe(0);
    const picky = await sidecar(prefix, ids[0]!, tmp.file('strict'));
    const lax = await sidecar(prefix, ids[1]!);
    try {
      for (const s of [picky, lax]) await until(async () => (await releaseOf(s)) === 1, `${s.id} on release 1`);
      await until(async () => (JSON.parse((await rollout(prefix, 'status', '--json')).stdout) as { instances: unknown[] }).instances.length === 2, 'two instances registered', { intervalMs: 200 });

      // Valid for push's schemas (port ≤ 65535), refused by the canary's (port ≤ 1023).
      await tmp.write('auto/app.yaml', 'port: 8080\n');
      const res = await push(prefix, tmp.file('auto'), '--canary', '1', '--auto', '--bake', '30', '--wait', '--timeout', '60');
      expect(res.code, `${res.stdout}${res.stderr}`).toBe(4);
      expect(`${res.stdout}${res.stderr}`).toContain(picky.id);
      // The canary never served it and is back on stable; the other never saw it.
      expect(await get(`${picky.url}/v1/configs/app`)).toEqual({ port: 80 });
      expect(await releaseOf(lax)).toBe(1);
      const status = JSON.parse((await rollout(prefix, 'status', '--json')).stdout) as { stable: number; canary: unknown };
      expect(status).toMatchObject({ stable: 1, canary: null });
      const history = JSON.parse((await hotconf(['history', '--etcd', etcd.url, '--etcd-prefix', prefix, '--json'])).stdout) as Array<{ release: number; state: string }>;
      expect(history.find((h) => h.release === 2)?.state).toMatch(/aborted/);
    } finally {
      await picky[Symbol.asyncDispose]();
      await lax[Symbol.asyncDispose]();
    }
  }, 120_000);
});

function sha(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}
