import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DedupeWindow } from './dedupe-window.ts';
import { keyList } from './ports.ts';

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

test('a day at ~200 events/s: more ids than one V8 Map could hold (2^24), each still found (~10 s, ~700 MB)', () => {
  const window = new DedupeWindow(86_400_000);
  for (let i = 0; i < 17_000_000; i++) window.claim('w', `id-${i}`, 0);
  assert.equal(window.size('w'), 17_000_000);
  for (let i = 0; i < 17_000_000; i += 1000) assert.equal(window.claim('w', `id-${i}`, 1), false);
});

test('property: a window loaded from stored entries answers as one that claimed them as they arrived', async () => {
  const { default: fc } = await import('fast-check');
  const { encodeMeta } = await import('./event-meta.ts');
  const HOUR = 3_600_000;
  // Ids whose JSON literal has escapes too: the verdicts hold those escaped, the window the ids.
  const id = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'a"b', 'c\\d', 'é\n');
  fc.assert(
    fc.property(fc.array(fc.record({ ids: fc.array(id, { minLength: 1, maxLength: 3 }), gap: fc.integer({ min: 0, max: HOUR }) }), { maxLength: 20 }), fc.boolean(), fc.array(fc.record({ id, at: fc.integer({ min: 0, max: 3 * HOUR }) }), { maxLength: 10 }), fc.subarray(['a', 'b', 'c', 'a"b', 'c\\d']), (entries, prune, queries, released) => {
      // What the log writer would have stored: each entry's ids, duplicates marked, in arrival order.
      const live = new DedupeWindow(HOUR, 4);
      const loaded = new DedupeWindow(HOUR, 4);
      let at = 0;
      for (const e of entries) {
        at += e.gap;
        const meta = encodeMeta(e.ids.map((messageId) => ({ messageId, type: 'track', status: 'accepted', timestamp: at, reasons: [], userId: 'u', anonymousId: undefined, event: undefined })));
        const stored = live.claimEntry('w', at, meta, keyList(e.ids)).meta;
        loaded.replay('w', at, stored);
      }
      // The writer prunes once a minute: right after the load, it has not yet.
      if (prune) for (const w of [live, loaded]) w.prune(at);
      for (const q of queries) assert.equal(loaded.claim('w', q.id, at + q.at), live.claim('w', q.id, at + q.at), `${q.id} at +${q.at}`);
      for (const r of released) {
        live.release('w', r);
        loaded.release('w', r);
        assert.equal(loaded.claim('w', r, at), live.claim('w', r, at), `${r} after a release`);
      }
    }),
    { numRuns: 500 },
  );
});
