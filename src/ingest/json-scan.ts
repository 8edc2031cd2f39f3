/**
 * One pass over raw JSON bytes, before parsing: the deepest nesting, and the byte spans of the
 * objects directly inside the top-level object's array (a batch's items), so that per-event
 * size limits hold without serialising each event again. A byte class table keeps the loop to
 * one load and one branch for the bytes that matter to neither.
 */
export type JsonShape = { depth: number; itemSpans: number[] };

const PLAIN = 0;
const QUOTE = 1;
const OPEN = 3;
const CLOSE = 4;
const CLASS = new Uint8Array(256);
CLASS[0x22] = QUOTE;
CLASS[0x7b] = OPEN;
CLASS[0x5b] = OPEN;
CLASS[0x7d] = CLOSE;
CLASS[0x5d] = CLOSE;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;

/** Returns null when nesting exceeds maxDepth; malformed JSON is left for JSON.parse to report. */
export function scanJson(buf: Uint8Array, maxDepth: number): JsonShape | null {
  const spans: number[] = [];
  let depth = 0;
  let maxSeen = 0;
  let level2IsArray = false;
  let itemStart = -1;
  const n = buf.length;
  for (let i = 0; i < n; i++) {
    const c = CLASS[buf[i]!]!;
    if (c === PLAIN) continue;
    if (c === QUOTE) {
      // Strings are most of the bytes: a loop of their own that only looks for the end.
      for (i++; i < n; i++) {
        const b = buf[i]!;
        if (b === 0x22) break;
        if (b === 0x5c) i++;
      }
    } else if (c === OPEN) {
      depth++;
      if (depth > maxSeen) {
        maxSeen = depth;
        if (depth > maxDepth) return null;
      }
      if (depth === 2) level2IsArray = buf[i] === OPEN_ARRAY;
      else if (depth === 3 && level2IsArray && buf[i] === OPEN_OBJECT) itemStart = i;
    } else if (c === CLOSE) {
      if (depth === 3 && itemStart >= 0) {
        spans.push(i + 1 - itemStart);
        itemStart = -1;
      }
      depth--;
    }
  }
  return { depth: maxSeen, itemSpans: spans };
}
