// The conformance harness's engine: runs groups of (schema, documents) through hotconf's public API
// (`checkConfigs` on a temporary config and schema directory, as `hotconf check` does) and through plain,
// non-strict ajv, and compares both with what the data's authors expect. Used by the JSON-Schema-Test-Suite and
// SchemaStore tests in this folder and by bench/conformance.mjs (which points it at any build of hotconf).
import { Ajv, type AnySchema, type ValidateFunction } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import draft06 from 'ajv/dist/refs/json-schema-draft-06.json' with { type: 'json' };
import draft04Module from 'ajv-draft-04';
import formatsModule from 'ajv-formats';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import type * as Hotconf from '../../src/index.js';

const Ajv04 = draft04Module.default;
const addFormats = formatsModule.default;

export type Draft = 'draft4' | 'draft6' | 'draft7' | 'draft2019-09' | 'draft2020-12';
export const DRAFTS: readonly Draft[] = ['draft4', 'draft6', 'draft7', 'draft2019-09', 'draft2020-12'];

/** `$schema` of each draft, as the test suite's newer files and SchemaStore write it. */
export const META: Readonly<Record<Draft, string>> = {
  draft4: 'http://json-schema.org/draft-04/schema#',
  draft6: 'http://json-schema.org/draft-06/schema#',
  draft7: 'http://json-schema.org/draft-07/schema#',
  'draft2019-09': 'https://json-schema.org/draft/2019-09/schema',
  'draft2020-12': 'https://json-schema.org/draft/2020-12/schema',
};

/**
 * What a validator made of one document:
 * - `valid` / `invalid`: the document was judged against its schema;
 * - `schema-error`: the schema could not be used (does not compile, or names a schema that is not there);
 * - `parse-refused`: the document's text was refused before validation;
 * - `crashed`: hotconf's checkConfigs threw instead of reporting (always a bug).
 */
export type Verdict = 'valid' | 'invalid' | 'schema-error' | 'parse-refused' | 'crashed';

export interface Outcome {
  readonly verdict: Verdict;
  /** The first error's code and message (hotconf) or a short reason (ajv). */
  readonly detail: string;
  readonly code?: string;
}

export interface Doc {
  readonly label: string;
  /** The document's text as written to the config file. */
  readonly text: string;
  readonly ext: '.json' | '.yaml' | '.yml';
  /** The verdict the data's authors expect, when they say. */
  readonly expected: boolean | undefined;
}

export interface Group {
  /** Unique, file-name safe. */
  readonly key: string;
  /** Where the group comes from, for reports: `ref.json › relative pointer ref to object`. */
  readonly label: string;
  readonly file: string;
  readonly draft: Draft;
  readonly schema: AnySchema;
  readonly docs: readonly Doc[];
  /** Keys of other groups whose schemas this one `$ref`s by `$id`: written beside it. */
  readonly needs?: readonly string[];
}

// ---------------------------------------------------------------------------------------------------------
// Plain ajv: what hotconf is compared with. Non-strict, formats from ajv-formats, nothing else.

function plainAjv(draft: Draft): Ajv {
  const options = { strict: false, logger: false, allErrors: false } as const;
  let ajv: Ajv;
  switch (draft) {
    case 'draft4':
      ajv = new Ajv04(options);
      break;
    case 'draft6':
      ajv = new Ajv(options);
      ajv.addMetaSchema(draft06);
      break;
    case 'draft7':
      ajv = new Ajv(options);
      break;
    case 'draft2019-09':
      ajv = new Ajv2019(options);
      break;
    case 'draft2020-12':
      ajv = new Ajv2020(options);
      break;
  }
  addFormats(ajv);
  return ajv;
}

export interface PlainResult {
  /** Set when the schema did not compile. */
  readonly compileError?: string;
  /** The `$ref` ajv could not resolve, when that is why it did not compile. */
  readonly missingRef?: string;
  readonly outcomes: readonly Outcome[];
}

/** Plain ajv's verdict on every document of `group` (`byKey` resolves `needs`). */
// One instance per draft, emptied before each group (removeSchema() keeps meta-schemas and formats): creating
// one per group cost more than compiling most of the suite's schemas.
const plainInstances = new Map<Draft, Ajv>();

export function runPlain(group: Group, byKey: ReadonlyMap<string, Group>): PlainResult {
  let ajv = plainInstances.get(group.draft);
  if (!ajv) plainInstances.set(group.draft, (ajv = plainAjv(group.draft)));
  ajv.removeSchema();
  let validate: ValidateFunction;
  try {
    for (const key of group.needs ?? []) ajv.addSchema(byKey.get(key)!.schema);
    validate = ajv.compile(group.schema);
  } catch (err) {
    const e = err as Error & { missingRef?: string };
    const detail = e.message.split('\n')[0]!;
    return {
      compileError: detail,
      ...(e.missingRef ? { missingRef: e.missingRef } : {}),
      outcomes: group.docs.map(() => ({ verdict: 'schema-error', detail })),
    };
  }
  return {
    outcomes: group.docs.map((doc): Outcome => {
      let value: unknown;
      try {
        value = doc.ext === '.json' ? JSON.parse(doc.text) : parseYaml(doc.text, { merge: true });
      } catch (err) {
        return { verdict: 'parse-refused', detail: (err as Error).message.split('\n')[0]! };
      }
      try {
        return validate(value)
          ? { verdict: 'valid', detail: '' }
          : { verdict: 'invalid', detail: `${validate.errors?.[0]?.instancePath ?? ''} ${validate.errors?.[0]?.message ?? ''}` };
      } catch (err) {
        return { verdict: 'schema-error', detail: `validator threw: ${(err as Error).message}` };
      }
    }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// hotconf, through its public API.

export type HotconfApi = Pick<typeof Hotconf, 'checkConfigs' | 'createHotconf'>;

/** The library to test: the source tree, or the build named by HOTCONF_CONFORMANCE_API (bench/conformance.mjs). */
export async function loadApi(): Promise<HotconfApi> {
  const target = process.env.HOTCONF_CONFORMANCE_API;
  if (target) return (await import(pathToFileURL(path.resolve(target)).href)) as HotconfApi;
  return await import('../../src/index.js');
}

const PARSE_CODES = new Set(['E_ENCODING', 'E_PARSE', 'E_DUPLICATE_KEY', 'E_ALIAS_LIMIT', 'E_DEPTH', 'E_FORBIDDEN_KEY', 'E_TAG', 'E_TOO_LARGE']);

/** Every `$id` (and draft-04 `id`) string in a schema: two schemas that share one cannot sit in one directory. */
export function idsOf(schema: unknown): Set<string> {
  const ids = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if ((k === '$id' || k === 'id') && typeof x === 'string') ids.add(x.replace(/#$/, ''));
        walk(x);
      }
    }
  };
  walk(schema);
  return ids;
}

interface Slot {
  readonly group: Group;
  readonly doc: number;
}

/**
 * Plans directories for checkConfigs: a group with no `$id` sends all its documents at once (one copy of its
 * schema per document, each config name having its own schema file); a group with ids sends one document per
 * round, and groups whose ids collide (with each other or with the schemas they need) go to different batches.
 */
function plan(groups: readonly Group[], byKey: ReadonlyMap<string, Group>, isolate = false): Slot[][] {
  if (isolate) return groups.flatMap((group) => group.docs.map((_, doc) => [{ group, doc }]));
  const batches: Array<{ slots: Slot[]; ids: Set<string>; present: Set<string> }> = [];
  const shared: Slot[] = [];
  const rounds: Group[][] = [];
  for (const group of groups) {
    const needs = (group.needs ?? []).map((k) => byKey.get(k)!);
    if (needs.length === 0 && idsOf(group.schema).size === 0) {
      group.docs.forEach((_, doc) => shared.push({ group, doc }));
      continue;
    }
    group.docs.forEach((_, r) => (rounds[r] ??= []).push(group));
  }
  if (shared.length > 0) batches.push({ slots: shared, ids: new Set(), present: new Set() });
  for (const [r, round] of rounds.entries()) {
    const mine: typeof batches = [];
    for (const group of round) {
      const own = [group, ...(group.needs ?? []).map((k) => byKey.get(k)!)];
      const ids = new Set(own.flatMap((g) => [...idsOf(g.schema)]));
      let batch = mine.find((b) => !b.present.has(group.key) && own.every((g) => b.present.has(g.key) || ![...idsOf(g.schema)].some((id) => b.ids.has(id))));
      if (!batch) {
        batch = { slots: [], ids: new Set(), present: new Set() };
        mine.push(batch);
      }
      batch.slots.push({ group, doc: r });
      for (const g of own) batch.present.add(g.key);
      for (const id of ids) batch.ids.add(id);
    }
    batches.push(...mine);
  }
  return batches.map((b) => b.slots);
}

/** hotconf's verdict on every document of every group, by group key. */
export async function runHotconf(
  api: HotconfApi,
  groups: readonly Group[],
  byKey: ReadonlyMap<string, Group>,
  isolate = false,
): Promise<Map<string, Outcome[]>> {
  const results = new Map<string, Outcome[]>(groups.map((g) => [g.key, []]));
  const root = await mkdtemp(path.join(os.tmpdir(), 'hotconf-conformance-'));
  let n = 0;
  // One checkConfigs per batch. If it throws (it must not: a schema that cannot validate is that config's
  // error), the batch is split until the document that makes it throw is found, so one crash hides nothing else.
  const judge = async (slots: readonly Slot[]): Promise<void> => {
    const dir = path.join(root, String(n++));
    try {
      const outcomes = await checkBatch(api, dir, slots, byKey);
      for (const [i, slot] of slots.entries()) results.get(slot.group.key)![slot.doc] = outcomes[i]!;
    } catch (err) {
      if (slots.length === 1) {
        results.get(slots[0]!.group.key)![slots[0]!.doc] = { verdict: 'crashed', detail: `checkConfigs threw ${String(err).split('\n')[0]}` };
      } else {
        const half = Math.ceil(slots.length / 2);
        await judge(slots.slice(0, half));
        await judge(slots.slice(half));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    for (const slots of plan(groups, byKey, isolate)) await judge(slots);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return results;
}

/**
 * hotconf's verdict through one running instance (`createHotconf`, `reload()`, `status()`): every schema is
 * written once and compiled once, and each round writes the next document of every group over its config
 * file. For big schemas (SchemaStore's take 0.1 to 8 s each to compile here) this is what keeps the run short;
 * it needs every `$id` to be distinct across the groups.
 */
export async function runHotconfLive(api: HotconfApi, groups: readonly Group[], byKey: ReadonlyMap<string, Group>): Promise<Map<string, Outcome[]>> {
  const seen = new Map<string, string>();
  for (const g of byKey.values()) {
    for (const id of idsOf(g.schema)) {
      if (seen.has(id) && seen.get(id) !== g.key) throw new Error(`${g.key} and ${seen.get(id)} share the $id ${id}: not for one instance`);
      seen.set(id, g.key);
    }
  }
  const results = new Map<string, Outcome[]>(groups.map((g) => [g.key, []]));
  const root = await mkdtemp(path.join(os.tmpdir(), 'hotconf-conformance-'));
  const configDir = path.join(root, 'config');
  const schemaDir = path.join(root, 'schemas');
  try {
    await mkdir(configDir);
    await mkdir(schemaDir);
    for (const g of byKey.values()) await writeFile(path.join(schemaDir, `${g.key}.schema.json`), JSON.stringify(g.schema));
    const hc = await api.createHotconf({ configDir, schemaDir, batchPolicy: 'per-file', logger: pino({ level: 'silent' }) });
    try {
      const written = new Map<string, string>();
      for (let r = 0; groups.some((g) => r < g.docs.length); r++) {
        const round = groups.filter((g) => r < g.docs.length);
        for (const g of round) {
          const file = path.join(configDir, g.key + g.docs[r]!.ext);
          const before = written.get(g.key);
          if (before !== undefined && before !== file) await rm(before, { force: true });
          await writeFile(file, g.docs[r]!.text);
          written.set(g.key, file);
        }
        // A wedged instance must fail this run's documents, not hang the test.
        let timer: NodeJS.Timeout | undefined;
        const answered = await Promise.race([
          hc.reload().then(() => true),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 60_000))),
        ]).finally(() => clearTimeout(timer));
        if (!answered) {
          for (const g of groups) for (let i = r; i < g.docs.length; i++) results.get(g.key)![i] = { verdict: 'crashed', detail: 'reload() did not answer within 60 s' };
          break;
        }
        const states = new Map(hc.status().configs.map((c) => [c.name, c]));
        for (const g of round) {
          const c = states.get(g.key);
          const first = c?.error;
          const outcome: Outcome =
            c === undefined
              ? { verdict: 'crashed', detail: `status() does not list ${g.key}` }
              : c.state === 'ok'
                ? { verdict: 'valid', detail: '' }
                : !first
                  ? { verdict: 'crashed', detail: `state ${c.state} without an error` }
                  : {
                      verdict: PARSE_CODES.has(first.code) ? 'parse-refused' : first.code === 'E_SCHEMA' ? 'invalid' : 'schema-error',
                      detail: first.message.replaceAll(configDir + path.sep, '').replaceAll(schemaDir + path.sep, 'schemas/'),
                      code: first.code,
                    };
          results.get(g.key)![r] = outcome;
        }
      }
    } finally {
      await hc.close();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return results;
}

async function checkBatch(api: HotconfApi, dir: string, slots: readonly Slot[], byKey: ReadonlyMap<string, Group>): Promise<Outcome[]> {
  const configDir = path.join(dir, 'config');
  const schemaDir = path.join(dir, 'schemas');
  await mkdir(configDir, { recursive: true });
  await mkdir(schemaDir, { recursive: true });
  const names: string[] = [];
  // A schema another one needs is written once: under its own name when it is judged in this batch too.
  const written = new Set<string>(slots.map((s) => `_needed/${s.group.key}`));
  const writeSchema = async (name: string, schema: AnySchema) => {
    if (written.has(name)) return;
    written.add(name);
    await mkdir(path.dirname(path.join(schemaDir, name)), { recursive: true });
    await writeFile(path.join(schemaDir, `${name}.schema.json`), JSON.stringify(schema));
  };
  for (const { group, doc } of slots) {
    const shared = idsOf(group.schema).size === 0 && (group.needs ?? []).length === 0;
    const name = shared ? `${group.key}/${doc}` : group.key;
    names.push(name);
    await writeSchema(name, group.schema);
    for (const key of group.needs ?? []) await writeSchema(`_needed/${key}`, byKey.get(key)!.schema);
    await mkdir(path.dirname(path.join(configDir, name)), { recursive: true });
    await writeFile(path.join(configDir, name + group.docs[doc]!.ext), group.docs[doc]!.text);
  }
  const report = await api.checkConfigs({ configDir, schemaDir });
  const byName = new Map(report.configs.map((c) => [c.name, c]));
  const shorten = (message: string) => message.replaceAll(configDir + path.sep, '').replaceAll(schemaDir + path.sep, 'schemas/');
  return names.map((name): Outcome => {
    const config = byName.get(name);
    if (!config) return { verdict: 'crashed', detail: `checkConfigs did not report ${name}` };
    const first = config.errors[0];
    if (config.ok) return { verdict: 'valid', detail: '' };
    if (!first) return { verdict: 'invalid', detail: '' };
    const verdict = PARSE_CODES.has(first.code) ? 'parse-refused' : first.code === 'E_SCHEMA' ? 'invalid' : 'schema-error';
    return { verdict, detail: shorten(first.message), code: first.code };
  });
}

// ---------------------------------------------------------------------------------------------------------
// Deliberate differences: where hotconf's verdict may differ from plain ajv's, and why. Each is listed in the
// README ("JSON Schema conformance"). Anything else that differs fails the test.

export interface Difference {
  readonly name: string;
  readonly reason: string;
  /** True when this difference explains hotconf's `hotconf` outcome where plain ajv gave `plain`. */
  readonly applies: (doc: Doc, hotconf: Outcome, plain: Outcome) => boolean;
}

function valueOf(doc: Doc): unknown {
  try {
    return doc.ext === '.json' ? JSON.parse(doc.text) : parseYaml(doc.text, { merge: true });
  } catch {
    return undefined;
  }
}

function some(value: unknown, test: (v: unknown, key?: string) => boolean): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (test(v)) return true;
    if (Array.isArray(v)) stack.push(...(v as unknown[]));
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (test(undefined, k)) return true;
        stack.push(x);
      }
    }
  }
  return false;
}

export const DIFFERENCES: readonly Difference[] = [
  {
    name: 'safe-integer',
    reason:
      'an integer beyond ±(2^53 − 1) has lost digits when it was parsed, so hotconf refuses it where the schema allows an integer: ' +
      'plain ajv accepts the rounded number',
    applies: (doc, hotconf, plain) =>
      hotconf.verdict === 'invalid' &&
      plain.verdict === 'valid' &&
      some(valueOf(doc), (v) => typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)),
  },
  {
    name: 'forbidden-key',
    reason: 'keys `__proto__`, `constructor` and `prototype` are refused when the config is parsed (prototype pollution guard)',
    applies: (doc, hotconf) =>
      hotconf.verdict === 'parse-refused' &&
      hotconf.code === 'E_FORBIDDEN_KEY' &&
      some(valueOf(doc), (_, k) => k === '__proto__' || k === 'constructor' || k === 'prototype'),
  },
];

export interface Row {
  readonly group: Group;
  readonly doc: Doc;
  readonly hotconf: Outcome;
  readonly plain: Outcome;
  /** The deliberate difference that explains a disagreement, if any. */
  readonly difference: string | undefined;
}

export interface Comparison {
  readonly rows: readonly Row[];
  /** Groups left out, and why (a `$ref` to a remote the suite serves over HTTP). */
  readonly skipped: ReadonlyArray<{ readonly group: Group; readonly reason: string }>;
  /** Groups whose schema plain ajv does not compile (hotconf must refuse them too). */
  readonly plainCompileErrors: ReadonlyArray<{ readonly group: Group; readonly error: string }>;
  /** Wall time of each side, for the report. */
  readonly ms: { readonly plain: number; readonly hotconf: number };
}

/** Runs every group through both and pairs the outcomes. */
export async function compare(
  api: HotconfApi,
  groups: readonly Group[],
  /** live: one running instance (runHotconfLive); isolate: one checkConfigs per document, nothing beside it. */
  options: { skipMissingRef?: RegExp; live?: boolean; isolate?: boolean } = {},
): Promise<Comparison> {
  const byKey = new Map(groups.map((g) => [g.key, g]));
  const t0 = performance.now();
  const plain = new Map(groups.map((g) => [g.key, runPlain(g, byKey)]));
  const t1 = performance.now();
  const skipped: Array<{ group: Group; reason: string }> = [];
  const kept = groups.filter((g) => {
    const missing = plain.get(g.key)!.missingRef;
    if (missing !== undefined && options.skipMissingRef?.test(missing)) {
      skipped.push({ group: g, reason: `$ref to remote ${missing}` });
      return false;
    }
    return true;
  });
  const hotconf = options.live ? await runHotconfLive(api, kept, byKey) : await runHotconf(api, kept, byKey, options.isolate);
  const ms = { plain: Math.round(t1 - t0), hotconf: Math.round(performance.now() - t1) };
  const rows: Row[] = [];
  const plainCompileErrors: Array<{ group: Group; error: string }> = [];
  for (const group of kept) {
    const p = plain.get(group.key)!;
    if (p.compileError !== undefined) plainCompileErrors.push({ group, error: p.compileError });
    group.docs.forEach((doc, i) => {
      const h = hotconf.get(group.key)![i]!;
      const a = p.outcomes[i]!;
      const difference = h.verdict === a.verdict ? undefined : DIFFERENCES.find((d) => d.applies(doc, h, a))?.name;
      rows.push({ group, doc, hotconf: h, plain: a, difference });
    });
  }
  return { rows, skipped, plainCompileErrors, ms };
}

/** A row where hotconf and plain ajv disagree without a documented reason, as one line for a test failure. */
export function mismatch(row: Row): string | undefined {
  if (row.hotconf.verdict === row.plain.verdict || row.difference !== undefined) return undefined;
  return (
    `${row.group.label} › ${row.doc.label}: hotconf ${row.hotconf.verdict}` +
    `${row.hotconf.detail ? ` (${row.hotconf.detail.slice(0, 300)})` : ''}, plain ajv ${row.plain.verdict}` +
    `${row.plain.detail ? ` (${row.plain.detail.slice(0, 160)})` : ''}` +
    `${row.doc.expected === undefined ? '' : `, expected ${row.doc.expected ? 'valid' : 'invalid'}`}`
  );
}

export interface Tally {
  readonly total: number;
  /** Documents judged as their authors expect. */
  readonly hotconf: number;
  readonly plain: number;
  /** Documents where hotconf's verdict equals plain ajv's. */
  readonly agree: number;
  /** Documents hotconf judged at all (the schema compiled). */
  readonly hotconfCompiled: number;
  readonly plainCompiled: number;
  /** Disagreements explained by a deliberate difference, by its name. */
  readonly differences: Readonly<Record<string, number>>;
}

const right = (o: Outcome, expected: boolean | undefined) => expected !== undefined && o.verdict === (expected ? 'valid' : 'invalid');

export function tally(rows: readonly Row[]): Tally {
  return {
    total: rows.length,
    hotconf: rows.filter((r) => right(r.hotconf, r.doc.expected)).length,
    plain: rows.filter((r) => right(r.plain, r.doc.expected)).length,
    agree: rows.filter((r) => r.hotconf.verdict === r.plain.verdict || r.difference !== undefined).length,
    hotconfCompiled: rows.filter((r) => r.hotconf.verdict !== 'schema-error').length,
    plainCompiled: rows.filter((r) => r.plain.verdict !== 'schema-error').length,
    differences: Object.fromEntries(
      DIFFERENCES.map((d): [string, number] => [d.name, rows.filter((r) => r.difference === d.name).length]).filter(([, n]) => n !== 0),
    ),
  };
}

/**
 * With HOTCONF_CONFORMANCE_REPORT set: `1` prints the table, a directory receives `<suite>.json` (what
 * bench/conformance.mjs reads).
 */
export async function report(suite: string, tallies: ReadonlyArray<readonly [string, Tally]>, extra: Record<string, unknown> = {}): Promise<void> {
  const target = process.env.HOTCONF_CONFORMANCE_REPORT;
  if (!target) return;
  if (target === '1') {
    console.log(formatTable(suite, tallies));
    return;
  }
  await mkdir(target, { recursive: true });
  await writeFile(path.join(target, `${suite}.json`), JSON.stringify({ suite, tallies, ...extra }, null, 2));
}

export function formatTable(suite: string, tallies: ReadonlyArray<readonly [string, Tally]>): string {
  const lines = [`${suite}: documents judged as expected (hotconf / plain non-strict ajv / total), agreement, schema compiled`];
  const width = Math.max(...tallies.map(([k]) => k.length), 5);
  for (const [key, t] of tallies) {
    const pct = (n: number) => `${((100 * n) / Math.max(t.total, 1)).toFixed(0)}%`.padStart(4);
    lines.push(
      `  ${key.padEnd(width)}  hotconf ${String(t.hotconf).padStart(5)}/${t.total} ${pct(t.hotconf)}   plain ajv ${String(t.plain).padStart(5)}/${t.total} ${pct(t.plain)}` +
        `   agree ${String(t.agree).padStart(5)}   compiled hotconf ${t.hotconfCompiled} ajv ${t.plainCompiled}` +
        Object.entries(t.differences).map(([k, n]) => `   ${k} ${n}`).join(''),
    );
  }
  return lines.join('\n');
}

/** A failure list short enough to read: the first 25 lines and how many more. */
export function capped(lines: readonly string[]): string[] {
  return lines.length <= 25 ? [...lines] : [...lines.slice(0, 25), `… and ${lines.length - 25} more`];
}
