// Positions in a JSON text without building its tree: the worker's answer to "where are these pointers" for a
// large JSON document that failed validation. The YAML position tree of 1 MiB of `[1,1,…]` took ~480 MiB for
// one pointer; this scan takes the text and a few integers. It gives what the tree gives (locateInTree): the
// start of the deepest node the pointer reaches, or of its key when asked.
import { parsePointer } from '../pointer.js';
import type { Position } from './parse.js';

/** `pointer`'s position in `text`, which must be JSON that parsed (no duplicate keys: the parse refuses them). */
export function locateInJson(text: string, pointer: string, key: boolean): Position | undefined {
  const segments = parsePointer(pointer);
  if (segments === undefined) return undefined;
  let i = skipWs(text, 0);
  let best = i;
  for (const [n, segment] of segments.entries()) {
    let found: number | undefined;
    let keyAt: number | undefined;
    if (text[i] === '{') {
      i = skipWs(text, i + 1);
      while (i < text.length && text[i] !== '}') {
        const end = skipString(text, i);
        const name = JSON.parse(text.slice(i, end)) as string;
        const valueAt = skipWs(text, skipWs(text, end) + 1); // past the ':'
        if (name === segment) {
          [found, keyAt] = [valueAt, i];
          break;
        }
        i = next(text, skipValue(text, valueAt));
      }
    } else if (text[i] === '[' && /^(0|[1-9]\d*)$/.test(segment)) {
      const wanted = Number(segment);
      i = skipWs(text, i + 1);
      for (let k = 0; i < text.length && text[i] !== ']'; k++) {
        if (k === wanted) {
          found = i;
          break;
        }
        i = next(text, skipValue(text, i));
      }
    }
    const start = key && n === segments.length - 1 && keyAt !== undefined ? keyAt : (found ?? keyAt);
    if (start === undefined) break;
    best = start;
    if (found === undefined) break;
    i = found;
  }
  return linePos(text, best);
}

function linePos(text: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, col: offset - lineStart + 1 };
}

function skipWs(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  return i;
}

/** Past the `,` after a member or element, if any, and the whitespace around it. */
function next(text: string, i: number): number {
  i = skipWs(text, i);
  return text[i] === ',' ? skipWs(text, i + 1) : i;
}

/** The index just past the string that starts at `i` (a `"`). */
function skipString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (text[j] === '"') return j + 1;
  }
  return text.length;
}

/** The index just past the value that starts at `i`. */
function skipValue(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return skipString(text, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') j = skipString(text, j) - 1;
      else if (d === '{' || d === '[') depth++;
      else if ((d === '}' || d === ']') && --depth === 0) return j + 1;
    }
    return text.length;
  }
  let j = i;
  while (j < text.length && !',}] \n\r\t'.includes(text[j]!)) j++;
  return j;
}
