import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DedupeWindow } from './dedupe-window.ts';
import { keyList } from './ports.ts';
import { encodeMeta } from './event-meta.ts';

test('a window answers as a map of ids would, through growth, releases, expiry and pruning', () => {
  const HOUR = 3_600_000;
  const window = new DedupeWindow(HOUR, 4);
  const ids = Array.from({ length: 10 }, (_, i) => `m${i}`);
  ids.forEach((id, i) => assert.equal(window.claim('w', id, i), true, id));
  assert.equal(window.size('w'), 10);
  for (const id of ids) assert.equal(window.claim('w', id, 100), false, `${id} is a duplicate in whichever map holds it`);
  assert.equal(window.claim('other', 'm1', 100), true, 'workspaces are apart');
  window.release('w', 'm4');
  assert.equal(window.claim('w', 'm4', 200), true, 'a released id is new again');
  assert.equal(window.claim('w', 'm0', HOUR + 1), true, 'an expired id is new again');
  window.prune(HOUR + 5);
  assert.equal(window.size('w'), 6, 'pruning drops the expired: m1, m2, m3, m5');
  for (const id of ['m6', 'm7', 'm8', 'm9', 'm4', 'm0']) assert.equal(window.claim('w', id, HOUR + 5), false, id);
  for (const id of ['m1', 'm2', 'm3', 'm5']) assert.equal(window.claim('w', id, HOUR + 5), true, `${id} was pruned`);
  assert.throws(() => new DedupeWindow(HOUR, 3), RangeError);
});

test('expired ids give their slots to new ones: a steady flow keeps the table from growing', () => {
  const window = new DedupeWindow(1000, 1024);
  // 100 ids a millisecond-step, 1,000 steps a window: ~100,000 held at any time, 2 million over 20 windows.
  for (let i = 0; i < 2_000_000; i++) assert.ok(window.claim('w', `id-${i}`, Math.floor(i / 100)));
  const held = window.size('w');
  assert.ok(held >= 100_000 && held < 400_000, `held ${held}: expired ids are reused or dropped as they go`);
  for (let i = 1_999_000; i < 2_000_000; i++) assert.equal(window.claim('w', `id-${i}`, 19_999), false, 'the recent ones are still held');
  assert.equal(window.claim('w', 'id-0', 19_999), true, 'the old ones are not');
});

test('past its largest table a workspace\'s ids go to new generations, each looked up; one whose ids have all expired is dropped', () => {
  const window = new DedupeWindow(1000, 16, 64);
  for (let i = 0; i < 200; i++) assert.equal(window.claim('w', `g${i}`, i), true);
  const generations = window.generations('w');
  assert.ok(generations >= 4, `${generations} generations of at most 48 ids for 200`);
  assert.equal(window.size('w'), 200);
  for (let i = 0; i < 200; i++) assert.equal(window.claim('w', `g${i}`, 500), false, `g${i} is found in whichever generation holds it`);
  window.claimEntry('w', 1150, () => encodeMeta([{ messageId: 'late', type: 'track', status: 'accepted', timestamp: 0, reasons: [], userId: 'u', anonymousId: undefined, event: 'e' }]));
  assert.ok(window.generations('w') < generations, 'the generations received by 150 are dropped');
  assert.equal(window.claim('w', 'g199', 1150), false);
  assert.equal(window.claim('w', 'g10', 1150), true);
  assert.throws(() => new DedupeWindow(1000, 16, 60), RangeError);
});

test('a day at ~200 events/s: more ids than one V8 Map could hold (2^24), each still found (~13 s, ~500 MB in 3 generations)', () => {
  const window = new DedupeWindow(86_400_000);
  for (let i = 0; i < 17_000_000; i++) window.claim('w', `id-${i}`, 0);
  assert.equal(window.size('w'), 17_000_000);
  for (let i = 0; i < 17_000_000; i += 1000) assert.equal(window.claim('w', `id-${i}`, 1), false);
});

/** The window as a Map of id → time: what DedupeWindow must answer. */
function modelWindow(windowMs: number) {
  const seen = new Map<string, number>();
  return {
    claim(id: string, at: number): boolean {
      const was = seen.get(id);
      if (was !== undefined && was > at - windowMs) return false;
      seen.set(id, at);
      return true;
    },
    release: (id: string) => void seen.delete(id),
  };
}

test('property: a window answers as a map of ids would, and one loaded from stored entries as one that claimed them as they arrived', async () => {
  const { default: fc } = await import('fast-check');
  const HOUR = 3_600_000;
  // Ids whose JSON literal has escapes too: the verdicts hold those escaped, the window the ids.
  // Many others too, so tables grow several times and ids are looked up while they move.
  const id = fc.oneof(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'a"b', 'c\\d', 'é\n'), fc.integer({ min: 0, max: 150 }).map(String));
  fc.assert(
    fc.property(fc.array(fc.record({ ids: fc.array(id, { minLength: 1, maxLength: 3 }), gap: fc.integer({ min: 0, max: HOUR }) }), { maxLength: 40 }), fc.boolean(), fc.array(fc.record({ id, at: fc.integer({ min: 0, max: 3 * HOUR }) }), { maxLength: 10 }), fc.subarray(['a', 'b', 'c', 'a"b', 'c\\d']), fc.constantFrom(4, 8, 64), (entries, prune, queries, released, maxSlots) => {
      // What the log writer would have stored: each entry's ids, duplicates marked, in arrival order.
      // Tables of 4 slots (3 ids) growing to `maxSlots`: a full table's ids move to a bigger
      // one over the next claims, generations come and go within a few entries.
      const live = new DedupeWindow(HOUR, 4, maxSlots);
      const loaded = new DedupeWindow(HOUR, 4, maxSlots);
      const model = modelWindow(HOUR);
      let at = 0;
      for (const e of entries) {
        at += e.gap;
        const meta = encodeMeta(e.ids.map((messageId) => ({ messageId, type: 'track', status: 'accepted', timestamp: at, reasons: [], userId: 'u', anonymousId: undefined, event: undefined })));
        const claimed = live.claimEntry('w', at, () => meta, keyList(e.ids));
        assert.deepEqual(claimed.duplicates, e.ids.flatMap((id, i) => (model.claim(id, at) ? [] : [i])));
        loaded.replay('w', at, claimed.marked ?? meta);
      }
      if (prune) for (const w of [live, loaded]) w.prune(at);
      // In time order, as the writer claims (its times only go back with the clock).
      let now = at;
      for (const q of [...queries].sort((x, y) => x.at - y.at)) {
        now = at + q.at;
        const expected = model.claim(q.id, now);
        assert.equal(live.claim('w', q.id, at + q.at), expected, `${q.id} at +${q.at}`);
        assert.equal(loaded.claim('w', q.id, at + q.at), expected, `${q.id} at +${q.at}, loaded`);
      }
      for (const r of released) {
        for (const w of [live, loaded]) w.release('w', r);
        model.release(r);
        const expected = model.claim(r, now);
        assert.equal(live.claim('w', r, now), expected, `${r} after a release`);
        assert.equal(loaded.claim('w', r, now), expected, `${r} after a release, loaded`);
      }
    }),
    { numRuns: 500 },
  );
});
