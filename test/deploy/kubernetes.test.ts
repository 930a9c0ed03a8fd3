// deploy/kubernetes/ as a cluster would read it (no cluster here): parsed, cross-checked field by field, and the
// configs, schemas and hotconf.yaml it carries validated by hotconf itself.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { checkConfigs, validateOnce } from '../../src/index.js';
import { tempDir } from '../helpers.js';

const DIR = path.resolve(import.meta.dirname, '..', '..', 'deploy', 'kubernetes');
const ROOT = path.resolve(import.meta.dirname, '..', '..');

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access,
   @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument --
   manifests are untyped YAML; the assertions are what types them */
async function manifests(): Promise<any[]> {
  const docs: any[] = [];
  for (const f of (await readdir(DIR)).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(await readFile(path.join(DIR, f), 'utf8'))) {
      expect(doc.errors, f).toEqual([]);
      docs.push(doc.toJS());
    }
  }
  return docs;
}

async function world() {
  const docs = await manifests();
  const deployment = docs.find((d) => d.kind === 'Deployment');
  const configMaps = new Map<string, Record<string, string>>(docs.filter((d) => d.kind === 'ConfigMap').map((d) => [d.metadata.name, d.data]));
  const pod = deployment.spec.template.spec;
  const sidecar = pod.initContainers.find((c: any) => c.name === 'hotconf');
  const app = pod.containers.find((c: any) => c.name === 'app');
  const volume = (name: string) => pod.volumes.find((v: any) => v.name === name);
  const mountAt = (container: any, mountPath: string) => container.volumeMounts.find((m: any) => m.mountPath === mountPath);
  const settingsPath: string = sidecar.args[sidecar.args.indexOf('--config') + 1];
  const settingsMount = mountAt(sidecar, path.dirname(settingsPath));
  const settingsText = configMaps.get(volume(settingsMount.name).configMap.name)![path.basename(settingsPath)]!;
  const settings = parseAllDocuments(settingsText)[0]!.toJS();
  return { deployment, configMaps, pod, sidecar, app, volume, mountAt, settingsPath, settingsText, settings };
}

describe('deploy/kubernetes', () => {
  it('runs hotconf as a native sidecar: an init container with restartPolicy Always, running `hotconf run`', async () => {
    const { sidecar, pod } = await world();
    expect(sidecar.restartPolicy).toBe('Always');
    expect(sidecar.args.slice(0, 2)).toEqual(['run', '--config']);
    expect(pod.containers.map((c: any) => c.name)).toEqual(['app']);
  });

  it('hotconf.yaml in its ConfigMap is valid against schemas/hotconf.schema.json', async () => {
    const { settingsText } = await world();
    await using tmp = await tempDir();
    const file = await tmp.write('hotconf.yaml', settingsText);
    const result = await validateOnce(file, path.join(ROOT, 'schemas', 'hotconf.schema.json'));
    expect(result.ok ? [] : result.errors.map((e) => e.message)).toEqual([]);
  });

  it('mounts the config and schema ConfigMaps read-only where hotconf.yaml looks for them, and they validate', async () => {
    const { settings, sidecar, volume, mountAt, configMaps } = await world();
    await using tmp = await tempDir();
    for (const key of ['configDir', 'schemaDir'] as const) {
      const mount = mountAt(sidecar, settings[key]);
      expect(mount, key).toBeDefined();
      expect(mount.readOnly, key).toBe(true);
      const data = configMaps.get(volume(mount.name).configMap.name)!;
      for (const [file, text] of Object.entries(data)) await tmp.write(`${key}/${file}`, text);
    }
    const report = await checkConfigs({ configDir: tmp.file('configDir'), schemaDir: tmp.file('schemaDir') });
    expect(report.errors.map((e) => e.message)).toEqual([]);
    expect(report.configs.length).toBeGreaterThan(0);
  });

  it('requests the memory the footprint bench measured for `run --http` with the same NODE_OPTIONS (at least, and within 16 MiB), under the limit', async () => {
    const { sidecar } = await world();
    const results = JSON.parse(await readFile(path.join(ROOT, 'bench', 'results', 'footprint.json'), 'utf8'));
    const mib = (q: string) => {
      const m = /^(\d+)(Mi|Gi)$/.exec(q);
      expect(m, q).not.toBeNull();
      return Number(m![1]) * (m![2] === 'Gi' ? 1024 : 1);
    };
    const nodeOptions = sidecar.env.find((e: any) => e.name === 'NODE_OPTIONS')?.value;
    const measured = results.rss[nodeOptions === undefined ? 'http' : 'http+semi'];
    expect(nodeOptions === undefined || results.tables[0].notes.some((n: string) => n.includes(nodeOptions))).toBe(true);
    const steadyMiB = Math.max(measured.afterStartKiB, measured.afterChangesKiB) / 1024;
    expect(mib(sidecar.resources.requests.memory)).toBeGreaterThanOrEqual(steadyMiB);
    // …and follows it: not a figure left over from a heavier build (every pod pays the request).
    expect(mib(sidecar.resources.requests.memory)).toBeLessThanOrEqual(steadyMiB + 16);
    expect(mib(sidecar.resources.limits.memory)).toBeGreaterThan(mib(sidecar.resources.requests.memory));
  });

  it('probes /readyz and /healthz on the port hotconf listens on', async () => {
    const { sidecar, settings } = await world();
    const port = Number(String(settings.http.listen).split(':').at(-1));
    const named = sidecar.ports.find((p: any) => p.containerPort === port);
    expect(named).toBeDefined();
    for (const probe of ['startupProbe', 'readinessProbe'] as const) {
      expect(sidecar[probe].httpGet).toEqual({ path: '/readyz', port: named.name });
    }
    expect(sidecar.livenessProbe.httpGet).toEqual({ path: '/healthz', port: named.name });
    expect(settings.http.allowAllInterfaces).toBe(true); // the kubelet probes the pod IP
    expect(settings.http.tokenFile).toBeDefined();
    expect(sidecar.volumeMounts.some((m: any) => settings.http.tokenFile.startsWith(`${m.mountPath}/`) && m.readOnly)).toBe(true);
  });

  it('publishes into an emptyDir the app mounts read-only, and notifies the app by webhook on its own port', async () => {
    const { sidecar, app, volume, mountAt, settings } = await world();
    const publishMount = mountAt(sidecar, settings.publish.dir);
    expect(volume(publishMount.name).emptyDir).toBeDefined();
    const appMount = app.volumeMounts.find((m: any) => m.name === publishMount.name);
    expect(appMount.readOnly).toBe(true);
    const hook = new URL(settings.notify.webhook.url);
    expect(hook.hostname).toBe('127.0.0.1');
    expect(app.ports.map((p: any) => p.containerPort)).toContain(Number(hook.port));
  });

  it('hardens both containers: non-root, read-only root file system, no capabilities, no privilege escalation', async () => {
    const { pod, sidecar, app } = await world();
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.seccompProfile.type).toBe('RuntimeDefault');
    for (const c of [sidecar, app]) {
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    }
  });
});
