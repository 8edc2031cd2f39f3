import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { scanJson } from './json-scan.ts';

/** Reference: depth and batch item sizes computed from the parsed value. */
function reference(value: unknown): { depth: number; items: number[] | null } {
  const depth = (v: unknown): number => (typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0);
  const arrays = typeof value === 'object' && value !== null && !Array.isArray(value) ? Object.values(value).filter(Array.isArray) : [];
  const items = arrays.length === 1 ? arrays[0]!.filter((x) => typeof x === 'object' && x !== null && !Array.isArray(x)).map((x) => Buffer.byteLength(JSON.stringify(x))) : null;
  return { depth: depth(value), items };
}

test('depth and item spans match a reference on arbitrary JSON, including strings with quotes and backslashes', () => {
  const tricky = fc.string({ unit: fc.constantFrom('"', '\\', '{', '}', '[', ']', 'a', 'é', '\u2028', '\n') });
  const leaf = fc.oneof(tricky, fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
  const json = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(tricky, tie('value'), { maxKeys: 4 })),
  })).value;
  fc.assert(
    fc.property(fc.array(fc.dictionary(tricky, json, { maxKeys: 4 }), { maxLength: 6 }), json, (items, extra) => {
      const body = { batch: items, context: { extra } };
      const text = JSON.stringify(body);
      const shape = scanJson(Buffer.from(text), 1000)!;
      const ref = reference(JSON.parse(text));
      assert.equal(shape.depth, ref.depth);
      if (ref.items && !JSON.stringify(extra).includes('[{')) assert.deepEqual(shape.itemSpans, ref.items);
    }),
    { numRuns: 500 },
  );
});

test('nesting deeper than the limit is reported without recursion', () => {
  const deep = Buffer.from('['.repeat(100_000) + ']'.repeat(100_000));
  assert.equal(scanJson(deep, 64), null);
  assert.equal(scanJson(Buffer.from('[[[]]]'), 3)?.depth, 3);
  assert.equal(scanJson(Buffer.from('[[[[]]]]'), 3), null);
  assert.equal(scanJson(Buffer.from('"[[[[[[\\"[[["'), 3)?.depth, 0, 'brackets inside strings do not count');
});
