import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DUPLICATE, eachMessageId, encodeMeta, markDuplicates, type EventMeta, type MetaTuple } from './event-meta.ts';

/** What eachMessageId must visit: every tuple parsed. */
const reference = (meta: string) => (JSON.parse(meta) as MetaTuple[]).map((t) => [t[0], t[2] === DUPLICATE]);
/** The ids eachMessageId visits, and whether each came from the walk over `meta` itself (not its fallback). */
function visited(meta: string): { ids: Array<[string, boolean]>; walked: boolean } {
  const ids: Array<[string, boolean]> = [];
  let walked = true;
  eachMessageId(meta, (text, from, to, duplicate) => {
    if (text !== meta) walked = false;
    ids.push([JSON.parse(`"${text.slice(from, to)}"`) as string, duplicate]);
  });
  return { ids, walked };
}

// Any text where a user can put it (ids, names, reasons): quotes, backslashes, brackets, lone surrogates.
const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom('"', '\\', '"]', '],["', '\\"', '[', ']', ''), fc.string({ unit: fc.constantFrom('"', '\\', '[', ']', ',', 'a'), maxLength: 8 }));
const optional = fc.option(text, { nil: undefined });
const meta: fc.Arbitrary<EventMeta> = fc.record({
  messageId: text,
  type: fc.constantFrom('track', 'identify', 'page'),
  status: fc.constantFrom('accepted', 'flagged', 'quarantined', 'duplicate') as fc.Arbitrary<EventMeta['status']>,
  timestamp: fc.integer({ min: -1e15, max: 1e15 }),
  reasons: fc.array(text, { maxLength: 3 }),
  userId: optional,
  anonymousId: optional,
  event: optional,
});

test('property: the messageIds read from stored verdicts are those JSON.parse finds, whatever the strings hold', () => {
  fc.assert(
    fc.property(fc.array(meta, { maxLength: 6 }), fc.array(fc.nat(5)), (events, marked) => {
      let stored = encodeMeta(events);
      const indexes = [...new Set(marked.filter((i) => i < events.length))];
      if (indexes.length > 0) stored = markDuplicates(stored, indexes);
      const { ids, walked } = visited(stored);
      assert.deepEqual(ids, reference(stored));
      assert.ok(walked, 'the walk itself, not its fallback, reads what the log writer stored');
    }),
    { numRuns: 2000 },
  );
});

test('verdicts in a shape it does not expect are read by JSON.parse', () => {
  assert.deepEqual(visited('[["a","track","a",1,0,0,0,0],["b","track","d",1,0,0,0,0]]'), { ids: [['a', false], ['b', true]], walked: true });
  assert.deepEqual(visited('[ ["a", "track", "a", 1] ]'), { ids: [['a', false]], walked: false });
  assert.deepEqual(visited('[["a","track","acc",1],["b\\"","track","a",1]]'), { ids: [['a', false], ['b"', false]], walked: false });
  assert.deepEqual(visited('[]'), { ids: [], walked: true });
});
