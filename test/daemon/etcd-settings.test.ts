// The daemon's etcd settings: hotconf.yaml `etcd:`, HOTCONF_ETCD_* and flags merge like every other setting, are
// validated by schemas/hotconf.schema.json, exclude an explicit configDir, and never take the password from argv.
import { expect, test } from 'vitest';
import { etcdOptionsOf, hotconfOptionsOf, loadSettings, SettingsError } from '../../src/daemon/index.js';
import { tempDir } from '../helpers.js';

test('etcd from hotconf.yaml, the environment and flags: later layers win, the default configDir is dropped', async () => {
  await using tmp = await tempDir();
  const file = await tmp.write('hotconf.yaml', 'etcd:\n  endpoints: [http://10.0.0.1:2379]\n  prefix: /from-file/\n  passwordFile: secret/pw\n  tls:\n    ca: ca.pem\n');
  const settings = await loadSettings({
    settingsFile: file,
    env: { HOTCONF_ETCD: 'http://10.0.0.2:2379, http://10.0.0.3:2379', HOTCONF_ETCD_USERNAME: 'fleet' },
    flags: { etcd: { prefix: '/from-flag/' } },
  });
  expect(settings.configDir).toBeUndefined();
  expect(settings.etcd).toEqual({
    endpoints: ['http://10.0.0.2:2379', 'http://10.0.0.3:2379'],
    prefix: '/from-flag/',
    username: 'fleet',
    passwordFile: tmp.file('secret/pw'),
    tls: { ca: tmp.file('ca.pem') },
  });
});

test('the password comes from HOTCONF_ETCD_PASSWORD, else from passwordFile (final newline dropped)', async () => {
  await using tmp = await tempDir();
  const pw = await tmp.write('pw', 'from-file\n');
  const etcd = { endpoints: ['http://127.0.0.1:2379'], prefix: '/p/', username: 'u', passwordFile: pw };
  expect(await etcdOptionsOf(etcd, {})).toMatchObject({ username: 'u', password: 'from-file' });
  expect(await etcdOptionsOf(etcd, { HOTCONF_ETCD_PASSWORD: 'from-env' })).toMatchObject({ password: 'from-env' });
  const missing = await etcdOptionsOf({ ...etcd, passwordFile: tmp.file('nope') }, {}).catch((e: unknown) => e);
  expect(missing).toBeInstanceOf(SettingsError);
  expect((missing as SettingsError).message).toContain(`${tmp.file('nope')}: cannot read the etcd password file`);
  const options = await hotconfOptionsOf(await loadSettings({ env: {}, flags: { etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/p/' } } }), {});
  expect(options).not.toHaveProperty('configDir');
  expect(options.etcd).toEqual({ endpoints: ['http://127.0.0.1:2379'], prefix: '/p/' });
});

test('an explicit configDir with etcd is refused, and so is a bad endpoint, with its file and line', async () => {
  await using tmp = await tempDir();
  const both = await loadSettings({ env: { HOTCONF_CONFIG_DIR: tmp.dir, HOTCONF_ETCD: 'http://127.0.0.1:2379', HOTCONF_ETCD_PREFIX: '/p/' } }).catch((e: unknown) => e);
  expect(both).toBeInstanceOf(SettingsError);
  expect((both as SettingsError).message).toContain('configDir and etcd are mutually exclusive');
  // push keeps both: it reads the directory and writes etcd.
  const push = await loadSettings({ env: { HOTCONF_CONFIG_DIR: tmp.dir, HOTCONF_ETCD: 'http://127.0.0.1:2379', HOTCONF_ETCD_PREFIX: '/p/' } }, { keepConfigDir: true });
  expect(push).toMatchObject({ configDir: tmp.dir, etcd: { prefix: '/p/' } });

  const file = await tmp.write('hotconf.yaml', 'etcd:\n  endpoints:\n    - 127.0.0.1:2379\n  prefix: /p/\n');
  const bad = await loadSettings({ settingsFile: file, env: {} }).catch((e: unknown) => e);
  expect(bad).toBeInstanceOf(SettingsError);
  expect((bad as SettingsError).errors[0]!.message).toMatch(/hotconf\.yaml:3:7: \/etcd\/endpoints\/0: must match pattern/);
});

test('the fleet settings: instanceId and cacheDir from hotconf.yaml, HOTCONF_INSTANCE_ID / HOTCONF_CACHE_DIR or flags; alone, they are no etcd source', async () => {
  await using tmp = await tempDir();
  const file = await tmp.write('hotconf.yaml', 'etcd:\n  endpoints: [http://10.0.0.1:2379]\n  prefix: /p/\n  cacheDir: cache\n');
  const settings = await loadSettings({ settingsFile: file, env: { HOTCONF_INSTANCE_ID: 'pod-1' } });
  expect(settings.etcd).toMatchObject({ instanceId: 'pod-1', cacheDir: tmp.file('cache') });
  expect((await hotconfOptionsOf(settings, {})).etcd).toMatchObject({ instanceId: 'pod-1', cacheDir: tmp.file('cache') });
  const flagged = await loadSettings({ settingsFile: file, env: { HOTCONF_CACHE_DIR: '/var/lib/hotconf' }, flags: { etcd: { instanceId: 'flag-id' } } });
  expect(flagged.etcd).toMatchObject({ instanceId: 'flag-id', cacheDir: '/var/lib/hotconf' }); // file < environment < flags
  // A unit that sets HOTCONF_CACHE_DIR for every daemon still serves a directory.
  const dir = await loadSettings({ env: { HOTCONF_CONFIG_DIR: tmp.dir, HOTCONF_CACHE_DIR: '/var/lib/hotconf', HOTCONF_INSTANCE_ID: 'x' } });
  expect(dir.etcd).toBeUndefined();
  expect(dir.configDir).toBe(tmp.dir);
  const bad = await loadSettings({ settingsFile: file, env: { HOTCONF_INSTANCE_ID: 'has space' } }).catch((e: unknown) => e);
  expect(bad).toBeInstanceOf(SettingsError);
  expect((bad as SettingsError).message).toContain('/etcd/instanceId');
});
