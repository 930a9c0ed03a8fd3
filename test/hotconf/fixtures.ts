// A small world for pipeline tests: a config dir and a schema dir in one temp dir.
import { createHotconf, type HotconfOptions } from '../../src/index.js';
import { memoryLogger, tempDir, type TempDir } from '../helpers.js';

export const SERVICE_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  additionalProperties: false,
  required: ['port'],
  properties: {
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    host: { type: 'string' },
    n: { type: 'integer' },
    password: { type: 'string', writeOnly: true },
    nested: { type: 'object', properties: { token: { type: 'string', 'x-hotconf-secret': true } } },
  },
};

export interface World extends AsyncDisposable {
  tmp: TempDir;
  /** Writes config/<rel> in place. */
  config(rel: string, content: string): Promise<string>;
  /** Writes config/<rel> by temp file + rename. */
  configAtomic(rel: string, content: string): Promise<string>;
  /** Writes schemas/<name>.schema.json. */
  schema(name: string, schema?: object): Promise<string>;
  configDir: string;
  schemaDir: string;
}

export async function world(): Promise<World> {
  const tmp = await tempDir();
  await tmp.write('config/.keep', '');
  await tmp.write('schemas/.keep', '');
  return {
    tmp,
    configDir: tmp.file('config'),
    schemaDir: tmp.file('schemas'),
    config: (rel, content) => tmp.write(`config/${rel}`, content),
    configAtomic: (rel, content) => tmp.writeAtomic(`config/${rel}`, content),
    schema: (name, schema = SERVICE_SCHEMA) => tmp.write(`schemas/${name}.schema.json`, JSON.stringify(schema, null, 2)),
    [Symbol.asyncDispose]: () => tmp[Symbol.asyncDispose](),
  };
}

/** Starts hotconf on a world with a memory logger; fast defaults for tests unless overridden. */
export async function start<T extends Record<string, unknown> = Record<string, unknown>>(w: World, options: Partial<HotconfOptions> = {}) {
  const log = await memoryLogger();
  const hot = await createHotconf<T>({
    configDir: w.configDir,
    schemaDir: w.schemaDir,
    debounceMs: 10,
    logger: log.logger,
    ...options,
  });
  return Object.assign(hot, { logs: log });
}
