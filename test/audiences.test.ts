import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashToken } from '../src/access/credentials.ts';
import { basic, bearer, mid, openTestApp, tempDir } from './helpers.ts';
import { stageHarness } from './stage-harness.ts';

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
    const saved = h.store.profileIds('w').filter((p) => h.store.memberships(p).includes(audience.key));
    assert.equal(preview.size, saved.length);
    assert.deepEqual(preview.sample.map((s) => s.profile_id).sort(), saved.sort());
  });
});

describe('audiences through the APIs', () => {
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
    assert.equal(created.json().size, preview.json().size, 'backfilled over existing profiles, as the preview said');
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
  });
});
