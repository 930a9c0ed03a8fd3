// The application check over an etcd source (a real etcd): the candidate is laid out as the prefix holds it, each
// value's bytes under its key's name below the prefix; a refused value never reaches the store.
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { commandCheck } from '../../src/daemon/appcheck.js';
import { createHotconf } from '../../src/index.js';
import { SERVICE_SCHEMA } from '../hotconf/fixtures.js';
import { tempDir, until, type TempDir } from '../helpers.js';
import { HAVE_ETCD, startEtcd, type EtcdServer } from './etcd-server.js';

let etcd: EtcdServer;
let client: Etcd3;
let tmp: TempDir;

beforeAll(async () => {
  if (!HAVE_ETCD) return;
  etcd = await startEtcd();
  client = etcd.client();
  tmp = await tempDir();
  for (const name of ['app', 'db/primary']) await tmp.write(`schemas/${name}.schema.json`, JSON.stringify(SERVICE_SCHEMA));
});

afterAll(async () => {
  await etcd?.stop();
  await tmp?.[Symbol.asyncDispose]();
});

test.skipIf(!HAVE_ETCD)('validate.command sees the etcd values as files under their key names, byte for byte, and its refusal keeps the last good value', async () => {
  const prefix = `/hotconf-appcheck/${process.pid}/`;
  const app = '# from etcd\nport: 8080\n';
  const db = '{"port": 5432,  "host": "db"}';
  await client.put(`${prefix}app.yaml`).value(app);
  await client.put(`${prefix}db/primary.json`).value(db);
  await tmp.write('expected/app.yaml', app);
  await tmp.write('expected/db/primary.json', db);
  // Accepts when both files are there byte for byte and app's port is not 9999.
  const script = 'cmp -s "$1/app.yaml" "$2/app.yaml" && cmp -s "$1/db/primary.json" "$2/db/primary.json" || { echo layout differs; exit 1; }; ! grep -q 9999 "$1/app.yaml" || { echo port 9999 is taken; exit 1; }';
  const check = commandCheck({ command: ['sh', '-c', script, 'sh', '{dir}', tmp.file('expected')] }, pino({ level: 'silent' }), { PATH: process.env.PATH });
  await using hot = await createHotconf({ etcd: { endpoints: [etcd.url], prefix }, schemaDir: tmp.file('schemas'), check, logger: pino({ level: 'silent' }) });
  expect(hot.get('app')).toEqual({ port: 8080 });
  expect(hot.snapshot().configs.get('db/primary')!.source).toEqual({ file: 'db/primary.json', text: db });

  const refused = 'port: 9999\n';
  await tmp.write('expected/app.yaml', refused);
  await client.put(`${prefix}app.yaml`).value(refused);
  await until(() => hot.status().configs.find((c) => c.name === 'app')?.error?.code === 'E_APP_CHECK', 'the refusal');
  expect(hot.status().configs.find((c) => c.name === 'app')!.error!.message).toBe(`etcd:${prefix}app.yaml: refused by the application check: sh exited with code 1: port 9999 is taken`);
  expect(hot.get('app')).toEqual({ port: 8080 });
});
