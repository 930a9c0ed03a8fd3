// Secrets are found from the schema's structure, not from what ajv happened to evaluate: every subschema that
// can apply to a value (through properties, items, contains, every branch of allOf/anyOf/oneOf/if/then/else,
// references) is visited, and a value under `writeOnly: true` or `x-hotconf-secret: true` is a secret. Visiting a
// branch that did not match only over-marks, which for secrets is the safe side.
import type { RE2JS } from 're2js';
import { re2 } from './dialects.js';
import { escapePointer } from '../pointer.js';

/** The keyword hotconf adds to mark a secret; `writeOnly: true` is treated the same. */
export const SECRET_KEYWORD = 'x-hotconf-secret';

/** Finds a `$ref` target: the subschema and the base URI it sits under, or undefined. */
export type RefResolver = (ref: string, base: string) => { schema: unknown; base: string } | undefined;

/** Does any subschema of `schema` (data keywords' values included: this is a cheap pre-check) mark a secret? */
export function mentionsSecret(text: string): boolean {
  return /"writeOnly"\s*:\s*true|"x-hotconf-secret"\s*:\s*true/.test(text);
}

/** The JSON pointers of the secret values of `data` under `schema` (whose base URI is `base`), sorted. */
export function findSecrets(schema: unknown, data: unknown, base: string, resolve: RefResolver): string[] {
  const out = new Set<string>();
  // `here`: the subschemas already applied to this data node; a `$ref` loop (or a diamond of them) that
  // consumes no data ends there. Each child node starts its own set.
  const walk = (s: unknown, d: unknown, ptr: string, b: string, here: Set<object>): void => {
    if (typeof s !== 'object' || s === null || Array.isArray(s) || here.has(s) || out.has(ptr)) return;
    here.add(s);
    const o = s as Record<string, unknown>;
    if (o.writeOnly === true || o[SECRET_KEYWORD] === true) {
      out.add(ptr);
      return;
    }
    if (typeof o.$id === 'string' && !o.$id.startsWith('#')) b = resolveUri(o.$id, b) ?? b;
    for (const k of REF_KEYWORDS) {
      const ref = o[k];
      if (typeof ref !== 'string') continue;
      const target = resolve(ref, b);
      if (target) walk(target.schema, d, ptr, target.base, here);
    }
    for (const k of LIST_KEYWORDS) {
      const list = o[k];
      if (Array.isArray(list)) for (const x of list) walk(x, d, ptr, b, here);
    }
    for (const k of IN_PLACE_KEYWORDS) if (o[k] !== undefined) walk(o[k], d, ptr, b, here);
    for (const k of MAP_KEYWORDS) if (isObject(o[k])) for (const x of Object.values(o[k])) walk(x, d, ptr, b, here);
    if (isObject(d)) {
      const props = isObject(o.properties) ? o.properties : undefined;
      const patterns = isObject(o.patternProperties) ? Object.entries(o.patternProperties) : undefined;
      const { additionalProperties: additional, unevaluatedProperties: unevaluated } = o;
      if (!props && !patterns && additional === undefined && unevaluated === undefined) return;
      for (const key of Object.keys(d)) {
        const child = `${ptr}/${escapePointer(key)}`;
        const v = d[key];
        let matched = false;
        if (props && Object.hasOwn(props, key)) {
          walk(props[key], v, child, b, new Set());
          matched = true;
        }
        for (const [p, ps] of patterns ?? []) {
          if (!patternMatches(p, key)) continue;
          walk(ps, v, child, b, new Set());
          matched = true;
        }
        if (!matched && additional !== undefined) walk(additional, v, child, b, new Set());
        if (unevaluated !== undefined) walk(unevaluated, v, child, b, new Set());
      }
    } else if (Array.isArray(d)) {
      const prefix = Array.isArray(o.prefixItems) ? o.prefixItems : Array.isArray(o.items) ? o.items : [];
      const rest = Array.isArray(o.items) ? o.additionalItems : o.items;
      const { contains, unevaluatedItems } = o;
      if (prefix.length === 0 && rest === undefined && contains === undefined && unevaluatedItems === undefined) return;
      for (let i = 0; i < d.length; i++) {
        const child = `${ptr}/${i}`;
        const v: unknown = d[i];
        walk(i < prefix.length ? prefix[i] : rest, v, child, b, new Set());
        // every item `contains` may have matched, not only the first one ajv stopped at
        if (contains !== undefined) walk(contains, v, child, b, new Set());
        if (unevaluatedItems !== undefined) walk(unevaluatedItems, v, child, b, new Set());
      }
    }
  };
  walk(schema, data, '', base, new Set());
  return [...out].sort();
}

const REF_KEYWORDS = ['$ref', '$dynamicRef', '$recursiveRef'];
const LIST_KEYWORDS = ['allOf', 'anyOf', 'oneOf'];
const IN_PLACE_KEYWORDS = ['not', 'if', 'then', 'else'];
const MAP_KEYWORDS = ['dependentSchemas', 'dependencies'];

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Unanchored match with the linear-time engine; a pattern it cannot run is taken to match (over-marking is safe). */
function patternMatches(pattern: string, key: string): boolean {
  let re = PATTERNS.get(pattern);
  if (re === undefined) {
    try {
      re = re2().compile(pattern);
    } catch {
      re = null;
    }
    if (PATTERNS.size >= 1000) PATTERNS.clear();
    PATTERNS.set(pattern, re);
  }
  return re === null || re.matcher(key).find();
}

/** Compiled patternProperties patterns (null: RE2 cannot run it); bounded. */
const PATTERNS = new Map<string, ReturnType<typeof RE2JS.compile> | null>();

export function resolveUri(ref: string, base: string): string | undefined {
  try {
    return new URL(ref, base).href;
  } catch {
    return undefined;
  }
}
