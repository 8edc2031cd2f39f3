import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashToken } from '../src/access/credentials.ts';
import type { ComputedTrait } from '../src/profiles/computed-traits.ts';
import { basic, bearer, mid, openTestApp, tempDir } from './helpers.ts';
import { stageHarness } from './stage-harness.ts';

const DAY = 86_400_000;
const T0 = Date.parse('2026-06-01T00:00:00Z');
const order = (userId: string, at: number, properties: Record<string, unknown>) => ({ type: 'track', event: 'Order Completed', userId, messageId: mid('o'), timestamp: new Date(at).toISOString(), properties });

const TRAITS: ComputedTrait[] = [
  { key: 'orders', kind: 'count', event: 'Order Completed' },
  { key: 'big_orders_30d', kind: 'count', event: 'Order Completed', filters: [{ property: 'total', op: '>', value: 50 }], windowDays: 30 },
  { key: 'revenue', kind: 'sum', event: 'Order Completed', property: 'total' },
  { key: 'smallest', kind: 'min', event: 'Order Completed', property: 'total' },
  { key: 'largest', kind: 'max', event: 'Order Completed', property: 'total' },
  { key: 'avg_order', kind: 'average', event: 'Order Completed', property: 'total' },
  { key: 'first_category', kind: 'first', event: 'Order Completed', property: 'category' },
  { key: 'last_category', kind: 'last', event: 'Order Completed', property: 'category' },
  { key: 'favourite', kind: 'most_frequent', event: 'Order Completed', property: 'category' },
  { key: 'categories', kind: 'unique_list', event: 'Order Completed', property: 'category' },
  { key: 'category_count', kind: 'unique_count', event: 'Order Completed', property: 'category' },
  { key: 'coffee_spend', kind: 'sum', event: 'Order Completed', property: 'total', filters: [{ property: 'category', op: 'in', value: ['coffee', 'beans'] }, { property: 'coupon', op: 'exists' }] },
];

const ordersAround = (t0: number) => [
  order('ann', t0 - 40 * DAY, { total: 80, category: 'machines' }),
  order('ann', t0 - 10 * DAY, { total: 12.5, category: 'coffee', coupon: 'X' }),
  order('ann', t0 - 5 * DAY, { total: 60, category: 'coffee' }),
  order('ann', t0 - 1 * DAY, { total: 99, category: 'beans', coupon: 'Y' }),
  { type: 'track', event: 'Product Viewed', userId: 'ann', messageId: mid('v'), timestamp: new Date(t0).toISOString(), properties: { total: 1000 } },
  order('ann', t0 - 2 * DAY, { total: 'not a number', category: 'coffee' }),
];
const ORDERS = ordersAround(T0);

const EXPECTED = {
  orders: 5, big_orders_30d: 2, revenue: 251.5, smallest: 12.5, largest: 99, avg_order: 62.875, first_category: 'machines', last_category: 'beans',
  favourite: 'coffee', categories: ['beans', 'coffee', 'machines'], category_count: 3, coffee_spend: 111.5,
};

describe('computed traits', () => {
  test('every kind, with filters and a window, updated incrementally as events arrive', (t) => {
    const h = stageHarness(tempDir(t), 'incremental', { now: T0 });
    t.after(() => h.close());
    for (const trait of TRAITS) h.admin('computed_trait', { trait });
    h.send(...ORDERS);
    assert.deepEqual(h.computed('user_id', 'ann'), EXPECTED);
  });

  test('a new trait backfills over stored history: backfill equals incremental', (t) => {
    const h = stageHarness(tempDir(t), 'backfill', { now: T0 });
    t.after(() => h.close());
    h.send(...ORDERS);
    for (const trait of TRAITS) h.admin('computed_trait', { trait });
    assert.deepEqual(h.computed('user_id', 'ann'), EXPECTED);
  });

  test('windowed values lapse on time without a new event', (t) => {
    const clock = { now: T0 };
    const h = stageHarness(tempDir(t), 'expiry', clock);
    t.after(() => h.close());
    h.admin('computed_trait', { trait: TRAITS[1] });
    h.send(...ORDERS);
    assert.equal(h.computed('user_id', 'ann')!.big_orders_30d, 2);
    clock.now = T0 + 26 * DAY;
    h.expire();
    assert.equal(h.computed('user_id', 'ann')!.big_orders_30d, 1, 'the order of 5 days before T0 left the 30-day window');
    clock.now = T0 + 31 * DAY;
    h.expire();
    assert.equal(h.computed('user_id', 'ann')!.big_orders_30d, 0);
  });

  test('a merge recomputes from both sides\' contributions', (t) => {
    const h = stageHarness(tempDir(t), 'merge', { now: T0 });
    t.after(() => h.close());
    h.admin('computed_trait', { trait: TRAITS[2] });
    h.send({ type: 'track', event: 'Order Completed', anonymousId: 'guest-cart', messageId: mid('g'), timestamp: new Date(T0 - DAY).toISOString(), properties: { total: 20 } });
    h.send(order('bo', T0, { total: 30 }));
    h.send({ type: 'identify', userId: 'bo', anonymousId: 'guest-cart', messageId: mid('i') });
    assert.equal(h.computed('user_id', 'bo')!.revenue, 50);
  });
});

describe('computed traits through the APIs', () => {
  test('marketers define them; the Profile API shows them under class=computed_trait', async (t) => {
    const app = await openTestApp(t);
    const now = Date.now();
    app.stores.access.createToken('default', 'api', 'access', hashToken('tdm_access_ct_000000000001'));
    const marketer = (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: 'm', role: 'marketer' } })).json().token;
    await app.send('/v1/batch', { batch: ordersAround(now) });
    for (const trait of TRAITS) {
      const res = await app.inject({ method: 'POST', url: '/api/v1/computed-traits', headers: { authorization: bearer(marketer) }, payload: trait as unknown as Record<string, unknown> });
      assert.equal(res.statusCode, 201, res.body);
    }
    const bad = await app.inject({ method: 'POST', url: '/api/v1/computed-traits', headers: { authorization: bearer(marketer) }, payload: { key: 'x', kind: 'sum', event: 'E' } });
    assert.equal(bad.statusCode, 400, 'sum needs a property');
    const get = (q: string) => app.inject({ method: 'GET', url: `/v1/spaces/default/collections/users/profiles/user_id:ann/traits?limit=200${q}`, headers: { authorization: basic('tdm_access_ct_000000000001') } });
    const computed = (await get('&class=computed_trait')).json().traits;
    assert.deepEqual(computed, EXPECTED);
    await app.send('/v1/track', order('ann', now, { total: 70, category: 'coffee' }));
    await app.stores.stage!.caughtUp();
    assert.equal((await get('&class=computed_trait')).json().traits.orders, 6, 'incremental on the next event');
    assert.equal((await get('')).json().traits.orders, 6, 'and among all traits');
    assert.equal((await app.inject({ method: 'DELETE', url: '/api/v1/computed-traits/orders', headers: { authorization: bearer(marketer) } })).statusCode, 204);
    assert.equal((await get('&class=computed_trait')).json().traits.orders, undefined);
    const list = (await app.inject({ method: 'GET', url: '/api/v1/computed-traits', headers: { authorization: bearer(marketer) } })).json().data;
    assert.equal(list.length, TRAITS.length - 1);
  });
});
