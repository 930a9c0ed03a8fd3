// The writers property test's world: operations that real writers perform on a config directory, their
// fast-check arbitraries, and a reference model of DESIGN.md's rules (last-known-good, batch policy) that
// says what the store must hold once the writes stop.
import { execFile } from 'node:child_process';
import { mkdir, open, readlink, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import type { BatchPolicy } from '../../src/index.js';
import { sleep } from '../helpers.js';
import type { World } from '../hotconf/fixtures.js';

const run = promisify(execFile);

/** How a sequence lays out its config dir: plain files, or a Kubernetes ConfigMap volume (`..data` symlinks). */
export type Layout = 'plain' | 'k8s';
export const PLAIN_NAMES = ['a', 'b', 'sub/c'] as const;
export const K8S_NAMES = ['a', 'b', 'c'] as const;
export const NAME_SLOTS = 3;

/** What a writer puts in a file. `n` is unique per write, so that every value can be traced to its write. */
export type Kind = 'valid' | 'schema-invalid' | 'syntax';
export interface Content {
  readonly kind: Kind;
  readonly n: number;
}
export const textOf = ({ kind, n }: Content) => (kind === 'valid' ? `n: ${n}\n` : kind === 'schema-invalid' ? `n: ${-n}\n` : `n: [${n}\n`);
/** The same content in flow style: no proper prefix of it is a valid document. */
export const flowTextOf = ({ kind, n }: Content) => (kind === 'valid' ? `{n: ${n}}\n` : kind === 'schema-invalid' ? `{n: ${-n}}\n` : `{n: [${n}}\n`);

/** Schema 0: any integer n >= 0. Schema 1 (the "schema file change"): and n even. */
export const schemaOf = (version: 0 | 1) => ({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  additionalProperties: false,
  required: ['n'],
  properties: { n: version === 0 ? { type: 'integer', minimum: 0 } : { type: 'integer', minimum: 0, multipleOf: 2 } },
});

export type Op =
  | { op: 'write'; slot: number; kind: Kind; how: 'in-place' | 'atomic' | 'chunks'; pauseMs: number }
  | { op: 'edit'; slot: number; editor: 'vim' | 'sed'; pauseMs: number }
  | { op: 'delete'; slot: number; pauseMs: number }
  | { op: 'delete+recreate'; slot: number; pauseMs: number }
  | { op: 'schema'; slot: number; pauseMs: number }
  | { op: 'rmdir+recreate'; pauseMs: number }
  | { op: 'k8s-swap'; payload: ReadonlyArray<Kind | 'absent'>; pauseMs: number };

export interface Sequence {
  readonly layout: Layout;
  readonly policy: BatchPolicy;
  readonly ops: readonly Op[];
}

const slot = fc.integer({ min: 0, max: NAME_SLOTS - 1 });
/** Pauses between operations: none (coalesced), shorter than, around and longer than the debounce. */
const pauseMs = fc.constantFrom(0, 0, 5, 30, 80);
const kind = fc.constantFrom<Kind>('valid', 'valid', 'schema-invalid', 'syntax');

const plainOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('write' as const), slot, kind, how: fc.constantFrom('in-place' as const, 'atomic' as const, 'chunks' as const), pauseMs }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('edit' as const), slot, editor: fc.constantFrom('vim' as const, 'sed' as const), pauseMs }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), slot, pauseMs }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete+recreate' as const), slot, pauseMs }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('schema' as const), slot, pauseMs }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('rmdir+recreate' as const), pauseMs }) },
);
const k8sOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('k8s-swap' as const),
      payload: fc.array(fc.constantFrom<Kind | 'absent'>('valid', 'valid', 'valid', 'schema-invalid', 'syntax', 'absent'), { minLength: NAME_SLOTS, maxLength: NAME_SLOTS }),
      pauseMs,
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('schema' as const), slot, pauseMs }) },
);

export const sequenceArb: fc.Arbitrary<Sequence> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ layout: fc.constant('plain' as const), policy: fc.constantFrom<BatchPolicy>('all-or-nothing', 'per-file'), ops: fc.array(plainOp, { minLength: 1, maxLength: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ layout: fc.constant('k8s' as const), policy: fc.constantFrom<BatchPolicy>('all-or-nothing', 'per-file'), ops: fc.array(k8sOp, { minLength: 1, maxLength: 4 }) }) },
);

export const ABSENT = 'absent';
type Held = number | typeof ABSENT;

/** The reference model: the disk as the writers left it, and what the store may hold for each name. */
export class Model {
  readonly names: readonly string[];
  readonly disk = new Map<string, Content | undefined>();
  readonly schema = new Map<string, 0 | 1>();
  /** Per name: every state the store may be left in while the disk is invalid (last-known-good candidates). */
  readonly admissible = new Map<string, Set<Held>>();
  /** Per name: every n that was ever valid on disk (under schema 0): nothing else may ever be applied. */
  readonly everValid = new Map<string, Set<number>>();
  private counter = 0;

  constructor(readonly layout: Layout) {
    this.names = layout === 'plain' ? PLAIN_NAMES : K8S_NAMES;
    for (const name of this.names) {
      this.schema.set(name, 0);
      this.admissible.set(name, new Set());
      this.everValid.set(name, new Set());
      this.put(name, this.next('valid'));
    }
  }

  next(kind: Kind): Content {
    return { kind, n: ++this.counter };
  }

  nameOf(slot: number): string {
    return this.names[slot % this.names.length]!;
  }

  put(name: string, content: Content | undefined): void {
    this.disk.set(name, content);
    if (content === undefined) this.admissible.get(name)!.add(ABSENT);
    else if (content.kind === 'valid') {
      this.admissible.get(name)!.add(content.n);
      this.everValid.get(name)!.add(content.n);
    }
  }

  /** Valid under the name's current schema. */
  valid(name: string): boolean {
    const c = this.disk.get(name);
    return c !== undefined && c.kind === 'valid' && (this.schema.get(name) === 0 || c.n % 2 === 0);
  }

  invalidNames(): string[] {
    return this.names.filter((n) => this.disk.get(n) !== undefined && !this.valid(n));
  }

  /**
   * What the store must hold exactly for `name` once settled, or undefined when only `admissible` is known.
   * per-file: every file that is valid or absent is exact. all-or-nothing: only when nothing is invalid (a bad
   * file holds back its batch, and which names shared that batch depends on timing).
   */
  exact(name: string, policy: BatchPolicy): Held | undefined {
    if (policy === 'all-or-nothing' && this.invalidNames().length > 0) return undefined;
    const c = this.disk.get(name);
    if (c === undefined) return ABSENT;
    return this.valid(name) ? c.n : undefined;
  }
}

/** Paths of a name's file: plain `config/<name>.yaml`; k8s `config/<name>.yaml` → `..data/<name>.yaml`. */
export const fileOf = (w: World, name: string) => path.join(w.configDir, `${name}.yaml`);

/** Writes the initial world for a model (before hotconf starts). */
export async function initialWorld(w: World, model: Model): Promise<void> {
  for (const name of model.names) await w.schema(name, schemaOf(0));
  if (model.layout === 'plain') {
    for (const name of model.names) await w.config(`${name}.yaml`, textOf(model.disk.get(name)!));
  } else {
    await k8sPublish(w, model, 0);
  }
}

let k8sGeneration = 0;

/**
 * What kubelet's atomic writer does for a ConfigMap volume: the payload goes into a fresh `..<timestamp>` dir,
 * `..data` is re-pointed by one rename, the user-visible symlinks `<key>` → `..data/<key>` are added or
 * removed, and the old dir is deleted.
 */
async function k8sPublish(w: World, model: Model, generation: number): Promise<void> {
  const dir = w.configDir;
  const ts = `..2026_11_25_12_00_00.${process.pid}_${generation}_${++k8sGeneration}`;
  await mkdir(path.join(dir, ts));
  for (const name of model.names) {
    const c = model.disk.get(name);
    if (c !== undefined) await writeFile(path.join(dir, ts, `${name}.yaml`), textOf(c));
  }
  const old = await readlink(path.join(dir, '..data')).catch(() => undefined);
  await symlink(ts, path.join(dir, '..data_tmp'));
  await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const name of model.names) {
    const link = path.join(dir, `${name}.yaml`);
    if (model.disk.get(name) === undefined) await rm(link, { force: true });
    else await symlink(path.join('..data', `${name}.yaml`), link).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
  if (old !== undefined) await rm(path.join(dir, old), { recursive: true, force: true });
}

/** Performs one operation on the disk and updates the model the same way. */
export async function perform(w: World, model: Model, op: Op, debounceMs: number): Promise<void> {
  switch (op.op) {
    case 'write': {
      // The model is told first: a subscriber may see the new value before the write returns.
      const name = model.nameOf(op.slot);
      const content = model.next(op.kind);
      model.put(name, content);
      const file = fileOf(w, name);
      await mkdir(path.dirname(file), { recursive: true });
      if (op.how === 'atomic') await w.configAtomic(`${name}.yaml`, textOf(content));
      else if (op.how === 'in-place') await writeFile(file, textOf(content));
      else {
        // In place, in three chunks, with pauses shorter than the debounce window. Flow style, so that no
        // prefix is a valid document: a read that lands between chunks (a batch already running) must be
        // refused, never applied; the whole file must be applied once the writer is quiet.
        const text = flowTextOf(content);
        const fh = await open(file, 'w');
        try {
          const cuts = [0, Math.ceil(text.length / 3), Math.ceil((2 * text.length) / 3), text.length];
          for (let i = 0; i < 3; i++) {
            await fh.write(text.slice(cuts[i], cuts[i + 1]));
            if (i < 2) await sleep(Math.max(1, Math.floor(debounceMs / 4)));
          }
        } finally {
          await fh.close();
        }
      }
      break;
    }
    case 'edit': {
      const name = model.nameOf(op.slot);
      const file = fileOf(w, name);
      // sed -i writes a temp file beside it and renames it over; it needs an existing file.
      if (op.editor === 'sed' && model.disk.get(name) === undefined) break;
      const content = model.next('valid');
      model.put(name, content);
      if (op.editor === 'sed') {
        await run('sed', ['-i', `s/^.*$/n: ${content.n}/`, file]);
      } else {
        await mkdir(path.dirname(file), { recursive: true });
        // Ex mode, no vimrc, no viminfo: delete every line, write the new one, save. vim.tiny writes in place
        // (open without O_TRUNC, write, truncate), with a .swp file beside it while it runs.
        await run('vim.tiny', ['-Es', '-u', 'NONE', '-i', 'NONE', '-c', '%d', '-c', `s/^$/n: ${content.n}/`, '-c', 'wq', file]);
      }
      break;
    }
    case 'delete': {
      const name = model.nameOf(op.slot);
      if (model.disk.get(name) === undefined) break;
      await unlink(fileOf(w, name));
      model.put(name, undefined);
      break;
    }
    case 'delete+recreate': {
      const name = model.nameOf(op.slot);
      const content = model.next('valid');
      // Inside the debounce window this is a change; a batch already running may still see the gap.
      model.admissible.get(name)!.add(ABSENT);
      model.put(name, content);
      await rm(fileOf(w, name), { force: true });
      await mkdir(path.dirname(fileOf(w, name)), { recursive: true });
      await writeFile(fileOf(w, name), textOf(content));
      break;
    }
    case 'schema': {
      const name = model.nameOf(op.slot);
      const next = model.schema.get(name) === 0 ? 1 : 0;
      await w.schema(name, schemaOf(next));
      model.schema.set(name, next);
      break;
    }
    case 'rmdir+recreate': {
      await rm(w.configDir, { recursive: true, force: true });
      await mkdir(w.configDir);
      for (const name of model.names) {
        model.admissible.get(name)!.add(ABSENT);
        const c = model.disk.get(name);
        if (c !== undefined) await w.config(`${name}.yaml`, textOf(c));
      }
      break;
    }
    case 'k8s-swap': {
      model.names.forEach((name, i) => {
        const k = op.payload[i] ?? 'valid';
        model.put(name, k === 'absent' ? undefined : model.next(k));
      });
      await k8sPublish(w, model, 1);
      break;
    }
  }
  if (op.pauseMs > 0) await sleep(op.pauseMs);
}

/** Brings every invalid file back to a valid value (the operator fixes the disk); the store must catch up. */
export async function repair(w: World, model: Model): Promise<void> {
  const bad = model.invalidNames();
  if (bad.length === 0) return;
  for (const name of bad) {
    const schema = model.schema.get(name)!;
    let content = model.next('valid');
    while (schema === 1 && content.n % 2 !== 0) content = model.next('valid');
    model.put(name, content);
  }
  if (model.layout === 'k8s') await k8sPublish(w, model, 2);
  else for (const name of bad) await w.configAtomic(`${name}.yaml`, textOf(model.disk.get(name)!));
}
