import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { tempDir } from './helpers.ts';
import { stageHarness } from './stage-harness.ts';

type Event = Record<string, unknown>;

/** Runs the real profile stage over the events in the given order; returns profiles as comparable data. */
function resolveAll(dir: string, name: string, events: Event[]) {
  const h = stageHarness(dir, name);
  try {
    h.send(...events);
    const profiles = new Map<string, { ids: string[]; traits: Record<string, unknown> }>();
    for (const profileId of new Set(events.flatMap((e) => ['userId', 'anonymousId'].map((f) => (e[f] ? h.profile(f === 'userId' ? 'user_id' : 'anonymous_id', String(e[f])) : undefined))).filter((p): p is string => p !== undefined))) {
      profiles.set(profileId, {
        ids: h.store.identifiers(profileId).map((i) => `${i.type}:${i.value}`).sort(),
        traits: Object.fromEntries(Object.entries(h.store.traits(profileId)).map(([k, v]) => [k, v.value])),
      });
    }
    return [...profiles.values()].sort((a, b) => a.ids[0]!.localeCompare(b.ids[0]!));
  } finally {
    h.close();
  }
}

test('property: for events that hit no limit, any delivery order gives the same profiles and the same traits', (t) => {
  const dir = tempDir(t);
  let run = 0;
  const person = fc.integer({ min: 0, max: 4 });
  const event = fc
    .record({ p: person, device: fc.integer({ min: 0, max: 2 }), kind: fc.constantFrom('identify', 'page', 'track', 'email'), plan: fc.constantFrom('free', 'pro', 'team'), minute: fc.integer({ min: 0, max: 30 }), n: fc.integer() })
    .map(({ p, device, kind, plan, minute, n }): Event => {
      const base = { messageId: `m-${n}-${p}-${device}-${kind}-${minute}-${plan}`, timestamp: new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString() };
      if (kind === 'identify') return { ...base, type: 'identify', userId: `u${p}`, anonymousId: `d${p}-${device}`, traits: { plan } };
      if (kind === 'email') return { ...base, type: 'identify', userId: `u${p}`, traits: { email: `P${p}@Example.com`, plan } };
      if (kind === 'track') return { ...base, type: 'track', event: 'Clicked', anonymousId: `d${p}-${device}`, context: { traits: { seen: minute } } };
      return { ...base, type: 'page', anonymousId: `d${p}-${device}` };
    });
  fc.assert(
    fc.property(fc.uniqueArray(event, { maxLength: 25, selector: (e) => e.messageId }).chain((events) => fc.tuple(fc.constant(events), fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }))), ([events, shuffled]) => {
      run++;
      assert.deepEqual(resolveAll(dir, `a${run}`, shuffled), resolveAll(dir, `b${run}`, events));
    }),
    { numRuns: 60 },
  );
});
