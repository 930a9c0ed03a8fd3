// JSON pointers (RFC 6901), once: errors name the offending value by pointer, the parser maps a pointer back to
// a line and column, and secrets are found and redacted by pointer.

/** Escapes one pointer segment: `~` → `~0`, `/` → `~1`. */
export function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The segments of a pointer (`''` is the whole document: no segments); undefined when it is not a pointer. */
export function parsePointer(pointer: string): string[] | undefined {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) return undefined;
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The value at `pointer` in a plain JSON value, or undefined. Own properties only. */
export function valueAt(value: unknown, pointer: string): unknown {
  let node = value;
  for (const key of parsePointer(pointer) ?? []) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}
