// Issue 18 point 16, against a real etcd: keys that are not valid UTF-8 were decoded lossily (U+FFFD), so two
// distinct keys became one config and deleting one removed the config the other still held. They are ignored,
// with one warning each, at start and while watching.
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createHotconf } from '../../src/index.js';
import { SERVICE_SCHEMA } from '../hotconf/fixtures.js';
import { memoryLogger, tempDir, until, type TempDir } from '../helpers.js';
import { HAVE_ETCD, startEtcd, type EtcdServer } from './etcd-server.js';

let etcd: EtcdServer;
let client: Etcd3;
let schemas: TempDir;

beforeAll(async () => {
  if (!HAVE_ETCD) return;
  etcd = await startEtcd();
  client = etcd.client();
  schemas = await tempDir();
  // The name both keys decode to when decoded lossily: with a schema, the lossy decoding made it a config.
  for (const name of ['app', 'bad\uFFFD']) await schemas.write(`${name}.schema.json`, JSON.stringify(SERVICE_SCHEMA));
});

afterAll(async () => {
  await etcd?.stop();
  await schemas?.[Symbol.asyncDispose]();
});

const key = (prefix: string, ...bytes: number[]) => Buffer.concat([Buffer.from(`${prefix}bad`), Buffer.from(bytes), Buffer.from('.yaml')]);

describe.skipIf(!HAVE_ETCD)('etcd keys that are not valid UTF-8', () => {
  test('are ignored with one warning each, at start and when put or deleted while watching; valid keys are unaffected', async () => {
    const prefix = `/hotconf-keys/${process.pid}/`;
    await client.put(`${prefix}app.yaml`).value('port: 1\n');
    await client.put(key(prefix, 0xff)).value('port: 2\n');
    await client.put(key(prefix, 0xfe)).value('port: 3\n');
    const log = await memoryLogger();
    await using hot = await createHotconf({ etcd: { endpoints: [etcd.url], prefix }, schemaDir: schemas.dir, logger: log.logger });
    const warned = () => log.lines.filter((l) => String(l.msg).startsWith('etcd key ignored: not valid UTF-8')).map((l) => l.keyHex);
    expect([...hot.snapshot().configs.keys()]).toEqual(['app']);
    expect(warned().sort()).toEqual([key(prefix, 0xfe).toString('hex'), key(prefix, 0xff).toString('hex')]);

    // While watching: a third such key, and a delete of one, change nothing but the log; a valid edit still applies.
    await client.put(key(prefix, 0xc3, 0x28)).value('port: 4\n');
    await client.delete().key(key(prefix, 0xff));
    await client.put(`${prefix}app.yaml`).value('port: 5\n');
    await until(() => (hot.get('app') as { port: number } | undefined)?.port === 5, 'the valid edit applied');
    expect([...hot.snapshot().configs.keys()]).toEqual(['app']);
    expect(hot.status().errors).toBe(0);
    // One warning per key: the delete of an already-reported key says nothing again.
    expect(warned()).toHaveLength(3);
    expect(warned()).toContain(key(prefix, 0xc3, 0x28).toString('hex'));
  });
});
