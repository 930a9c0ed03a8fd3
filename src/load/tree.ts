// The YAML tree checks of the parse stage: one pass over the parsed Document that refuses what a config must
// not hold (too deep, too many aliases, duplicate or forbidden keys, bad merges), a last check that the value
// is plain data, and the map from a JSON pointer back to the node's position that validate's errors carry.
import type { Alias, Document, LineCounter, Node, Pair, YAMLMap, YAMLSeq } from 'yaml';
import type { HotconfErrorCode, ParseError } from '../errors.js';
import { parsePointer } from '../pointer.js';
import type { ParseOptions, Position } from './parse.js';
import { yaml } from './yaml.js';

// yaml's node guards, through the lazy loader (a tree exists only after yaml parsed it, so these never load it).
const isAlias = ((node: unknown) => yaml().isAlias(node)) as typeof import('yaml').isAlias;
const isMap = ((node: unknown) => yaml().isMap(node)) as typeof import('yaml').isMap;
const isScalar = ((node: unknown) => yaml().isScalar(node)) as typeof import('yaml').isScalar;
const isSeq = ((node: unknown) => yaml().isSeq(node)) as typeof import('yaml').isSeq;

/** Keys that would reach an object's prototype machinery: refused wherever they appear. */
export const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Makes the ParseError for a problem at a source offset (undefined: no position). */
export type Fail = (code: HotconfErrorCode, offset: number | undefined, detail: string) => ParseError;

interface Frame {
  readonly node: YAMLMap<unknown, unknown> | YAMLSeq<unknown>;
  readonly depth: number;
  readonly parent: Frame | undefined;
  /** The value of a merge key (`<<`): the entries of its map(s) land in the map that holds the `<<`. */
  readonly merge: boolean;
  /** Levels of collections from this one down, aliases included (1 for a collection of scalars). */
  height: number;
  /** Alias dereferences inside, counting those that the aliases bring in. */
  derefs: number;
}
type Task =
  | {
      readonly kind: 'node';
      readonly node: unknown;
      readonly parent: Frame | undefined;
      /** The value of a `<<` key. */
      readonly merge?: boolean;
      /** Adds no level: the value of a `<<` key, or an item of a `<<` list. */
      readonly flat?: boolean;
    }
  | { readonly kind: 'pair'; readonly pair: Pair<unknown, unknown>; readonly parent: Frame }
  | { readonly kind: 'exit'; readonly frame: Frame };

/**
 * One iterative pass over the tree in document order (no recursion: a 10,000-deep file must not overflow the
 * stack). Refuses nesting deeper than maxDepth and more than maxAliasCount alias dereferences, both counting
 * what aliases bring in; duplicate and forbidden keys; keys that are not scalars or that collide once
 * stringified (`1` and `"1"`); unknown and cyclic aliases; merges of non-maps. Returns what each alias refers
 * to, for `locateInTree`.
 */
export function checkTree(doc: Document.Parsed, limits: Required<ParseOptions>, fail: Fail): Map<Alias, Node> {
  const { maxDepth, maxAliasCount } = limits;
  const tooDeep = (node: unknown) => fail('E_DEPTH', nodeStart(node), `nesting is too deep (limit ${maxDepth})`);
  const anchors = new Map<string, Node>();
  // Of anchored nodes, once walked: levels (collections only) and alias dereferences inside.
  const heights = new Map<Node, number>();
  const derefs = new Map<Node, number>();
  let totalDerefs = 0;
  const open = new Set<Node>(); // anchored collections being walked: an alias to one would be a cycle
  const aliasTargets = new Map<Alias, Node>();
  const raise = (frame: Frame | undefined, height: number) => {
    if (frame) frame.height = Math.max(frame.height, height + 1);
  };
  const stack: Task[] = [{ kind: 'node', node: doc.contents, parent: undefined }];
  for (let task = stack.pop(); task !== undefined; task = stack.pop()) {
    if (task.kind === 'exit') {
      const { node, height, parent, merge } = task.frame;
      if (node.anchor) {
        heights.set(node, height);
        derefs.set(node, task.frame.derefs);
      }
      open.delete(node);
      raise(parent, height - (merge ? (isSeq(node) ? 2 : 1) : 0));
      if (parent) parent.derefs += task.frame.derefs;
    } else if (task.kind === 'pair') {
      const { key, value } = task.pair;
      if (isAlias(key)) {
        // `*a : x` with `a` a scalar is a legal key: it is the scalar's value (a map or list is refused below).
        const target = anchors.get(key.source);
        if (!target) throw fail('E_PARSE', nodeStart(key), "an alias has no anchor before it (a string that starts with '*' must be quoted)");
        if (!isScalar(target)) throw fail('E_PARSE', nodeStart(key), 'map keys must be scalars (this alias refers to a map or list)');
        aliasTargets.set(key, target);
        if (++totalDerefs > maxAliasCount) {
          throw fail('E_ALIAS_LIMIT', nodeStart(key), `too many alias dereferences (limit ${maxAliasCount}): possibly a "billion laughs" document`);
        }
        task.parent.derefs++;
      } else if (!isScalar(key)) {
        throw fail('E_PARSE', nodeStart(key) ?? nodeStart(task.parent.node), 'map keys must be scalars');
      }
      if (isScalar(key) && key.anchor) anchors.set(key.anchor, key);
      const merge = isScalar(key) && typeof key.value === 'symbol'; // how yaml marks `<<` when merge keys are on
      if (merge) checkMergeSources(value, anchors, fail);
      stack.push({ kind: 'node', node: value, parent: task.parent, merge, flat: merge });
    } else if (isAlias(task.node)) {
      const alias = task.node;
      const target = anchors.get(alias.source);
      // The alias's name is not quoted: an unquoted secret that starts with `*` is an alias.
      if (!target) throw fail('E_PARSE', nodeStart(alias), "an alias has no anchor before it (a string that starts with '*' must be quoted)");
      if (open.has(target)) {
        throw fail('E_PARSE', nodeStart(alias), 'an alias is inside what it refers to');
      }
      aliasTargets.set(alias, target);
      const brought = 1 + (derefs.get(target) ?? 0);
      totalDerefs += brought;
      if (totalDerefs > maxAliasCount) {
        const detail = `too many alias dereferences (limit ${maxAliasCount}): possibly a "billion laughs" document`;
        throw fail('E_ALIAS_LIMIT', nodeStart(alias), detail);
      }
      if (task.parent) task.parent.derefs += brought;
      const height = heights.get(target) ?? 0;
      if ((task.parent?.depth ?? 0) + height - (task.flat ? 1 : 0) > maxDepth) throw tooDeep(alias);
      raise(task.parent, height - (task.merge ? 1 : 0));
    } else if (isMap(task.node) || isSeq(task.node)) {
      const node = task.node;
      const merge = task.merge === true;
      const depth = (task.parent?.depth ?? 0) + (task.flat ? 0 : 1);
      const frame: Frame = { node, depth, parent: task.parent, merge, height: 1, derefs: 0 };
      if (frame.depth > maxDepth) throw tooDeep(node);
      if (node.anchor) {
        anchors.set(node.anchor, node);
        open.add(node);
      }
      stack.push({ kind: 'exit', frame });
      if (isMap(node)) {
        checkKeys(node, doc, fail);
        for (const pair of node.items.toReversed()) stack.push({ kind: 'pair', pair, parent: frame });
      } else {
        // The items of a `<<` list are merge sources too: they add no level.
        for (const item of node.items.toReversed()) {
          stack.push({ kind: 'node', node: item, parent: frame, flat: merge });
        }
      }
    } else if (isScalar(task.node) && task.node.anchor) {
      anchors.set(task.node.anchor, task.node);
    }
  }
  return aliasTargets;
}

/** Forbidden and duplicate keys of one map, compared as the property names they become (`1` and `"1"` collide). */
function checkKeys(map: YAMLMap<unknown, unknown>, doc: Document.Parsed, fail: Fail): void {
  const seen = new Set<string>();
  for (const { key: written } of map.items) {
    // An alias key counts as the scalar it refers to (the last anchor of that name before it, as yaml resolves it).
    const key = isAlias(written) ? written.resolve(doc) : written;
    if (!isScalar(key) || typeof key.value === 'symbol') continue;
    const name = jsKey(key.value);
    if (FORBIDDEN_KEYS.has(name)) throw fail('E_FORBIDDEN_KEY', nodeStart(written), `key "${name}" is not allowed`);
    if (seen.has(name)) throw fail('E_DUPLICATE_KEY', nodeStart(written), 'duplicate key');
    seen.add(name);
  }
}

function checkMergeSources(value: unknown, anchors: Map<string, Node>, fail: Fail): void {
  for (const source of isSeq(value) ? value.items : [value]) {
    if (!isMap(isAlias(source) ? anchors.get(source.source) : source)) {
      throw fail('E_PARSE', nodeStart(source), 'a merge (<<) value must be a map, an alias to one, or a list of those');
    }
  }
}

/** Defence in depth on the final value: plain data only, and no forbidden key however it got there. */
export function checkPlain(value: unknown, fail: Fail): void {
  const seen = new Set<object>(); // aliases share objects: visit each once
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') continue;
    if (typeof v !== 'object') throw fail('E_PARSE', undefined, `unsupported value of type ${typeof v}`);
    if (seen.has(v)) continue;
    seen.add(v);
    if (Array.isArray(v)) {
      for (const item of v as unknown[]) stack.push(item); // not push(...v): 500,000 arguments overflow
    } else if (Object.getPrototypeOf(v) !== Object.prototype) {
      throw fail('E_PARSE', undefined, 'unsupported value: not plain data');
    } else {
      for (const [key, member] of Object.entries(v)) {
        if (FORBIDDEN_KEYS.has(key)) throw fail('E_FORBIDDEN_KEY', undefined, `key "${key}" is not allowed`);
        stack.push(member);
      }
    }
  }
}

/** The property name a scalar key becomes, as yaml's toJS makes it. */
function jsKey(value: unknown): string {
  if (typeof value === 'string') return value;
  return typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' ? String(value) : '';
}

const nodeStart = (node: unknown): number | undefined =>
  isAlias(node) || isScalar(node) || isMap(node) || isSeq(node) ? node.range?.[0] : undefined;

/** The position of the node at `pointer` in a checked tree; see ParsedConfig.locate. */
export function locateInTree(
  doc: Document.Parsed,
  aliasTargets: Map<Alias, Node>,
  lines: LineCounter,
  pointer: string,
  key: boolean,
): Position | undefined {
  const segments = parsePointer(pointer);
  if (segments === undefined) return undefined;
  const resolve = (n: unknown): unknown => (isAlias(n) ? aliasTargets.get(n) : n);
  let node = resolve(doc.contents);
  let best = nodeStart(doc.contents) ?? 0; // an empty document: 1:1
  for (const [i, segment] of segments.entries()) {
    let next: unknown;
    let keyNode: unknown;
    if (isMap(node)) {
      const pair = findPair(node, segment, resolve);
      [next, keyNode] = [pair?.value, pair?.key];
    } else if (isSeq(node) && /^(0|[1-9]\d*)$/.test(segment)) {
      next = node.items[Number(segment)];
    }
    const wantKey = key && i === segments.length - 1 && keyNode !== undefined;
    const start = nodeStart(wantKey ? keyNode : next) ?? nodeStart(keyNode); // `a:` with no value: its key
    if (start === undefined) break;
    best = start;
    node = resolve(next);
  }
  return lines.linePos(best);
}

/** The text ranges [start, end) of the value at `pointer` in a checked tree: the node, and when it is reached
 *  through an alias, also the anchored node the alias names (the value is written there). Undefined when the
 *  pointer does not lead to a node. */
export function spansInTree(doc: Document.Parsed, aliasTargets: Map<Alias, Node>, pointer: string): Array<[number, number]> | undefined {
  const segments = parsePointer(pointer);
  if (segments === undefined) return undefined;
  const resolve = (n: unknown): unknown => (isAlias(n) ? aliasTargets.get(n) : n);
  const rangeOf = (n: unknown): [number, number] | undefined => {
    const r = isAlias(n) || isScalar(n) || isMap(n) || isSeq(n) ? n.range : undefined;
    return r ? [r[0], r[1]] : undefined;
  };
  let raw: unknown = doc.contents;
  for (const segment of segments) {
    const node = resolve(raw);
    if (isMap(node)) raw = findPair(node, segment, resolve)?.value;
    else if (isSeq(node) && /^(0|[1-9]\d*)$/.test(segment)) raw = node.items[Number(segment)];
    else return undefined;
    if (raw === undefined || raw === null) return undefined;
  }
  const spans = [rangeOf(raw), isAlias(raw) ? rangeOf(resolve(raw)) : undefined].filter((r): r is [number, number] => r !== undefined);
  return spans.length > 0 ? spans : undefined;
}

/** The pair for `name`, in yaml's merge order: the map's own keys, then each merged map (depth first). */
function findPair(map: YAMLMap<unknown, unknown>, name: string, resolve: (n: unknown) => unknown) {
  const maps: unknown[] = [map];
  for (let m = maps.pop(); m !== undefined; m = maps.pop()) {
    if (!isMap(m)) continue;
    const merged: unknown[] = [];
    for (const pair of m.items) {
      const key = resolve(pair.key);
      if (!isScalar(key)) continue;
      if (typeof key.value === 'symbol') merged.push(isSeq(pair.value) ? pair.value.items : [pair.value]);
      else if (jsKey(key.value) === name) return pair;
    }
    for (const source of merged.flat().reverse()) maps.push(resolve(source));
  }
  return undefined;
}
