/**
 * One pass over raw JSON bytes, before parsing: the deepest nesting, and the byte spans of the
 * objects directly inside the top-level object's array (a batch's items), so that per-event
 * size limits hold without serialising each event again. Strings are skipped with indexOf.
 */
export type JsonShape = { depth: number; itemSpans: number[] };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/** Returns null when nesting exceeds maxDepth; malformed JSON is left for JSON.parse to report. */
export function scanJson(buf: Uint8Array, maxDepth: number): JsonShape | null {
  const spans: number[] = [];
  let depth = 0;
  let maxSeen = 0;
  let level2IsArray = false;
  let itemStart = -1;
  const n = buf.length;
  for (let i = 0; i < n; i++) {
    const b = buf[i]!;
    if (b === QUOTE) {
      i = closingQuote(buf, i + 1);
      if (i < 0) break;
      continue;
    }
    if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
      depth++;
      if (depth > maxSeen) {
        maxSeen = depth;
        if (depth > maxDepth) return null;
      }
      if (depth === 2) level2IsArray = b === OPEN_ARRAY;
      else if (depth === 3 && level2IsArray && b === OPEN_OBJECT) itemStart = i;
    } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
      if (depth === 3 && itemStart >= 0) {
        spans.push(i + 1 - itemStart);
        itemStart = -1;
      }
      depth--;
    }
  }
  return { depth: maxSeen, itemSpans: spans };
}

function closingQuote(buf: Uint8Array, from: number): number {
  let i = from;
  for (;;) {
    const q = buf.indexOf(QUOTE, i);
    if (q < 0) return -1;
    let slashes = 0;
    for (let j = q - 1; j >= from && buf[j] === BACKSLASH; j--) slashes++;
    if (slashes % 2 === 0) return q;
    i = q + 1;
  }
}
