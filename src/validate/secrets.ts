// Secrets are found from the schema's structure, not from what ajv happened to evaluate: every subschema that
// can apply to a value (through properties, items, contains, every branch of allOf/anyOf/oneOf/if/then/else,
// references) is visited, and a value under `writeOnly: true` or `x-hotconf-secret: true` is a secret. Visiting a
// branch that did not match only over-marks, which for secrets is the safe side.
import { RE2JS } from 're2js';
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
  const seen = new Map<object, Set<string>>();
  const walk = (s: unknown, d: unknown, ptr: string, b: string, depth: number): void => {
    if (typeof s !== 'object' || s === null || Array.isArray(s) || depth > 1000 || out.has(ptr)) return;
    let at = seen.get(s);
    if (!at) seen.set(s, (at = new Set()));
    if (at.has(ptr)) return;
    at.add(ptr);
    const o = s as Record<string, unknown>;
    if (o.writeOnly === true || o[SECRET_KEYWORD] === true) {
      out.add(ptr);
      return;
    }
    if (typeof o.$id === 'string' && !o.$id.startsWith('#')) b = resolveUri(o.$id, b) ?? b;
    const sub = (x: unknown) => walk(x, d, ptr, b, depth + 1);
    for (const k of ['$ref', '$dynamicRef', '$recursiveRef']) {
      const ref = o[k];
      if (typeof ref !== 'string') continue;
      const target = resolve(ref, b);
      if (target) walk(target.schema, d, ptr, target.base, depth + 1);
    }
    for (const k of ['allOf', 'anyOf', 'oneOf']) if (Array.isArray(o[k])) (o[k] as unknown[]).forEach(sub);
    for (const k of ['not', 'if', 'then', 'else']) sub(o[k]);
    for (const k of ['dependentSchemas', 'dependencies']) if (isObject(o[k])) Object.values(o[k]).forEach(sub);
    if (isObject(d)) {
      const props = isObject(o.properties) ? o.properties : {};
      const patterns = isObject(o.patternProperties) ? Object.entries(o.patternProperties) : [];
      for (const [key, v] of Object.entries(d)) {
        const child = `${ptr}/${escapePointer(key)}`;
        let matched = false;
        if (Object.hasOwn(props, key)) {
          walk(props[key], v, child, b, depth + 1);
          matched = true;
        }
        for (const [p, ps] of patterns) {
          if (!patternMatches(p, key)) continue;
          walk(ps, v, child, b, depth + 1);
          matched = true;
        }
        if (!matched) walk(o.additionalProperties, v, child, b, depth + 1);
        walk(o.unevaluatedProperties, v, child, b, depth + 1);
      }
    } else if (Array.isArray(d)) {
      const prefix = Array.isArray(o.prefixItems) ? o.prefixItems : Array.isArray(o.items) ? o.items : [];
      d.forEach((v, i) => {
        const child = `${ptr}/${i}`;
        if (i < prefix.length) walk(prefix[i], v, child, b, depth + 1);
        else if (Array.isArray(o.items)) walk(o.additionalItems, v, child, b, depth + 1);
        else walk(o.items, v, child, b, depth + 1);
        // every item `contains` may have matched, not only the first one ajv stopped at
        walk(o.contains, v, child, b, depth + 1);
        walk(o.unevaluatedItems, v, child, b, depth + 1);
      });
    }
  };
  walk(schema, data, '', base, 0);
  return [...out].sort();
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Unanchored match with the linear-time engine; a pattern it cannot run is taken to match (over-marking is safe). */
function patternMatches(pattern: string, key: string): boolean {
  let re = PATTERNS.get(pattern);
  if (re === undefined) {
    try {
      re = RE2JS.compile(pattern);
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
