import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashToken } from '../src/access/credentials.ts';
import { basic, bearer, mid, openTestApp, WRITE_KEY, type TestApp } from './helpers.ts';

const PLAN = {
  events: { 'Order Completed': { type: 'object', properties: { total: { type: 'number', minimum: 0 }, coupon: { type: 'string' } }, required: ['total'] } },
  pages: { Home: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] } },
  screens: { Settings: { type: 'object', properties: { section: { enum: ['account', 'privacy'] } } } },
  identify: { type: 'object', properties: { email: { type: 'string' }, plan: { enum: ['free', 'pro'] } }, required: ['email'] },
  group: { type: 'object', properties: { employees: { type: 'integer' } } },
  unplannedEvents: 'violation',
  unplannedProperties: 'violation',
};

/** For each call type: one event that keeps the plan and one that breaks it, with the violation expected. */
const CASES = [
  { type: 'track', good: { event: 'Order Completed', properties: { total: 10 } }, bad: { event: 'Order Completed', properties: { total: 'ten' } }, violation: 'plan:properties.total:type' },
  { type: 'track', good: { event: 'Order Completed', properties: { total: 1, coupon: 'X' } }, bad: { event: 'Order Refunded', properties: {} }, violation: 'plan:unplanned_event' },
  { type: 'page', good: { name: 'Home', properties: { path: '/' } }, bad: { name: 'Home', properties: {} }, violation: 'plan:properties.path:required' },
  { type: 'screen', good: { name: 'Settings', properties: { section: 'privacy' } }, bad: { name: 'Settings', properties: { section: 'billing', extra: 1 } }, violation: 'plan:properties.section:enum' },
  { type: 'identify', good: { traits: { email: 'a@example.com', plan: 'pro' } }, bad: { traits: { plan: 'pro', shoe_size: 44 } }, violation: 'plan:traits.email:required' },
  { type: 'group', good: { groupId: 'g1', traits: { employees: 12 } }, bad: { groupId: 'g1', traits: { employees: 12.5 } }, violation: 'plan:traits.employees:type' },
];

async function withPlan(app: TestApp, enforcement: string) {
  assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() }, payload: { name: 'Web', definition: PLAN } })).statusCode < 300, true);
  const source = (await app.inject({ method: 'GET', url: '/api/v1/sources', headers: { authorization: bearer() } })).json().data[0];
  const attached = await app.inject({ method: 'PUT', url: `/api/v1/sources/${source.id}/plan`, headers: { authorization: bearer() }, payload: { plan: 'web', enforcement } });
  assert.equal(attached.statusCode, 200, attached.body);
  return source.id as string;
}

const stored = async (app: TestApp, messageId: string) => {
  for (const status of ['accepted', 'flagged', 'quarantined']) {
    const found = (await app.inject({ method: 'GET', url: `/api/v1/events?messageId=${messageId}&status=${status}`, headers: { authorization: bearer() } })).json().data;
    if (found.length > 0) return found[0] as { status: string; reasons: string[]; id: string };
  }
  throw new Error(`${messageId} is not in the log`);
};

describe('tracking plans', () => {
  for (const enforcement of ['allow', 'flag', 'block'] as const) {
    test(`${enforcement}: every call type, batched and single, keeps or breaks the plan`, async (t) => {
      const app = await openTestApp(t);
      await withPlan(app, enforcement);
      for (const c of CASES) {
        for (const [which, body] of [['good', c.good], ['bad', c.bad]] as const) {
          for (const path of ['/v1/batch', `/v1/${c.type}`]) {
            const messageId = mid(`${c.type}-${which}`);
            const event = { type: c.type, userId: 'u1', messageId, ...body };
            const res = await app.send(path, path === '/v1/batch' ? { batch: [event] } : event);
            assert.equal(res.statusCode, 200, `${path} ${res.body}`);
            const e = await stored(app, messageId);
            const planReasons = e.reasons.filter((r) => r.startsWith('plan:'));
            if (which === 'good') {
              assert.equal(e.status, 'accepted', `${c.type} good`);
              assert.deepEqual(planReasons, [], `${c.type} good`);
            } else {
              assert.equal(e.status, { allow: 'accepted', flag: 'flagged', block: 'quarantined' }[enforcement], `${c.type} bad via ${path}`);
              assert.ok(planReasons.includes(c.violation), `${c.type}: ${planReasons.join(', ')} lacks ${c.violation}`);
            }
          }
        }
      }
      // The write key in the body instead of HTTP Basic: the same plan, the same verdict.
      const inBody = mid('in-body');
      const viaBody = await app.inject({ method: 'POST', url: '/v1/batch', payload: { writeKey: WRITE_KEY, batch: [{ type: 'track', userId: 'u1', messageId: inBody, ...CASES[0]!.bad }] } });
      assert.equal(viaBody.statusCode, 200, viaBody.body);
      assert.equal((await stored(app, inBody)).status, { allow: 'accepted', flag: 'flagged', block: 'quarantined' }[enforcement]);
      assert.ok((await stored(app, inBody)).reasons.includes(CASES[0]!.violation));
      // Unplanned properties and traits are violations when the plan says so; alias is not planned.
      const extra = mid('extra');
      await app.send('/v1/track', { type: 'track', userId: 'u1', messageId: extra, event: 'Order Completed', properties: { total: 1, colour: 'red' } });
      assert.ok((await stored(app, extra)).reasons.includes('plan:properties.colour:unplanned_property'));
      const alias = mid('alias');
      await app.send('/v1/alias', { type: 'alias', userId: 'u1', previousId: 'a1', messageId: alias });
      assert.equal((await stored(app, alias)).status, 'accepted');
    });
  }

  test('quarantine → fix the plan → replay: processed once, with its original payload and provenance', async (t) => {
    const app = await openTestApp(t);
    const sourceId = await withPlan(app, 'block');
    app.stores.access.createToken('default', 'api', 'access', hashToken('tdm_access_gov_000000000001'));
    const messageId = mid('refund');
    const sentAt = '2026-03-01T10:00:00.000Z';
    await app.send('/v1/batch', { batch: [{ type: 'track', event: 'Order Refunded', userId: 'rita', messageId, timestamp: sentAt, properties: { total: 5 } }] });
    const quarantined = await stored(app, messageId);
    assert.equal(quarantined.status, 'quarantined');
    const events = () => app.inject({ method: 'GET', url: '/v1/spaces/default/collections/users/profiles/user_id:rita/events', headers: { authorization: basic('tdm_access_gov_000000000001') } });
    assert.equal((await events()).statusCode, 404, 'a quarantined event makes no profile');

    const early = (await app.inject({ method: 'POST', url: '/api/v1/quarantine/replay', headers: { authorization: bearer() }, payload: { eventIds: [quarantined.id] } })).json();
    assert.equal(early.still_quarantined, 1, 'the plan still refuses it');
    assert.ok(early.data[0].reasons.includes('plan:unplanned_event'));

    const fixed = { ...PLAN, events: { ...PLAN.events, 'Order Refunded': { type: 'object', properties: { total: { type: 'number' } } } } };
    const v2 = await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() }, payload: { definition: fixed } });
    assert.equal(v2.json().version, 2);
    const replay = (await app.inject({ method: 'POST', url: '/api/v1/quarantine/replay', headers: { authorization: bearer() }, payload: { eventIds: [quarantined.id] } })).json();
    assert.equal(replay.replayed, 1, JSON.stringify(replay));
    const again = (await app.inject({ method: 'POST', url: '/api/v1/quarantine/replay', headers: { authorization: bearer() }, payload: {} })).json();
    assert.equal(again.replayed, 0, 'a second replay does nothing');
    assert.equal(again.data.find((r: { event_id: string }) => r.event_id === quarantined.id).status, 'replayed');

    const profileEvents = (await events()).json().data;
    assert.equal(profileEvents.length, 1, 'processed once');
    assert.equal(profileEvents[0].message_id, messageId);
    assert.equal(profileEvents[0].timestamp, sentAt);
    const copies = (await app.inject({ method: 'GET', url: `/api/v1/events?messageId=${messageId}&status=accepted`, headers: { authorization: bearer() } })).json().data;
    assert.equal(copies.length, 1);
    assert.equal(copies[0].sourceId, sourceId, 'same source');
    assert.equal(copies[0].receivedAt, (await app.inject({ method: 'GET', url: `/api/v1/events?messageId=${messageId}&status=quarantined`, headers: { authorization: bearer() } })).json().data[0].receivedAt, 'same received time');
  });

  test('violations are summarised per source, event and field with counts over time and a sample', async (t) => {
    const app = await openTestApp(t);
    const sourceId = await withPlan(app, 'flag');
    const bad = (total: unknown) => ({ type: 'track', event: 'Order Completed', userId: 'v', messageId: mid('v'), properties: { total } });
    await app.send('/v1/batch', { batch: [bad('1'), bad('2'), bad(null), { type: 'identify', userId: 'v', messageId: mid('i'), traits: {} }] });
    const summary = (await app.inject({ method: 'GET', url: '/api/v1/violations', headers: { authorization: bearer() } })).json();
    assert.equal(summary.complete, true);
    const total = summary.data.find((g: { event: string; field: string }) => g.event === 'Order Completed' && g.field === 'properties.total');
    assert.equal(total.count, 3);
    assert.equal(total.rule, 'type');
    assert.equal(total.source_id, sourceId);
    assert.equal(total.by_hour.reduce((n: number, h: { count: number }) => n + h.count, 0), 3);
    assert.equal(total.sample.event, 'Order Completed');
    assert.ok(summary.data.some((g: { event: string; field: string; rule: string }) => g.event === 'identify' && g.field === 'traits.email' && g.rule === 'required'));
    const filtered = (await app.inject({ method: 'GET', url: '/api/v1/violations?event=identify', headers: { authorization: bearer() } })).json();
    assert.deepEqual(filtered.data.map((g: { event: string }) => g.event), ['identify']);
  });

  test('plans are validated, versioned, and managed by engineers; marketers read them', async (t) => {
    const app = await openTestApp(t);
    const bad = await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() }, payload: { definition: { events: { E: { type: 'object', properties: { n: { type: 'nonsense' } } } } } } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'invalid_plan');
    assert.match(bad.json().error.message, /\$\.events\."E"/);
    assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() }, payload: { definition: { unplannedEvents: 'sometimes' } } })).statusCode, 400);
    const marketer = (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: 'm', role: 'marketer' } })).json().token;
    assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer(marketer) }, payload: { definition: PLAN } })).statusCode, 403);
    assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() }, payload: { definition: PLAN } })).statusCode, 201);
    assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() }, payload: { definition: { ...PLAN, unplannedEvents: 'allow' } } })).json().version, 2);
    const list = (await app.inject({ method: 'GET', url: '/api/v1/tracking-plans', headers: { authorization: bearer(marketer) } })).json().data;
    assert.deepEqual(list.map((p: { key: string; version: number; versions: number }) => [p.key, p.version, p.versions]), [['web', 2, 2]]);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/tracking-plans/web?version=1', headers: { authorization: bearer(marketer) } })).json().definition.unplannedEvents, 'violation');
    assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/sources/src_nope/plan', headers: { authorization: bearer() }, payload: { plan: 'web' } })).statusCode, 404);
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/quarantine/replay', headers: { authorization: bearer(marketer) }, payload: {} })).statusCode, 403);
  });
});

describe('patterns in tracking plans', () => {
  test('run in linear time: a pattern that would backtrack for minutes answers at once; back-references and Unicode escapes are refused', async (t) => {
    const app = await openTestApp(t);
    const put = (pattern: string) => app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() }, payload: { definition: { events: { Signed: { type: 'object', properties: { code: { type: 'string', pattern } } } } } } });
    for (const pattern of ['(a)\\1', 'a(?=b)', '^\\p{L}+$', '[']) {
      const refused = await put(pattern);
      assert.equal(refused.statusCode, 400, pattern);
      assert.equal(refused.json().error.code, 'invalid_plan');
      assert.match(refused.json().error.message, /\$\.events\."Signed"/);
    }
    assert.equal((await put('^(a+)+$')).statusCode, 201);
    const source = (await app.inject({ method: 'GET', url: '/api/v1/sources', headers: { authorization: bearer() } })).json().data[0];
    await app.inject({ method: 'PUT', url: `/api/v1/sources/${source.id}/plan`, headers: { authorization: bearer() }, payload: { plan: 'web', enforcement: 'flag' } });
    const [evil, fine] = [mid(), mid()];
    const started = performance.now();
    const res = await app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(WRITE_KEY) }, payload: { batch: [
      { type: 'track', event: 'Signed', userId: 'u1', messageId: evil, properties: { code: `${'a'.repeat(40)}!` } },
      { type: 'track', event: 'Signed', userId: 'u1', messageId: fine, properties: { code: 'aaa' } },
    ] } });
    assert.equal(res.statusCode, 200);
    assert.ok(performance.now() - started < 2000, 'backtracking would take 2^40 steps here');
    assert.deepEqual((await stored(app, evil)).reasons, ['plan:properties.code:pattern']);
    assert.equal((await stored(app, fine)).status, 'accepted');
  });
});

describe('change requests', () => {
  test('a marketer proposes a new event; an engineer sees its diff and impact and approves; it applies atomically, once', async (t) => {
    const app = await openTestApp(t);
    const token = async (role: string) => (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: role, role } })).json().token as string;
    const [marketer, engineer] = [await token('marketer'), await token('engineer')];
    await withPlan(app, 'flag');
    await app.send('/v1/batch', { batch: [{ type: 'track', event: 'Order Completed', userId: 'u', messageId: mid('o'), properties: { total: 3 } }, { type: 'track', event: 'Order Completed', userId: 'u', messageId: mid('o'), properties: { total: 4 } }] });
    await app.inject({ method: 'POST', url: '/api/v1/audiences', headers: { authorization: bearer(marketer) }, payload: { key: 'buyers', text: 'performed "Order Completed"' } });
    assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer(marketer) }, payload: { definition: PLAN } })).statusCode, 403, 'marketers cannot change plans directly');

    const proposed = {
      ...PLAN,
      events: {
        ...PLAN.events,
        'Order Completed': { ...PLAN.events['Order Completed'], properties: { ...PLAN.events['Order Completed'].properties, gift_note: { type: 'string' }, buyer_phone: { type: 'string', 'x-pii': 'phone' } } },
        'Wishlist Added': { type: 'object', properties: { sku: { type: 'string' } } },
      },
    };
    const created = await app.inject({ method: 'POST', url: '/api/v1/change-requests', headers: { authorization: bearer(marketer) }, payload: { kind: 'tracking_plan', target: 'web', definition: proposed, comment: 'for the gift campaign' } });
    assert.equal(created.statusCode, 201, created.body);
    const request = created.json();
    assert.equal(request.status, 'open');
    assert.equal(request.base_version, 1);
    assert.deepEqual(request.diff.events, { added: ['Wishlist Added'], removed: [], changed: ['Order Completed'] });
    assert.deepEqual(request.diff.properties, [{ event: 'Order Completed', added: ['gift_note', 'buyer_phone'], removed: [] }, { event: 'Wishlist Added', added: ['sku'], removed: [] }]);
    assert.deepEqual(request.impact.pii.added, ['Order Completed.buyer_phone (phone)']);
    assert.deepEqual(request.impact.audiences, ['buyers']);
    assert.equal(request.impact.volume_7d['Order Completed'], 2);
    assert.equal(request.impact.volume_7d['Wishlist Added'], 0);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() } })).json().version, 1, 'nothing applies before the review');

    assert.equal((await app.inject({ method: 'POST', url: `/api/v1/change-requests/${request.id}/approve`, headers: { authorization: bearer(marketer) }, payload: {} })).statusCode, 403);
    const approved = await app.inject({ method: 'POST', url: `/api/v1/change-requests/${request.id}/approve`, headers: { authorization: bearer(engineer) }, payload: { comment: 'ok, no PII to destinations' } });
    assert.equal(approved.statusCode, 200, approved.body);
    assert.equal(approved.json().status, 'approved');
    assert.equal(approved.json().applied_version, 2);
    assert.equal(approved.json().decision_comment, 'ok, no PII to destinations');
    assert.deepEqual(Object.keys((await app.inject({ method: 'GET', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() } })).json().definition.events).sort(), ['Order Completed', 'Wishlist Added']);
    const wish = mid('w');
    await app.send('/v1/track', { type: 'track', event: 'Wishlist Added', userId: 'u', messageId: wish, properties: { sku: 'A1' } });
    assert.equal((await app.inject({ method: 'GET', url: `/api/v1/events?messageId=${wish}&status=accepted`, headers: { authorization: bearer() } })).json().data.length, 1, 'ingest enforces the new version at once');
    assert.equal((await app.inject({ method: 'POST', url: `/api/v1/change-requests/${request.id}/approve`, headers: { authorization: bearer(engineer) }, payload: {} })).statusCode, 400, 'decided once');
  });

  test('a request made on an older version is refused on approval; rejection keeps the plan; review can be switched off', async (t) => {
    const app = await openTestApp(t);
    const marketer = (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: 'm', role: 'marketer' } })).json().token;
    await withPlan(app, 'flag');
    const propose = (definition: unknown) => app.inject({ method: 'POST', url: '/api/v1/change-requests', headers: { authorization: bearer(marketer) }, payload: { kind: 'tracking_plan', target: 'web', definition } });
    const first = (await propose({ ...PLAN, unplannedEvents: 'allow' })).json();
    const second = (await propose({ ...PLAN, unplannedProperties: 'allow' })).json();
    assert.deepEqual(first.diff.policy, { unplannedEvents: ['violation', 'allow'] });
    assert.equal((await app.inject({ method: 'POST', url: `/api/v1/change-requests/${first.id}/approve`, headers: { authorization: bearer() }, payload: {} })).statusCode, 200);
    const stale = await app.inject({ method: 'POST', url: `/api/v1/change-requests/${second.id}/approve`, headers: { authorization: bearer() }, payload: {} });
    assert.equal(stale.statusCode, 409);
    assert.equal(stale.json().error.code, 'stale_change');
    const third = (await propose({ ...PLAN, events: {} })).json();
    const rejected = await app.inject({ method: 'POST', url: `/api/v1/change-requests/${third.id}/reject`, headers: { authorization: bearer() }, payload: { comment: 'we still send orders' } });
    assert.equal(rejected.json().status, 'rejected');
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() } })).json().version, 2);
    assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/governance/settings', headers: { authorization: bearer() }, payload: { approvalRequired: { tracking_plan: false } } })).statusCode, 200);
    const direct = (await propose({ ...PLAN, unplannedEvents: 'violation', unplannedProperties: 'allow' })).json();
    assert.equal(direct.status, 'applied');
    assert.equal(direct.applied_version, 3);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/api/v1/change-requests?status=open', headers: { authorization: bearer(marketer) } })).json().data.map((c: { id: string }) => c.id), [second.id]);
  });
});
