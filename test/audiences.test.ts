import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashToken } from '../src/access/credentials.ts';
import { ADMIN_TOKEN, basic, bearer, mid, openTestApp, tempDir } from './helpers.ts';
import fc from 'fast-check';
import { stageHarness } from './stage-harness.ts';
import type { AudienceNode } from '../src/audiences/definition.ts';

const DAY = 86_400_000;
const T0 = Date.parse('2026-06-01T00:00:00Z');
const order = (userId: string, at: number, total: number) => ({ type: 'track', event: 'Order Completed', userId, messageId: mid('o'), timestamp: new Date(at).toISOString(), properties: { total } });
const identify = (userId: string, traits: Record<string, unknown>) => ({ type: 'identify', userId, traits, messageId: mid('i'), timestamp: new Date(T0 - 60 * DAY).toISOString() });

const CHURNED = { key: 'churned', name: 'Churned', definition: { trait: 'churned', op: '=', value: true } };
const VIP = {
  key: 'vip_buyers',
  name: 'Pro plan, 2+ big orders in 30 days, not churned',
  definition: { and: [{ trait: 'plan', op: '=', value: 'pro' }, { event: 'Order Completed', where: [{ property: 'total', op: '>', value: 50 }], withinDays: 30, count: { op: '>=', value: 2 } }, { not: { audience: 'churned' } }] },
};
const EVENTS = [identify('ann', { plan: 'pro' }), order('ann', T0 - 20 * DAY, 80), order('ann', T0 - 2 * DAY, 99), order('ann', T0 - 1 * DAY, 10), identify('bob', { plan: 'pro' }), order('bob', T0 - 3 * DAY, 70), identify('cy', { plan: 'free' }), order('cy', T0 - 3 * DAY, 70), order('cy', T0 - 2 * DAY, 70)];

describe('audience membership', () => {
  test('membership follows events, other audiences and time; entries and exits are recorded', (t) => {
    const clock = { now: T0 };
    const h = stageHarness(tempDir(t), 'members', clock);
    t.after(() => h.close());
    h.admin('audience', { audience: CHURNED });
    h.admin('audience', { audience: VIP });
    h.send(...EVENTS);
    assert.deepEqual(h.audiences('user_id', 'ann'), ['vip_buyers']);
    assert.deepEqual(h.audiences('user_id', 'bob'), [], 'one big order only');
    assert.deepEqual(h.audiences('user_id', 'cy'), [], 'not on the pro plan');
    h.send(order('bob', T0, 51));
    assert.deepEqual(h.audiences('user_id', 'bob'), ['vip_buyers']);
    h.send(identify('bob', { churned: true }));
    assert.deepEqual(h.audiences('user_id', 'bob'), ['churned'], 'joining churned makes bob leave vip_buyers');
    clock.now = T0 + 11 * DAY;
    h.expire();
    assert.deepEqual(h.audiences('user_id', 'ann'), [], 'the order of 20 days ago lapsed without a new event');
    const history = h.store.audienceHistory('w', 'vip_buyers', 10).map((x) => x.change).reverse();
    assert.deepEqual(history, ['enter', 'enter', 'exit', 'exit']);
  });

  test('backfill equals incremental evaluation', (t) => {
    const before = stageHarness(tempDir(t), 'incremental', { now: T0 });
    const after = stageHarness(tempDir(t), 'backfill', { now: T0 });
    t.after(() => (before.close(), after.close()));
    before.admin('audience', { audience: CHURNED });
    before.admin('audience', { audience: VIP });
    before.send(...EVENTS);
    after.send(...EVENTS);
    after.admin('audience', { audience: CHURNED });
    after.admin('audience', { audience: VIP });
    for (const user of ['ann', 'bob', 'cy']) assert.deepEqual(after.audiences('user_id', user), before.audiences('user_id', user), user);
  });
});

const USERS = ['u1', 'u2', 'u3', 'u4'];
const at = (days: number) => new Date(T0 - days * DAY).toISOString();
const event = fc.oneof(
  fc.record({ u: fc.constantFrom(...USERS), plan: fc.constantFrom('pro', 'free'), days: fc.nat(60) }).map(({ u, plan, days }) => ({ type: 'identify', userId: u, traits: { plan }, timestamp: at(days) })),
  fc.record({ u: fc.constantFrom(...USERS), total: fc.integer({ min: 1, max: 120 }), days: fc.nat(60) }).map(({ u, total, days }) => ({ type: 'track', event: 'Order Completed', userId: u, properties: { total }, timestamp: at(days) })),
  fc.record({ u: fc.constantFrom(...USERS), ok: fc.boolean(), days: fc.nat(60) }).map(({ u, ok, days }) => ({ type: 'track', event: 'Consent Updated', userId: u, context: { consent: { categoryPreferences: { Advertising: ok } } }, timestamp: at(days) })),
  fc.record({ u: fc.constantFrom(...USERS), g: fc.constantFrom('g1', 'g2'), tier: fc.constantFrom('gold', 'silver'), days: fc.nat(60) }).map(({ u, g, tier, days }) => ({ type: 'group', userId: u, groupId: g, traits: { tier }, timestamp: at(days) })),
  // An anonymous visitor who later identifies: profiles merge.
  fc.record({ u: fc.constantFrom(...USERS), a: fc.constantFrom('a1', 'a2') }).map(({ u, a }) => ({ type: 'track', event: 'Order Completed', anonymousId: a, properties: { total: 99 }, timestamp: at(1), ...(u === 'u1' ? { userId: u } : {}) })),
);
const condition: fc.Arbitrary<AudienceNode> = fc.oneof(
  fc.record({ trait: fc.constant('plan'), op: fc.constant('='), value: fc.constantFrom('pro', 'free') }) as fc.Arbitrary<AudienceNode>,
  fc.record({ event: fc.constant('Order Completed'), withinDays: fc.constantFrom(7, 30, 90), count: fc.record({ op: fc.constantFrom('>=', '<'), value: fc.integer({ min: 1, max: 3 }) }), where: fc.constantFrom([{ property: 'total', op: '>', value: 50 }], []) }, { requiredKeys: ['event'] }) as fc.Arbitrary<AudienceNode>,
  fc.constant({ consent: 'Advertising' } as AudienceNode),
  fc.record({ account: fc.constant('tier'), op: fc.constant('='), value: fc.constantFrom('gold', 'silver') }) as fc.Arbitrary<AudienceNode>,
);
const definition = fc.oneof(condition, fc.record({ and: fc.array(condition, { minLength: 2, maxLength: 3 }) }), fc.record({ or: fc.array(fc.oneof(condition, condition.map((c) => ({ not: c }))), { minLength: 2, maxLength: 3 }) })) as fc.Arbitrary<AudienceNode>;

test('property: a backfill, with events arriving while it runs, ends where incremental evaluation does', (t) => {
  const dir = tempDir(t);
  let run = 0;
  fc.assert(
    fc.property(fc.array(event, { minLength: 1, maxLength: 25 }), definition, definition, fc.nat(25), (events, first, second, split) => {
      const withIds = events.map((e, i) => ({ ...e, messageId: `m${i}` }));
      const audiences = [
        { key: 'first', name: 'first', definition: first },
        { key: 'second', name: 'second', definition: { or: [second, { audience: 'first' }] } as AudienceNode },
      ];
      run++;
      const incremental = stageHarness(dir, `inc${run}`, { now: T0 });
      const backfilled = stageHarness(dir, `bf${run}`, { now: T0 }, { backfillRecords: 1, backfillProfiles: 1 });
      try {
        for (const audience of audiences) incremental.admin('audience', { audience });
        incremental.send(...withIds);
        const cut = Math.min(split, withIds.length);
        backfilled.send(...withIds.slice(0, cut));
        for (const audience of audiences) backfilled.admin('audience', { audience }, { background: true });
        // The rest arrives one event per backfill step, while the audiences are being built.
        for (const e of withIds.slice(cut)) {
          backfilled.send(e);
          backfilled.backfillStep();
        }
        while (backfilled.backfillStep());
        for (const u of USERS) assert.deepEqual(backfilled.audiences('user_id', u), incremental.audiences('user_id', u), u);
      } finally {
        incremental.close();
        backfilled.close();
      }
    }),
    { numRuns: 60 },
  );
});

test('stores whose profile events predate their names and properties backfill from the log, with the same result', (t) => {
  const legacy = stageHarness(tempDir(t), 'legacy', { now: T0 }, { backfillRecords: 2 });
  const current = stageHarness(tempDir(t), 'current', { now: T0 }, { backfillRecords: 2 });
  t.after(() => (legacy.close(), current.close()));
  for (const h of [legacy, current]) {
    h.send(...EVENTS);
    h.admin('audience', { audience: CHURNED });
  }
  // As a store migrated from before: the events are there, their names and properties are not.
  legacy.db.exec("UPDATE profile_events SET type = NULL, name = NULL, properties = NULL");
  for (const h of [legacy, current]) h.admin('audience', { audience: VIP }, { background: true });
  assert.equal(legacy.store.backfill('w', VIP.key)!.eventCursor, null, 'reads the log');
  assert.notEqual(current.store.backfill('w', VIP.key)!.eventCursor, null, 'reads profile events');
  for (const h of [legacy, current]) while (h.backfillStep());
  for (const user of ['ann', 'bob', 'cy']) assert.deepEqual(legacy.audiences('user_id', user), current.audiences('user_id', user), user);
  assert.deepEqual(current.audiences('user_id', 'ann'), ['vip_buyers']);
});

test('a backfill runs in steps and shows its progress; redefining restarts it', (t) => {
  const h = stageHarness(tempDir(t), 'progress', { now: T0 }, { backfillRecords: 2, backfillProfiles: 1 });
  t.after(() => h.close());
  h.send(...EVENTS);
  h.admin('audience', { audience: CHURNED });
  h.admin('audience', { audience: VIP }, { background: true });
  const first = h.store.backfill('w', VIP.key)!;
  assert.equal(first.phase, 'events', 'the order condition is new: the log is scanned first');
  assert.equal(first.logAfter, 0);
  const seen = new Set<string>();
  while (h.backfillStep()) {
    const b = h.store.backfill('w', VIP.key)!;
    seen.add(b.phase);
    if (b.phase === 'events') assert.equal(h.audiences('user_id', 'ann')!.includes(VIP.key), false, 'not evaluated live while its event counts are incomplete');
  }
  assert.deepEqual([...seen].sort(), ['events', 'profiles']);
  const done = h.store.backfill('w', VIP.key)!;
  assert.equal(done.phase, 'done');
  assert.equal(done.profilesDone, 3);
  assert.equal(done.entered, 1);
  assert.deepEqual(h.audiences('user_id', 'ann'), ['vip_buyers']);
  const cause = h.store.audienceHistory('w', VIP.key, 1)[0]!.eventId;
  assert.equal(cause, done.cause, 'entries are caused by the definition');
  h.admin('audience', { audience: { ...VIP, definition: { trait: 'plan', op: '=', value: 'free' } } });
  assert.deepEqual(h.audiences('user_id', 'ann'), []);
  assert.deepEqual(h.audiences('user_id', 'cy'), ['vip_buyers']);
  assert.equal(h.store.computedTraits('w').length, 0, 'the hidden event trait nobody reads any more is gone');
});

test('conditions relative to now are re-evaluated as time passes, without a new event', (t) => {
  const clock = { now: T0 };
  const h = stageHarness(tempDir(t), 'relative', clock);
  t.after(() => h.close());
  h.admin('audience', { audience: { key: 'recent', name: 'Seen in the last 7 days', definition: { trait: 'last_seen', op: 'within_days', value: 7 } } });
  h.send(identify('fay', { last_seen: new Date(T0 - DAY).toISOString() }));
  assert.deepEqual(h.audiences('user_id', 'fay'), ['recent']);
  clock.now = T0 + 7 * DAY;
  h.expire();
  assert.deepEqual(h.audiences('user_id', 'fay'), []);
});

test('preview equals the saved result, and leaves nothing behind', (t) => {
  const h = stageHarness(tempDir(t), 'preview', { now: T0 });
  t.after(() => h.close());
  h.send(...EVENTS);
  h.admin('audience', { audience: CHURNED });
  const definitions = [VIP.definition, { trait: 'plan', op: '=', value: 'pro' }, { or: [{ event: 'Order Completed', count: { op: '>=', value: 3 } }, { trait: 'plan', op: '=', value: 'free' }] }];
  definitions.forEach((definition, i) => {
    const audience = { key: `a${i}`, name: `a${i}`, definition };
    h.admin('audience_preview', { audience, previewId: `p${i}`, sample: 100 });
    const preview = h.store.preview('w', `p${i}`) as { size: number; sample: Array<{ profile_id: string }> };
    assert.equal(h.store.audiences('w').some((a) => a.key === audience.key), false, 'nothing saved');
    h.admin('audience', { audience });
    const saved = h.store.audienceMembers('w', audience.key);
    assert.equal(preview.size, saved.length);
    assert.deepEqual(preview.sample.map((s) => s.profile_id).sort(), saved.sort());
  });
});

test('property: previews and sweeps read from the columns kept in memory what they would read from the database, as profiles change, merge and lapse', (t) => {
  const dir = tempDir(t);
  let run = 0;
  const more = fc.oneof(
    event,
    // An anonymous visitor, a known customer, then one event naming both: the profiles merge.
    fc.record({ u: fc.constantFrom(...USERS), a: fc.constantFrom('a3', 'a4') }).map(({ u, a }) => [
      { type: 'identify', anonymousId: a, traits: { plan: 'pro' }, timestamp: at(0) },
      { type: 'track', event: 'Order Completed', anonymousId: a, properties: { total: 60 }, context: { consent: { categoryPreferences: { Advertising: true } } }, timestamp: at(2) },
      { type: 'identify', userId: u, traits: { plan: 'free' }, timestamp: at(3) },
      { type: 'page', name: 'Home', anonymousId: a, userId: u, timestamp: at(1) },
    ]),
    // A group call without traits only links the profile to the account.
    fc.record({ u: fc.constantFrom(...USERS), g: fc.constantFrom('g1', 'g2') }).map(({ u, g }) => ({ type: 'group', userId: u, groupId: g, timestamp: at(1) })),
  );
  const step = fc.oneof(
    // Events, and sometimes the idle stage right after (it reads again what they changed).
    fc.record({ events: fc.array(more, { minLength: 1, maxLength: 3 }), idle: fc.nat(3) }).map(({ events, idle }) => ({ events: events.flat(), idle })),
    definition.map((preview) => ({ preview })),
    fc.record({ days: fc.integer({ min: 1, max: 40 }) }).map(({ days }) => ({ days })),
    // The computed trait `orders` (re)defined: every profile's value changes at once.
    fc.record({ over: fc.constantFrom(0, 50, 100), windowDays: fc.constantFrom(7, 90) }).map(({ over, windowDays }) => ({ trait: { key: 'orders', kind: 'count', event: 'Order Completed', filters: [{ property: 'total', op: '>', value: over }], windowDays } })),
    fc.constant({ deleteTrait: 'orders' }),
    // The idle stage loads what audiences read, a slice at a time (of 2 profiles here, so that
    // changes arrive between slices): time sweeps read those columns once loaded.
    fc.integer({ min: 1, max: 4 }).map((slices) => ({ warm: slices })),
    // An administrator's merge and split.
    fc.record({ from: fc.constantFrom(...USERS), into: fc.constantFrom(...USERS) }).map(({ from, into }) => ({ admin: 'merge', payload: { from: `user_id:${from}`, into: `user_id:${into}` } })),
    fc.constantFrom('a3', 'a4').map((a) => ({ admin: 'split', payload: { profile: `anonymous_id:${a}`, identifier: `anonymous_id:${a}` } })),
  );
  fc.assert(
    fc.property(fc.array(more, { minLength: 2, maxLength: 6 }), fc.array(definition, { minLength: 1, maxLength: 3 }), fc.nat(8), fc.array(step, { minLength: 1, maxLength: 16 }), (first, definitions, warmFirst, steps) => {
      run++;
      const clocks = [{ now: T0 }, { now: T0 }];
      const kept = stageHarness(dir, `cols${run}`, clocks[0], {}, { columns: { slice: 2 } });
      const read = stageHarness(dir, `sql${run}`, clocks[1], {}, { columns: false });
      // Saved audiences: the idle stage loads the columns they read, and previews of them read
      // those; one more reads the first's membership, the computed trait `orders` and an account trait.
      const saved = [...definitions, { or: [{ audience: 's0' }, { trait: 'orders', op: '>=', value: 2 }, { account: 'tier', op: '=', value: 'gold' }] }].map((definition, i) => ({ key: `s${i}`, name: `s${i}`, definition }));
      const same = (definition: unknown) => assert.deepEqual(kept.preview(definition), read.preview(definition), JSON.stringify(definition));
      try {
        let n = 0;
        const send = (events: Array<Record<string, unknown>>) => {
          const numbered = events.map((e) => ({ ...e, messageId: `m${n++}` }));
          for (const h of [kept, read]) h.send(...numbered);
        };
        // Profiles first, so that listing them takes slices and profiles are created meanwhile.
        send(first.flat());
        for (const h of [kept, read]) for (const audience of saved) h.admin('audience', { audience });
        kept.warm(warmFirst);
        for (const s of steps) {
          if ('events' in s) {
            send(s.events);
            kept.warm(s.idle);
          }
          else if ('preview' in s) same(s.preview);
          else if ('trait' in s) for (const h of [kept, read]) h.admin('computed_trait', { trait: s.trait });
          else if ('deleteTrait' in s) for (const h of [kept, read]) h.admin('computed_trait_delete', { key: s.deleteTrait });
          else if ('warm' in s) {
            kept.warm(s.warm);
            assert.equal(read.warm(), 0, 'a store that keeps no columns has none to load');
          }
          else if ('admin' in s) for (const h of [kept, read]) h.admin(s.admin, s.payload);
          else {
            for (const c of clocks) c.now += s.days * DAY;
            kept.expire();
            read.expire();
          }
          for (const audience of saved) same(audience.definition);
          same({ not: { audience: saved[0]!.key } });
          same({ trait: 'orders', op: '>=', value: 1 });
          for (const u of USERS) assert.deepEqual(kept.audiences('user_id', u), read.audiences('user_id', u), u);
        }
      } finally {
        kept.close();
        read.close();
      }
    }),
    { numRuns: 150 },
  );
});

test('the idle stage loads the columns its audiences read, once, and again after a change drops one', (t) => {
  const h = stageHarness(tempDir(t), 'warm', { now: T0 });
  t.after(() => h.close());
  h.send(...EVENTS);
  h.admin('audience', { audience: CHURNED });
  h.admin('audience', { audience: VIP });
  const needs = { keys: ['plan'], audiences: ['churned'], consents: [], accounts: [] };
  assert.equal(h.store.columnsLoaded('w', needs), false);
  assert.equal(h.warm(), 5, 'the traits churned and plan, the event count, the memberships of churned and vip_buyers');
  assert.equal(h.store.columnsLoaded('w', needs), true);
  assert.equal(h.warm(), 0);
  h.admin('computed_trait', { trait: { key: 'plan', kind: 'last', event: 'Plan Changed', property: 'plan' } });
  assert.equal(h.store.columnsLoaded('w', needs), false, 'every profile\'s plan may have changed');
  assert.equal(h.warm(), 1);
  // A preview of what no audience reads is answered from rows; its columns are loaded next time the stage idles.
  const country = { keys: ['country'], audiences: [], consents: [], accounts: [] };
  assert.deepEqual(h.preview({ trait: 'country', op: 'exists' }), { size: 0, sample: [] });
  assert.equal(h.store.columnsLoaded('w', country), false);
  assert.equal(h.warm(), 1);
  assert.equal(h.store.columnsLoaded('w', country), true);
});

test('profiles created while the columns are listed and loaded, a slice at a time, are in them', (t) => {
  const h = stageHarness(tempDir(t), 'slices', { now: T0 }, {}, { columns: { slice: 1 } });
  t.after(() => h.close());
  const pros = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => identify(`${prefix}${i}`, { plan: 'pro' }));
  h.send(...pros('a', 3));
  const definition = { trait: 'plan', op: '=', value: 'pro' };
  h.admin('audience', { audience: { key: 'pros', name: 'pros', definition } });
  // One slice of the list (the lowest id), then new profiles: most have lower ids than that one.
  assert.equal(h.warm(1), 1);
  h.send(...pros('b', 20));
  assert.equal(h.warm(4), 4);
  h.send(...pros('c', 20));
  h.warm();
  assert.equal(h.store.columnsLoaded('w', { keys: ['plan'], audiences: ['pros'], consents: [], accounts: [] }), true);
  assert.equal(h.preview(definition).size, 43);
  assert.equal(h.preview({ audience: 'pros' }).size, 43);
});

test('a workspace with more live profiles than TANDEM_COLUMNS_MAX_PROFILES keeps no columns; its previews read rows', (t) => {
  const h = stageHarness(tempDir(t), 'big', { now: T0 }, {}, { columns: { maxProfiles: 2 } });
  t.after(() => h.close());
  h.send(...EVENTS);
  const definition = { trait: 'plan', op: '=', value: 'pro' };
  h.admin('audience', { audience: { key: 'pros', name: 'pros', definition } });
  assert.equal(h.warm(), 1, 'listed once, found too big');
  assert.equal(h.warm(), 0);
  assert.equal(h.store.columnsLoaded('w', { keys: ['plan'], audiences: [], consents: [], accounts: [] }), false);
  assert.equal(h.preview(definition).size, 2);
});

async function waitForBackfill(app: Awaited<ReturnType<typeof openTestApp>>, token: string | undefined, key: string) {
  for (let i = 0; i < 1000; i++) {
    const audience = (await app.inject({ method: 'GET', url: `/api/v1/audiences/${key}`, headers: { authorization: bearer(token) } })).json();
    if (audience.backfill?.status === 'done') return audience;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the backfill of ${key} did not finish`);
}

describe('audiences through the APIs', () => {
  test('the server keeps the columns its audiences read in memory (shown in /metrics), unless TANDEM_COLUMNS_MAX_PROFILES is 0', async (t) => {
    const kept = async (app: Awaited<ReturnType<typeof openTestApp>>) => Number(/^tandem_profile_columns_kept (\d+)$/m.exec((await app.inject({ method: 'GET', url: '/metrics' })).body)?.[1]);
    for (const [env, want] of [[{}, 2], [{ TANDEM_COLUMNS_MAX_PROFILES: '0' }, 0]] as const) {
      const app = await openTestApp(t, { env });
      await app.send('/v1/batch', { batch: [identify('fay', { plan: 'pro' })] });
      assert.equal((await app.inject({ method: 'POST', url: '/api/v1/audiences', headers: { authorization: bearer() }, payload: { key: 'pros', text: 'traits.plan = "pro"' } })).statusCode, 201);
      // The idle stage loads the trait and the membership; a store with none stays at 0.
      for (let i = 0; i < 200 && (await kept(app)) < want; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await kept(app), want, JSON.stringify(env));
    }
  });

  test('marketers create them, the Profile API shows memberships, and bad definitions are refused', async (t) => {
    const app = await openTestApp(t);
    app.stores.access.createToken('default', 'api', 'access', hashToken('tdm_access_aud_00000000001'));
    const marketer = (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: 'm', role: 'marketer' } })).json().token;
    const post = (payload: unknown) => app.inject({ method: 'POST', url: '/api/v1/audiences', headers: { authorization: bearer(marketer) }, payload: payload as Record<string, unknown> });
    await app.send('/v1/batch', { batch: [identify('dee', { plan: 'pro' }), { ...order('dee', Date.now() - DAY, 60) }, { ...order('dee', Date.now() - 2 * DAY, 90) }] });
    assert.equal((await post(CHURNED)).statusCode, 201);
    await app.send('/v1/batch', { batch: [identify('eli', { plan: 'pro' }), order('eli', Date.now() - DAY, 20)] });
    const preview = await app.inject({ method: 'POST', url: '/api/v1/audiences/preview', headers: { authorization: bearer(marketer) }, payload: { key: VIP.key, definition: VIP.definition } });
    assert.equal(preview.statusCode, 200, preview.body);
    assert.equal(preview.json().size, 1);
    assert.deepEqual(preview.json().sample[0].identifiers, [{ type: 'user_id', value: 'dee' }]);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/audiences/vip_buyers', headers: { authorization: bearer(marketer) } })).statusCode, 404, 'a preview saves nothing');
    const created = await post({ key: VIP.key, name: VIP.name, text: 'traits.plan = "pro" and performed "Order Completed" at least 2 times in last 30 days where total > 50 and not in audience "churned"' });
    assert.equal(created.statusCode, 201, created.body);
    assert.deepEqual(created.json().definition, VIP.definition, 'the text form means the same tree');
    assert.equal(created.json().text, 'traits.plan = "pro" and performed "Order Completed" at least 2 times in last 30 days where total > 50 and not in audience "churned"');
    assert.ok(['running', 'done'].includes(created.json().backfill.status), 'built in the background');
    const built = await waitForBackfill(app, marketer, VIP.key);
    assert.equal(built.backfill.status, 'done');
    assert.equal(built.backfill.progress, 1);
    assert.equal(built.backfill.profiles.evaluated, 2);
    assert.equal(built.size, preview.json().size, 'backfilled over existing profiles, as the preview said');
    const typo = await post({ key: 'typo', text: 'traits.plan == "pro"' });
    assert.equal(typo.json().error.code, 'invalid_definition');
    assert.match(typo.json().error.message, /text:14/);
    assert.equal((await post({ key: 'both', text: 'traits.a exists', definition: { trait: 'a', op: 'exists' } })).statusCode, 400);
    const bad = await post({ key: 'x', definition: { and: [{ trait: 'plan', op: 'like', value: 'p%' }] } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'invalid_definition');
    assert.match(bad.json().error.message, /\$\.and\[0\]\.op/);
    const cycle = await post({ key: 'churned', definition: { audience: 'vip_buyers' } });
    assert.equal(cycle.json().error.code, 'invalid_definition');
    assert.match(cycle.json().error.message, /cycle/);
    const traits = await app.inject({ method: 'GET', url: '/v1/spaces/default/collections/users/profiles/user_id:dee/traits?class=audience', headers: { authorization: basic('tdm_access_aud_00000000001') } });
    assert.deepEqual(traits.json().traits, { vip_buyers: true });
    const all = await app.inject({ method: 'GET', url: '/v1/spaces/default/collections/users/profiles/user_id:dee/traits?limit=50', headers: { authorization: basic('tdm_access_aud_00000000001') } });
    assert.deepEqual(Object.keys(all.json().traits), ['plan'], 'hidden computed traits behind event conditions never show');
    const sizes = (await app.inject({ method: 'GET', url: '/api/v1/audiences/vip_buyers/sizes?bucket=minute', headers: { authorization: bearer(marketer) } })).json().data;
    assert.equal(sizes.at(-1).size, 1);
    const explained = (await app.inject({ method: 'GET', url: '/api/v1/profiles/user_id:dee/identities', headers: { authorization: bearer() } })).json();
    assert.deepEqual(explained.audiences, ['vip_buyers']);
    assert.equal(explained.audience_history[0].change, 'enter');
    const detail = (await app.inject({ method: 'GET', url: '/api/v1/audiences/vip_buyers', headers: { authorization: bearer(marketer) } })).json();
    assert.equal(detail.size, 1);
    assert.equal(detail.history[0].change, 'enter');
    assert.equal((await app.inject({ method: 'DELETE', url: '/api/v1/audiences/churned', headers: { authorization: bearer(marketer) } })).statusCode, 400, 'vip_buyers uses it');
    assert.equal((await app.inject({ method: 'DELETE', url: '/api/v1/audiences/vip_buyers', headers: { authorization: bearer(marketer) } })).statusCode, 204);
    const gone = await app.inject({ method: 'GET', url: '/v1/spaces/default/collections/users/profiles/user_id:dee/traits?class=audience', headers: { authorization: basic('tdm_access_aud_00000000001') } });
    assert.deepEqual(gone.json().traits, {});
    assert.deepEqual((await app.inject({ method: 'GET', url: '/api/v1/audiences', headers: { authorization: bearer(marketer) } })).json().data.map((a: { key: string }) => a.key), ['churned']);

    const feed = (query: string) => app.inject({ method: 'GET', url: `/api/v1/audience-events?${query}`, headers: { authorization: bearer(marketer) } });
    const first = (await feed('audience=vip_buyers&limit=1')).json();
    assert.equal(first.data.length, 1);
    assert.equal(first.data[0].event, 'Audience Entered');
    assert.equal(first.data[0].userId, 'dee');
    assert.equal(first.data[0].properties.audience_key, 'vip_buyers');
    assert.equal(first.data[0].properties.cause_event_id, built.backfill && detail.history.at(-1).event_id, 'caused by the definition that built it');
    const rest = (await feed(`audience=vip_buyers&after=${first.next}`)).json();
    assert.deepEqual(rest.data.map((e: { event: string; userId: string }) => `${e.event} ${e.userId}`), ['Audience Exited dee'], 'deleting the audience makes its members exit');
    assert.equal((await feed(`audience=vip_buyers&after=${rest.next}`)).json().data.length, 0);
    assert.equal((await feed('after=-1')).json().error.code, 'invalid_cursor');
  });
});

test('consent and account conditions through the APIs: membership follows consent changes and the account\'s traits', async (t) => {
  const app = await openTestApp(t);
  app.stores.access.createToken('default', 'api', 'access', hashToken('tdm_access_consent_0000001'), true);
  const consent = (userId: string, granted: boolean, at: string) => ({ type: 'track', event: 'Consent Updated', userId, messageId: mid('c'), timestamp: at, context: { consent: { categoryPreferences: { Advertising: granted } } } });
  await app.send('/v1/batch', {
    batch: [
      consent('cal', true, '2026-01-01T00:00:00Z'),
      consent('dot', false, '2026-01-01T00:00:00Z'),
      { type: 'group', userId: 'cal', groupId: 'bigco', messageId: mid('g'), traits: { plan: 'enterprise' } },
      { type: 'group', userId: 'dot', groupId: 'smallco', messageId: mid('g'), traits: { plan: 'starter' } },
    ],
  });
  const created = await app.inject({ method: 'POST', url: '/api/v1/audiences', headers: { authorization: bearer() }, payload: { key: 'ads_enterprise', text: 'consented to "Advertising" and account.plan = "enterprise"' } });
  assert.equal(created.statusCode, 201, created.body);
  assert.deepEqual(created.json().definition, { and: [{ consent: 'Advertising' }, { account: 'plan', op: '=', value: 'enterprise' }] });
  await waitForBackfill(app, ADMIN_TOKEN, 'ads_enterprise');
  const member = async (user: string) => {
    await app.stores.stage?.caughtUp();
    const res = await app.inject({ method: 'GET', url: `/v1/spaces/default/collections/users/profiles/user_id:${user}/traits?class=audience`, headers: { authorization: basic('tdm_access_consent_0000001') } });
    return res.json().traits.ads_enterprise === true;
  };
  assert.equal(await member('cal'), true);
  assert.equal(await member('dot'), false);
  await app.send('/v1/batch', { batch: [consent('cal', false, '2026-02-01T00:00:00Z')] });
  assert.equal(await member('cal'), false, 'withdrawing consent makes the profile leave');
  await app.send('/v1/batch', { batch: [consent('cal', true, '2025-12-01T00:00:00Z')] });
  assert.equal(await member('cal'), false, 'an older consent does not override a newer one');
  await app.send('/v1/batch', { batch: [consent('dot', true, '2026-03-01T00:00:00Z'), { type: 'group', userId: 'eve', groupId: 'smallco', messageId: mid('g'), traits: { plan: 'enterprise' } }] });
  assert.equal(await member('dot'), true, "the account's new plan reaches every member of it");
});
