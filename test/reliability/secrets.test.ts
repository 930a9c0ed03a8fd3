// Issue 5, section 5: with secret fields in the schema (`writeOnly` and `x-hotconf-secret`, as a string, a
// number, inside an array, under additionalProperties and as a whole object), every path out of hotconf is
// driven — logs at debug level (trace for the daemon), every HTTP route (SSE included) and error response, status, thrown errors,
// redacted published files, the CLI — through valid and hostile edits whose offending value *is* the secret.
// Every secret carries one random marker, and the marker must appear nowhere. Positive controls (the places
// that are meant to show secrets) prove that the search would find one.
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ConfigError } from '../../src/errors.js';
import { checkConfigs, createHotconf, validateOnce } from '../../src/index.js';
import { startPublisher } from '../../src/publish/index.js';
import { parseConfig } from '../../src/load/index.js';
import { hotconf, startHotconf } from '../e2e/cli-helpers.js';
import { memoryLogger, until } from '../helpers.js';
import { serve } from '../http/fixtures.js';
import { receiver } from '../publish/fixtures.js';
import { world, type World } from '../hotconf/fixtures.js';

const MARK = randomBytes(5).toString('hex');
const PIN = 900_000_000 + Math.floor(Math.random() * 99_999_999);
const S = {
  password: `pw-${MARK}-Hunter2`,
  token: `tok-${MARK}-9f8e`,
  credKey: `ck-${MARK}-7a7a`,
  apiKey: `ak-${MARK}-5b5b`,
  tlsCert: `CERT-${MARK}`,
  tlsKey: `tls-${MARK}-4c4c`,
  dbPassword: `db-${MARK}-pass`,
};
const SECRETS = [...Object.values(S), String(PIN)];
const TOKEN = `bearer-${randomBytes(8).toString('hex')}`;

const APP_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  additionalProperties: false,
  required: ['port'],
  properties: {
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    user: { type: 'string' },
    password: { type: 'string', writeOnly: true, minLength: 8, pattern: '^pw-' },
    pin: { type: 'integer', writeOnly: true, maximum: 999_999_999 },
    nested: { type: 'object', properties: { token: { type: 'string', 'x-hotconf-secret': true } } },
    creds: { type: 'array', items: { type: 'object', properties: { user: { type: 'string' }, key: { type: 'string', writeOnly: true } } } },
    apiKeys: { type: 'object', additionalProperties: { type: 'string', writeOnly: true } },
    tls: { type: 'object', writeOnly: true, properties: { cert: { type: 'string' }, key: { type: 'string' } } },
  },
};
const DB_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: { host: { type: 'string' }, password: { type: 'string', 'x-hotconf-secret': true } },
};

const appYaml = (port: number, password = S.password) =>
  [
    `port: ${port}`,
    'user: admin',
    `password: ${password}`,
    `pin: ${PIN}`,
    'nested:',
    `  token: ${S.token}`,
    'creds:',
    '  - user: ci',
    `    key: ${S.credKey}`,
    'apiKeys:',
    `  stripe: ${S.apiKey}`,
    'tls:',
    `  cert: ${S.tlsCert}`,
    `  key: ${S.tlsKey}`,
    '',
  ].join('\n');
const dbJson = (host: string) => JSON.stringify({ host, password: S.dbPassword });

/** Hostile edits whose offending value is a secret (or holds one): each must be refused, and not quoted. */
const HOSTILE: ReadonlyArray<readonly [string, 'app.yaml' | 'db.json', string | Buffer]> = [
  ['pattern violated by the secret', 'app.yaml', appYaml(1, `X${S.password}`)],
  ['a secret of the wrong type', 'app.yaml', appYaml(1, `[${S.password}]`)],
  ['a numeric secret over its maximum', 'app.yaml', appYaml(1).replace(`pin: ${PIN}`, `pin: 1${PIN}`)],
  ['a secret object given as a string', 'app.yaml', appYaml(1).replace(/tls:\n.*\n.*\n/, `tls: ${S.tlsKey}\n`)],
  ['a secret in an array item of the wrong type', 'app.yaml', appYaml(1).replace(`key: ${S.credKey}`, `key: {k: ${S.credKey}}`)],
  ['a secret under additionalProperties of the wrong type', 'app.yaml', appYaml(1).replace(`stripe: ${S.apiKey}`, `stripe: [${S.apiKey}]`)],
  ['an unterminated quote around the secret', 'app.yaml', appYaml(1, `"${S.password}`)],
  ['a secret starting with ! (a YAML tag)', 'app.yaml', appYaml(1, `!${S.password}`)],
  ['a secret starting with * (a YAML alias)', 'app.yaml', appYaml(1, `*${S.password}`)],
  ['a secret starting with & (an anchor, then nothing)', 'app.yaml', appYaml(1, `&${S.password}`)],
  ['a secret starting with | (a block scalar header)', 'app.yaml', appYaml(1, `|${S.password}`)],
  ['a secret starting with @', 'app.yaml', appYaml(1, `@${S.password}`)],
  ['a secret with a colon in it', 'app.yaml', appYaml(1, `${S.password}: x`)],
  ['a bad escape inside the secret', 'app.yaml', appYaml(1, `"\\q${S.password}"`)],
  ['a secret ending in U+2028', 'app.yaml', appYaml(1, `> ${S.password}\u2028`)],
  ['the secret twice (duplicate key)', 'app.yaml', `${appYaml(1)}password: ${S.password}\n`],
  ['a NUL byte inside the secret', 'app.yaml', appYaml(1, `"${S.password}\u0000"`)],
  ['an invalid UTF-8 byte after the secret', 'app.yaml', Buffer.concat([Buffer.from(appYaml(1, S.password).replace(/\n$/, '')), Buffer.from([0xff, 0x0a])])],
  ['a secret in a file over maxFileBytes', 'app.yaml', `${appYaml(1)}# ${S.password.repeat(2000)}\n`],
  ['JSON: an unquoted secret', 'db.json', `{"host": "h", "password": ${S.dbPassword}}`],
  ['JSON: the secret as trailing garbage', 'db.json', `${dbJson('h')} ${S.dbPassword}`],
  ['JSON: a secret of the wrong type', 'db.json', `{"host": "h", "password": ["${S.dbPassword}"]}`],
  ['JSON: an unknown key next to the secret', 'db.json', `{"host": "h", "password": "${S.dbPassword}", "extra": "${S.dbPassword}"}`],
];

/** Everything that left hotconf, searched at the end. */
class Outbox {
  readonly parts: string[] = [];
  add(what: string, text: string | Buffer | undefined): void {
    this.parts.push(`--- ${what}\n${String(text ?? '')}`);
  }
  expectNoSecret(): void {
    const all = this.parts.join('\n');
    for (const s of SECRETS) expect(all.includes(s), `a secret (${s.slice(0, 3)}…) leaked`).toBe(false);
    const at = all.indexOf(MARK);
    expect(at, `the marker leaked: …${all.slice(Math.max(0, at - 300), at + 100)}…`).toBe(-1);
  }
}

async function worldWithSecrets(): Promise<World> {
  const w = await world();
  await w.schema('app', APP_SCHEMA);
  await w.schema('db', DB_SCHEMA);
  await w.config('app.yaml', appYaml(8080));
  await w.config('db.json', dbJson('db1'));
  return w;
}

/** Every hostile edit at once, as its own config `h00`, `h01`… beside the valid `app` and `db`. */
async function writeHostileConfigs(w: World): Promise<string[]> {
  const names: string[] = [];
  for (const [i, [, file, content]] of HOSTILE.entries()) {
    const name = `h${String(i).padStart(2, '0')}`;
    await w.schema(name, file === 'app.yaml' ? APP_SCHEMA : DB_SCHEMA);
    await w.configAtomic(`${name}${path.extname(file)}`, content as string);
    names.push(name);
  }
  return names;
}

async function respond(res: Response): Promise<string> {
  return `${res.status} ${JSON.stringify([...res.headers])}\n${await res.text()}`;
}

/** Reads /v1/events as raw bytes (comments, ids and all) until `close()`. */
function rawEvents(url: string, token: string) {
  let text = '';
  const req = http.get(`${url}/v1/events`, { headers: { Authorization: `Bearer ${token}` } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (d: string) => (text += d));
    res.on('error', () => undefined);
  });
  req.on('error', () => undefined);
  return { text: () => text, close: () => req.destroy() };
}

/** The files under `dir` with their content; a publisher may be renaming or removing some meanwhile. */
async function filesUnder(dir: string): Promise<string> {
  let out = '';
  for (const entry of await readdir(dir, { recursive: true })) {
    const file = path.join(dir, entry);
    try {
      if ((await stat(file)).isFile()) out += `${entry}: ${await readFile(file, 'utf8')}\n`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return out;
}

describe('secrets stay secret (issue 5, section 5)', () => {
  it('library, HTTP sidecar and redacting publisher: nothing shows a secret, through valid and hostile edits', { timeout: 60_000 }, async () => {
    await using w = await worldWithSecrets();
    const out = new Outbox();
    // The library and the HTTP server log into one memory logger at debug level.
    await using api = await serve(w, { token: TOKEN }, { maxFileBytes: 16 * 1024 });
    const { hot, get, logs: log } = api;
    // The redacting publisher also notifies: a webhook (its bodies are kept) and a command (its environment is kept).
    await using hook = await receiver();
    const envFile = w.tmp.file('notify-env.txt');
    await using pub = await startPublisher(hot, {
      publish: { dir: w.tmp.file('published'), redactSecrets: true },
      notify: { webhook: { url: hook.url }, command: { command: ['sh', '-c', `env >> '${envFile}'`] } },
      logger: log.logger,
    });
    await using _plain = await startPublisher(hot, { publish: { dir: w.tmp.file('published-plain') } });
    const events = rawEvents(api.url, TOKEN);

    // Controls: the application gets the real values, and so does an unredacted publisher.
    expect(hot.get('app')).toMatchObject({ password: S.password, pin: PIN, tls: { key: S.tlsKey } });
    expect(await filesUnder(w.tmp.file('published-plain'))).toContain(S.password);
    expect(hot.snapshot().configs.get('app')!.secrets).toEqual(['/apiKeys/stripe', '/creds/0/key', '/nested/token', '/password', '/pin', '/tls']);

    const sweep = async (what: string) => {
      const v = hot.version;
      for (const route of ['/v1/configs', '/v1/configs/app', '/v1/configs/db', '/v1/status', '/metrics', '/healthz', '/readyz', '/v1/configs/nope', '/v1/configs/../app']) {
        out.add(`${what} GET ${route}`, await respond(await get(route)));
      }
      out.add(`${what} ?secrets=true`, await respond(await get('/v1/configs/app?secrets=true')));
      out.add(`${what} long-poll`, await respond(await get(`/v1/configs/app?wait=0.05&after=${v}`)));
      out.add(`${what} unauthorized`, await respond(await fetch(`${api.url}/v1/configs/app`)));
      out.add(`${what} POST /v1/reload`, await respond(await get('/v1/reload', { method: 'POST' })));
      out.add(`${what} reload()`, JSON.stringify(await hot.reload()));
      out.add(`${what} status()`, JSON.stringify(hot.status()));
      await pub.idle();
      out.add(`${what} published (redacted)`, await filesUnder(w.tmp.file('published')));
    };
    await sweep('initial');

    let port = 8080;
    for (const [what, file, content] of HOSTILE) {
      await w.configAtomic(file, content as string);
      const name = file === 'app.yaml' ? 'app' : 'db';
      await until(() => hot.status().configs.find((c) => c.name === name)?.state === 'error', `${what}: refused`);
      await sweep(what);
      // back to valid, with a new version, so that the next edit is a fresh refusal
      port++;
      await w.configAtomic('app.yaml', appYaml(port));
      await w.configAtomic('db.json', dbJson(`db${port}`));
      await until(() => hot.status().errors === 0 && (hot.get('app') as { port: number }).port === port, `${what}: valid again`);
    }
    await sweep('final');
    await until(() => events.text().includes(`id: ${hot.snapshot().epoch}:${hot.version}`), 'the event stream caught up');
    events.close();
    out.add('SSE', events.text());
    await until(() => hook.versions().includes(hot.version), 'the webhook told of the last version');
    out.add('webhook bodies', JSON.stringify(hook.requests));
    await until(async () => (await readFile(envFile, 'utf8').catch(() => '')).includes(`HOTCONF_VERSION=${hot.version}`), 'the command ran for the last version');
    out.add('command environments', await readFile(envFile, 'utf8'));
    out.add('logs', log.text());
    expect(log.lines.filter((l) => l.level === 20).length, 'debug lines were captured').toBeGreaterThan(0);
    expect(events.text()).toMatch(/event: change/);
    out.expectNoSecret();
  });

  it('the sidecar serves secrets only to a token holder that asks, when allowed (control)', async () => {
    await using w = await worldWithSecrets();
    await using api = await serve(w, { token: TOKEN, allowSecrets: true });
    const shown = await (await api.get('/v1/configs/app?secrets=true')).text();
    expect(shown).toContain(S.password);
    const hidden = await (await api.get('/v1/configs/app')).text();
    expect(hidden).not.toContain(MARK);
    expect(hidden).toContain('[REDACTED]');
  });

  it('thrown errors and dry runs: InitialLoadError, checkConfigs, validateOnce', async () => {
    await using w = await worldWithSecrets();
    const names = await writeHostileConfigs(w);
    const out = new Outbox();
    const options = { configDir: w.configDir, schemaDir: w.schemaDir, maxFileBytes: 16 * 1024 };
    const log = await memoryLogger('trace');
    const err = await createHotconf({ ...options, logger: log.logger }).then(
      async (hot) => {
        await hot.close();
        throw new Error('started');
      },
      (e: unknown) => e as Error & { errors?: ConfigError[] },
    );
    expect(err.name).toBe('InitialLoadError');
    expect(new Set(err.errors?.map((e) => path.basename(e.file).split('.')[0])), 'every hostile config refused').toEqual(new Set(names));
    out.add('thrown', `${err.message}\n${err.stack}\n${JSON.stringify(err.errors)}\n${JSON.stringify(err)}`);
    out.add('logs', log.text());
    const report = await checkConfigs(options);
    expect(report.configs.filter((c) => !c.ok).map((c) => c.name)).toEqual(names);
    out.add('check', JSON.stringify(report.errors));
    for (const name of names) {
      const file = (await readdir(w.configDir)).find((f) => f.startsWith(`${name}.`))!;
      const once = await validateOnce(path.join(w.configDir, file), path.join(w.schemaDir, `${name}.schema.json`), { maxFileBytes: 16 * 1024 });
      expect(once.ok, name).toBe(false);
      out.add(`${name} validateOnce`, once.ok ? '' : once.errors.map((e) => `${e.message} ${e.stack} ${JSON.stringify(e)}`).join('\n'));
    }
    out.expectNoSecret();
  });

  it('the CLI: check, get, watch --values, and run (trace logs, HTTP, redacted publish, SIGHUP)', { timeout: 60_000 }, async () => {
    await using w = await worldWithSecrets();
    const out = new Outbox();
    const dirs = ['--config-dir', w.configDir, '--schema-dir', w.schemaDir];
    const cli = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const r = await hotconf(args, { env });
      out.add(`hotconf ${args.join(' ')}`, `${r.code}\n${r.stdout}\n${r.stderr}`);
      return r;
    };
    // Control: --show-secrets shows them, so the searches below would find a leak.
    expect((await hotconf(['get', 'app.password', '--show-secrets', ...dirs])).stdout).toBe(`${S.password}\n`);
    expect((await cli(['get', 'app', ...dirs])).code).toBe(0);

    // `hotconf watch --values` prints each change with its (redacted) values.
    await using watcher = startHotconf(['watch', '--values', ...dirs]);
    await watcher.line((l) => l.type === 'snapshot', 'watch started');
    await w.configAtomic('app.yaml', appYaml(9000));
    await watcher.line((l) => l.type === 'change', 'watch saw the change');
    watcher.signal('SIGINT');
    await watcher.exited;
    out.add('watch --values', `${JSON.stringify(watcher.lines)}\n${watcher.stderr()}`);

    // The daemon at trace level, with the API and a redacting publisher configured in hotconf.yaml.
    const settings = await w.tmp.write(
      'hotconf.yaml',
      [
        `configDir: ${w.configDir}`,
        `schemaDir: ${w.schemaDir}`,
        'debounceMs: 10',
        'batchPolicy: per-file', // the hostile configs stay refused while app changes
        'maxFileBytes: 16384',
        'log: {level: trace}',
        'http: {listen: "127.0.0.1:0", allowSecrets: false}',
        `publish: {dir: ${w.tmp.file('published')}, redactSecrets: true}`,
        '',
      ].join('\n'),
    );
    await using d = startHotconf(['run', '--config', settings], { env: { HOTCONF_HTTP_TOKEN: TOKEN } });
    const url = String((await d.line((l) => l.msg === 'http listening', 'the API listening')).url);
    const auth = { Authorization: `Bearer ${TOKEN}` };
    // Every hostile edit at once, as new configs: each is refused (and has no last good value).
    const names = await writeHostileConfigs(w);
    const errorsOf = async () => {
      const st = (await (await fetch(`${url}/v1/status`, { headers: auth })).json()) as { configs: Array<{ name: string; state: string }> };
      return st.configs.filter((c) => c.state === 'error').map((c) => c.name);
    };
    await until(async () => (await errorsOf()).length === names.length, 'daemon: every hostile config refused');
    const refusals = () => d.lines.filter((l) => Array.isArray(l.errors)).length;
    const before = refusals();
    d.signal('SIGHUP'); // a full rescan reports them all again
    await until(() => refusals() > before, 'daemon: refusals logged again after SIGHUP');
    for (const route of ['/v1/status', '/v1/configs', '/v1/configs/app', '/v1/configs/h00', '/metrics']) {
      out.add(`daemon GET ${route}`, await respond(await fetch(`${url}${route}`, { headers: auth })));
    }
    out.add('daemon reload', await respond(await fetch(`${url}/v1/reload`, { method: 'POST', headers: auth })));
    await w.configAtomic('app.yaml', appYaml(9001));
    await until(async () => (await filesUnder(w.tmp.file('published'))).includes('9001'), 'v2 published');
    out.add('daemon published', await filesUnder(w.tmp.file('published')));
    out.add('daemon get --url', JSON.stringify(await cli(['get', 'app', '--json', '--url', url], { HOTCONF_HTTP_TOKEN: TOKEN })));
    d.signal('SIGTERM');
    expect(await d.exited).toBe(0);
    out.add('daemon stdout', JSON.stringify(d.lines));
    out.add('daemon stderr', d.stderr());
    expect(d.lines.some((l) => l.level === 10 || l.level === 20), 'trace/debug lines were logged').toBe(true);

    // check and get on the disk, with every hostile config present.
    const limit = { HOTCONF_MAX_FILE_BYTES: '16384' };
    expect((await cli(['check', ...dirs], limit)).code).toBe(1);
    const json = await cli(['check', '--json', ...dirs], limit);
    expect((JSON.parse(json.stdout) as { errors: unknown[] }).errors.length).toBeGreaterThanOrEqual(names.length);
    out.expectNoSecret();
  });

  it('an error about a config never quotes a secret written anywhere in it (fuzzed, YAML and JSON)', () => {
    const runs = Number(process.env.HOTCONF_SECRET_FUZZ_RUNS ?? 2000);
    const secret = fc.stringMatching(/^[A-Za-z0-9]{10,16}$/);
    const around = fc.constantFrom('', '!', '!!', '*', '&', '%', '@', '`', '|', '>', '|-', '>+', '"', "'", '[', '{', '? ', '- ', '#', ':', ',', '\\', '<<', '!<', '\t', ' ', '---', '...', '\u0085', '\u2028', '\u2029', '\ufeff', '\\x', '\\u', '%TAG ', '%YAML ', '\u0000', '\u001b', '}', ']', ': ', '"\\q', '0x', '.');
    const template = fc.constantFrom(
      (s: string) => `password: ${s}\n`,
      (s: string) => `${s}\n`,
      (s: string) => `x:\n  password: ${s}\n  y: 1\n`,
      (s: string) => `- ${s}\n`,
      (s: string) => `{password: ${s}}`,
      (s: string) => `[${s}]`,
      (s: string) => `password: "${s}"\n`,
      (s: string) => `password: '${s}'\n`,
      (s: string) => `{"password": ${s}}`,
      (s: string) => `{"password": "${s}"}`,
      (s: string) => `${s}: 1\n`,
      (s: string) => `%YAML 1.2\n---\npassword: ${s}\n`,
    );
    let refused = 0;
    fc.assert(
      fc.property(template, around, around, secret, around, fc.constantFrom('yaml' as const, 'json' as const), (t, a, b, s, c, format) => {
        try {
          parseConfig(Buffer.from(t(`${a}${b}${s}${c}`)), format, 'config/app.yaml');
        } catch (err) {
          refused++;
          const shown = `${(err as ConfigError).message} ${JSON.stringify((err as ConfigError).toJSON())}`;
          return !shown.includes(s) && !shown.includes(s.slice(0, 8)) && !shown.includes(s.slice(-8));
        }
        return true;
      }),
      { numRuns: runs },
    );
    expect(refused).toBeGreaterThan(runs / 4);
  });
});
