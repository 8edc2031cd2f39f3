import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { judgeEvent } from '../src/ingest/normalize.ts';
import { createProfileStage } from '../src/profiles/stage.ts';
import { encodeMeta } from '../src/store/event-meta.ts';
import type { LogRecord } from '../src/store/ports.ts';
import { openDatabase, STATE_MIGRATIONS } from '../src/store/sqlite/database.ts';
import { SqliteProfileStore } from '../src/store/sqlite/profile-store.ts';
import { tempDir } from './helpers.ts';

type Event = Record<string, unknown>;

/** Runs the real profile stage over the events in the given order; returns profiles as comparable data. */
function resolveAll(dir: string, name: string, events: Event[]) {
  const db = openDatabase({ dataDir: dir, sync: 'normal', file: `${name}.db` }, STATE_MIGRATIONS);
  try {
    const store = new SqliteProfileStore(db);
    const records: LogRecord[] = events.map((e, i) => {
      const verdict = judgeEvent(e, undefined, undefined, 1_800_000_000_000, { futureToleranceMs: 86_400_000, minTimestampMs: 0 }, 0);
      return { id: i + 1, workspaceId: 'w', sourceId: 's', receivedAt: 1_800_000_000_000, kind: 'batch', body: Buffer.from(JSON.stringify({ batch: [e] })), meta: encodeMeta([verdict]) };
    });
    const log = { readForward: (after: number, limit: number) => records.slice(after, after + limit), get: (_w: string, id: number) => records[id - 1] };
    const run = createProfileStage(log, store, () => 0);
    while (run(16) < records.length);
    const profiles = new Map<string, { ids: string[]; traits: Record<string, unknown> }>();
    for (const row of db.prepare('SELECT type, value, profile_id FROM identifiers').all() as Array<{ type: string; value: string; profile_id: string }>) {
      const p = profiles.get(row.profile_id) ?? { ids: [], traits: Object.fromEntries(Object.entries(store.traits(row.profile_id)).map(([k, v]) => [k, v.value])) };
      p.ids.push(`${row.type}:${row.value}`);
      profiles.set(row.profile_id, p);
    }
    return [...profiles.values()].map((p) => ({ ids: p.ids.sort(), traits: p.traits })).sort((a, b) => a.ids[0]!.localeCompare(b.ids[0]!));
  } finally {
    db.close();
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
