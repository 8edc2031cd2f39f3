import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DedupeWindow } from './dedupe-window.ts';

test('a window larger than one map spreads over several, and answers as one map would', () => {
  const HOUR = 3_600_000;
  const window = new DedupeWindow(HOUR, 3);
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
});

test('a day at ~200 events/s: more ids than one V8 Map can hold (2^24), no RangeError (~20 s, ~2 GB)', () => {
  const window = new DedupeWindow(86_400_000);
  for (let i = 0; i < 17_000_000; i++) window.claim('w', `id-${i}`, 0);
  assert.equal(window.size('w'), 17_000_000);
});
