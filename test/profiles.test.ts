import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashToken } from '../src/access/credentials.ts';
import { ADMIN_TOKEN, basic, bearer, mid, openTestApp, type TestApp } from './helpers.ts';

const ACCESS = 'tdm_profile_access_token_0001';

async function setup(t: Parameters<typeof openTestApp>[0]) {
  const app = await openTestApp(t);
  app.stores.access.createToken('default', 'profile api', 'access', hashToken(ACCESS), true);
  const get = async (path: string, token = ACCESS) => {
    await app.stores.stage!.caughtUp();
    return app.inject({ method: 'GET', url: `/v1/spaces/default/collections/${path}`, headers: { authorization: basic(token) } });
  };
  const traits = async (id: string, query = '') => (await get(`users/profiles/${id}/traits${query}`)).json();
  return { app, get, traits };
}

const ev = (fields: Record<string, unknown>) => ({ messageId: mid('p'), ...fields });
const send = (app: TestApp, batch: Array<Record<string, unknown>>) => app.send('/v1/batch', { batch });

describe('profiles from events', () => {
  test('identify, track and page build one profile readable by any of its identifiers', async (t) => {
    const { app, get, traits } = await setup(t);
    await send(app, [
      ev({ type: 'page', anonymousId: 'anon-1', name: 'Home', timestamp: '2026-01-01T10:00:00Z' }),
      ev({ type: 'identify', userId: 'u-1', anonymousId: 'anon-1', traits: { email: ' Ada@Example.COM', name: 'Ada', plan: 'pro' }, timestamp: '2026-01-01T10:01:00Z' }),
      ev({ type: 'track', userId: 'u-1', event: 'Order Completed', properties: { total: 30 }, timestamp: '2026-01-01T10:02:00Z' }),
    ]);
    assert.deepEqual((await traits('user_id:u-1')).traits, { email: ' Ada@Example.COM', name: 'Ada', plan: 'pro' });
    assert.deepEqual((await traits('email:ada@example.com')).traits.name, 'Ada');
    assert.deepEqual((await traits('anonymous_id:anon-1')).traits.plan, 'pro', 'the anonymous history is stitched to the user');
    const ids = (await get('users/profiles/user_id:u-1/external_ids')).json().data;
    assert.deepEqual(ids.map((i: { type: string; id: string }) => `${i.type}:${i.id}`).sort(), ['anonymous_id:anon-1', 'email:ada@example.com', 'user_id:u-1']);
    const events = (await get('users/profiles/user_id:u-1/events')).json();
    assert.deepEqual(events.data.map((e: { type: string }) => e.type), ['track', 'identify', 'page'], 'newest first, including the anonymous page view');
    assert.equal(events.data[0].properties.total, 30);
    const meta = (await get('users/profiles/user_id:u-1/metadata')).json().metadata;
    assert.match(meta.profile_id, /^prof_/);
    assert.deepEqual((await traits(`profile_id:${meta.profile_id}`)).traits.name, 'Ada');
  });

  test('traits: last write wins by event timestamp, so out-of-order delivery converges', async (t) => {
    const { app, traits } = await setup(t);
    await send(app, [ev({ type: 'identify', userId: 'u', traits: { plan: 'pro', seats: 5 }, timestamp: '2026-03-02T00:00:00Z' })]);
    await send(app, [ev({ type: 'identify', userId: 'u', traits: { plan: 'free', color: 'red' }, timestamp: '2026-03-01T00:00:00Z' })]);
    assert.deepEqual((await traits('user_id:u')).traits, { color: 'red', plan: 'pro', seats: 5 });
  });

  test('a shared device never joins two users; each keeps their own events', async (t) => {
    const { app, get } = await setup(t);
    await send(app, [
      ev({ type: 'identify', userId: 'alice', anonymousId: 'store-tablet' }),
      ev({ type: 'track', event: 'Bought', userId: 'bob', anonymousId: 'store-tablet' }),
      ev({ type: 'identify', userId: 'carol', anonymousId: 'store-tablet' }),
    ]);
    const meta = async (id: string) => (await get(`users/profiles/user_id:${id}/metadata`)).json().metadata.profile_id;
    assert.equal(new Set([await meta('alice'), await meta('bob'), await meta('carol')]).size, 3);
    const bob = (await get('users/profiles/user_id:bob/events')).json().data;
    assert.deepEqual(bob.map((e: { event: string }) => e.event), ['Bought']);
  });

  test('junk identifiers never link strangers: identify(null), "undefined", "[object Object]"', async (t) => {
    const { app, get } = await setup(t);
    await send(app, [
      ev({ type: 'identify', userId: 'real-1', anonymousId: 'undefined' }),
      ev({ type: 'identify', userId: 'real-2', anonymousId: 'undefined' }),
      ev({ type: 'identify', userId: 'real-3', anonymousId: '[object Object]' }),
      ev({ type: 'identify', userId: 'null', anonymousId: 'dev-4' }),
      ev({ type: 'identify', userId: 'real-5', traits: { email: 'null' } }),
    ]);
    for (const n of [1, 2, 3, 5]) {
      const ids = (await get(`users/profiles/user_id:real-${n}/external_ids`)).json().data;
      assert.deepEqual(ids.map((i: { type: string }) => i.type), ['user_id'], `real-${n} holds only its own id`);
    }
    assert.equal((await get('users/profiles/anonymous_id:undefined/traits')).statusCode, 404);
    assert.equal((await get('users/profiles/anonymous_id:dev-4/external_ids')).json().data.length, 1);
  });

  test('a merge is recorded with the event and the rule that caused it', async (t) => {
    const { app, get } = await setup(t);
    await send(app, [ev({ type: 'page', anonymousId: 'laptop' })]);
    await send(app, [ev({ type: 'identify', userId: 'u7', traits: { email: 'u7@x.io' } })]);
    const joining = ev({ type: 'identify', userId: 'u7', anonymousId: 'laptop' });
    await send(app, [joining]);
    const profileId = (await get('users/profiles/anonymous_id:laptop/metadata')).json().metadata.profile_id;
    assert.equal((await get('users/profiles/user_id:u7/metadata')).json().metadata.profile_id, profileId);
    const merges = app.stores.profiles.merges(profileId);
    assert.equal(merges.length, 1);
    assert.equal(merges[0]!.rule, 'shared_identifier');
    assert.deepEqual(merges[0]!.via, { type: 'anonymous_id', value: 'laptop' });
    assert.match(merges[0]!.eventId, /^\d+\.0$/);
    assert.equal((await get('users/profiles/user_id:u7/events')).json().data.length, 3, 'history moved with the merge');
  });

  test('duplicates and quarantined events do not touch profiles', async (t) => {
    const { app, get } = await setup(t);
    const e = ev({ type: 'track', userId: 'd1', event: 'Once' });
    await send(app, [e, e, { type: 'track', userId: 'd1', messageId: 'no-name' }]);
    await send(app, [e]);
    assert.equal((await get('users/profiles/user_id:d1/events')).json().data.length, 1);
  });

  test('group calls build accounts with traits and links to users', async (t) => {
    const { app, get } = await setup(t);
    await send(app, [ev({ type: 'group', userId: 'g-user', groupId: 'acme', traits: { name: 'Acme', plan: 'enterprise' } }), ev({ type: 'group', userId: 'g-user-2', groupId: 'acme' })]);
    assert.deepEqual((await get('accounts/profiles/group_id:acme/traits')).json().traits, { name: 'Acme', plan: 'enterprise' });
    const links = (await get('accounts/profiles/group_id:acme/links')).json().data;
    assert.deepEqual(links.map((l: { external_ids: Array<{ id: string }> }) => l.external_ids[0]!.id).sort(), ['g-user', 'g-user-2']);
  });

  test('many concurrent requests for one person never create two profiles', async (t) => {
    const { app, get } = await setup(t);
    await Promise.all(Array.from({ length: 60 }, (_, i) => app.send('/v1/track', { userId: 'busy', anonymousId: `dev-${i % 4}`, event: `e${i}`, messageId: mid('c') })));
    await Promise.all(Array.from({ length: 20 }, (_, i) => app.send('/v1/identify', { anonymousId: `dev-${i % 4}`, traits: { email: 'busy@x.io' }, messageId: mid('c') })));
    const id = (await get('users/profiles/user_id:busy/metadata')).json().metadata.profile_id;
    for (const other of ['anonymous_id:dev-0', 'anonymous_id:dev-3', 'email:busy@x.io']) assert.equal((await get(`users/profiles/${other}/metadata`)).json().metadata.profile_id, id, other);
    assert.equal(app.stores.profiles.identifiers(id).length, 6);
  });
});

describe('Profile API contract', () => {
  test('pagination of traits and events follows the cursor', async (t) => {
    const { app, get } = await setup(t);
    await send(app, [ev({ type: 'identify', userId: 'pg', timestamp: '2025-12-31T00:00:00Z', traits: Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`t${String(i).padStart(2, '0')}`, i])) })]);
    await send(app, Array.from({ length: 23 }, (_, i) => ev({ type: 'track', userId: 'pg', event: `E${i}`, timestamp: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString() })));
    const keys: string[] = [];
    for (let url: string | null = 'users/profiles/user_id:pg/traits?limit=10'; url; ) {
      const body: { traits: Record<string, unknown>; data: Array<{ event: string; type: string }>; cursor: { has_more: boolean; url: string } } = (await get(url)).json();
      keys.push(...Object.keys(body.traits));
      url = body.cursor.has_more ? body.cursor.url.replace('/v1/spaces/default/collections/', '') : null;
    }
    assert.equal(keys.length, 25);
    assert.deepEqual(keys, [...keys].sort());
    const names: string[] = [];
    for (let url: string | null = 'users/profiles/user_id:pg/events?limit=7'; url; ) {
      const body: { traits: Record<string, unknown>; data: Array<{ event: string; type: string }>; cursor: { has_more: boolean; url: string } } = (await get(url)).json();
      names.push(...body.data.map((e) => e.event ?? e.type));
      url = body.cursor.has_more ? body.cursor.url.replace('/v1/spaces/default/collections/', '') : null;
    }
    assert.equal(names.length, 24);
    assert.equal(names[0], 'E22');
    assert.deepEqual((await get('users/profiles/user_id:pg/traits?include=t03,t07')).json().traits, { t03: 3, t07: 7 });
    assert.deepEqual((await get('users/profiles/user_id:pg/traits?class=computed_trait')).json().traits, {});
  });

  test('errors use Segment\'s codes; tokens are scoped to their workspace', async (t) => {
    const { app, get } = await setup(t);
    await send(app, [ev({ type: 'identify', userId: 'sec' })]);
    assert.equal((await get('users/profiles/user_id:sec/traits', ADMIN_TOKEN)).statusCode, 200, "an owner's admin token works too");
    const noAuth = await app.inject({ method: 'GET', url: '/v1/spaces/default/collections/users/profiles/user_id:sec/traits' });
    assert.deepEqual(noAuth.json().error.code, 'authentication_error');
    assert.equal(noAuth.statusCode, 401);
    const engineer = (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: 'eng', role: 'engineer' } })).json().token;
    assert.equal((await get('users/profiles/user_id:sec/traits', engineer)).json().error.code, 'authentication_error');
    assert.equal((await get('users/profiles/user_id:nobody/traits')).statusCode, 404);
    assert.equal((await get('users/profiles/nocolon/traits')).json().error.code, 'validation_error');
    assert.equal((await get('users/profiles/user_id:sec/traits?limit=1000')).json().error.code, 'validation_error');
    const other = await app.inject({ method: 'GET', url: '/v1/spaces/acme/collections/users/profiles/user_id:sec/traits', headers: { authorization: basic(ACCESS) } });
    assert.equal(other.statusCode, 404, 'another space: no data');
    app.stores.access.ensureWorkspace('acme', 'Acme');
    app.stores.access.createToken('acme', 'acme api', 'access', hashToken('tdm_acme_access_token_00001'));
    const profileId = (await get('users/profiles/user_id:sec/metadata')).json().metadata.profile_id;
    const acmeGet = (what: string) => app.inject({ method: 'GET', url: `/v1/spaces/acme/collections/users/profiles/${what}/traits`, headers: { authorization: basic('tdm_acme_access_token_00001') } });
    assert.equal((await acmeGet(`profile_id:${profileId}`)).statusCode, 404, "another workspace's profile by its id: no data");
    assert.equal((await acmeGet('user_id:sec')).statusCode, 404);
    const accessOnAdmin = await app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization: bearer(ACCESS) } });
    assert.equal(accessOnAdmin.statusCode, 403, 'an access token opens no admin route');
  });
});

describe('identity administration', () => {
  const admin = (app: TestApp, method: 'GET' | 'PUT' | 'POST', url: string, payload?: unknown, token = ADMIN_TOKEN) =>
    app.inject({ method, url, headers: { authorization: bearer(token) }, ...(payload ? { payload: payload as Record<string, unknown> } : {}) });

  test('rules are per workspace, validated, and take effect on the next events', async (t) => {
    const { app, get } = await setup(t);
    assert.deepEqual((await admin(app, 'GET', '/api/v1/identity/rules')).json().limits, { user_id: 1 });
    assert.equal((await admin(app, 'PUT', '/api/v1/identity/rules', { mergeCap: 0 })).statusCode, 400);
    assert.equal((await admin(app, 'PUT', '/api/v1/identity/rules', { blocked: [{ type: 'user_id', pattern: '(' }] })).json().error.code, 'invalid_request');
    assert.equal((await admin(app, 'PUT', '/api/v1/identity/rules', { surprise: true })).statusCode, 400);
    const put = await admin(app, 'PUT', '/api/v1/identity/rules', { blocked: [{ type: 'user_id', pattern: '^qa-' }], limits: { user_id: 1, anonymous_id: 2 } });
    assert.equal(put.statusCode, 200);
    assert.equal(put.json().mergeCap, 100, 'unspecified rules keep their values');
    await send(app, [ev({ type: 'identify', userId: 'QA-bot', anonymousId: 'qa-device' }), ev({ type: 'identify', userId: 'u', anonymousId: 'a1' }), ev({ type: 'identify', userId: 'u', anonymousId: 'a2' }), ev({ type: 'identify', userId: 'u', anonymousId: 'a3' })]);
    assert.equal((await get('users/profiles/user_id:QA-bot/traits')).statusCode, 404, 'a blocked pattern never links');
    assert.equal((await get('users/profiles/user_id:u/external_ids')).json().data.length, 3, 'anonymous_id limit 2');
    const explained = (await admin(app, 'GET', '/api/v1/profiles/user_id:u/identities')).json();
    assert.deepEqual(explained.warnings.map((w: { rule: string }) => w.rule), ['limit:anonymous_id=2']);
    assert.deepEqual(explained.identifiers.map((i: { rule: string }) => i.rule).sort(), ['new_profile', 'same_event', 'same_event']);
    const analyst = (await admin(app, 'POST', '/api/v1/tokens', { name: 'an', role: 'analyst' })).json().token;
    assert.equal((await admin(app, 'PUT', '/api/v1/identity/rules', { mergeCap: 5 }, analyst)).statusCode, 403);
    assert.equal((await admin(app, 'GET', '/api/v1/identity/rules', undefined, analyst)).statusCode, 200);
  });

  test('only an explicit admin merge joins two identified users; the merge is an event in the log', async (t) => {
    const { app, get } = await setup(t);
    await send(app, [ev({ type: 'identify', userId: 'old-id', traits: { name: 'Old' }, timestamp: '2026-01-01T00:00:00Z' }), ev({ type: 'identify', userId: 'new-id', traits: { plan: 'pro' } })]);
    await send(app, [ev({ type: 'alias', userId: 'new-id', previousId: 'old-id' })]);
    const before = (await get('users/profiles/user_id:old-id/metadata')).json().metadata.profile_id;
    assert.notEqual(before, (await get('users/profiles/user_id:new-id/metadata')).json().metadata.profile_id);
    const merged = await admin(app, 'POST', '/api/v1/profiles/merge', { from: 'user_id:old-id', into: 'user_id:new-id' });
    assert.equal(merged.statusCode, 200, merged.body);
    const after = (await get('users/profiles/user_id:old-id/metadata')).json().metadata.profile_id;
    assert.equal(after, merged.json().profile_id);
    assert.deepEqual((await get('users/profiles/user_id:old-id/traits')).json().traits, { name: 'Old', plan: 'pro' });
    const explained = (await admin(app, 'GET', `/api/v1/profiles/profile_id:${after}/identities`)).json();
    assert.equal(explained.merges[0].rule, 'admin_merge');
    const logged = await app.events('type=merge');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.id, explained.merges[0].event_id);
    assert.equal((await admin(app, 'POST', '/api/v1/profiles/merge', { from: 'user_id:old-id', into: 'user_id:new-id' })).statusCode, 400);
    assert.equal((await admin(app, 'POST', '/api/v1/profiles/merge', { from: 'user_id:nobody', into: 'user_id:new-id' })).statusCode, 404);
  });

  test('split moves an identifier and the events that came only through it, and it does not merge back', async (t) => {
    const { app, get } = await setup(t);
    await send(app, [
      ev({ type: 'page', anonymousId: 'kiosk', name: 'Kiosk only', timestamp: '2026-01-01T00:00:00Z', context: { traits: { kiosk_lang: 'fr' } } }),
      ev({ type: 'identify', userId: 'dana', anonymousId: 'kiosk', traits: { name: 'Dana' }, timestamp: '2026-01-01T00:01:00Z' }),
      ev({ type: 'track', userId: 'dana', event: 'Own Device', timestamp: '2026-01-01T00:02:00Z' }),
    ]);
    const res = await admin(app, 'POST', '/api/v1/profiles/user_id:dana/split', { identifier: 'anonymous_id:kiosk' });
    assert.equal(res.statusCode, 200, res.body);
    const { from, to } = res.json();
    assert.notEqual(from, to);
    const kioskEvents = (await get('users/profiles/anonymous_id:kiosk/events')).json().data;
    assert.deepEqual(kioskEvents.map((e: { type: string }) => e.type), ['page']);
    assert.deepEqual((await get('users/profiles/anonymous_id:kiosk/traits')).json().traits, { kiosk_lang: 'fr' });
    assert.deepEqual((await get('users/profiles/user_id:dana/traits')).json().traits, { name: 'Dana' }, 'traits rebuilt from what stayed');
    await send(app, [ev({ type: 'identify', userId: 'dana', anonymousId: 'kiosk' })]);
    assert.equal((await get('users/profiles/anonymous_id:kiosk/metadata')).json().metadata.profile_id, to, 'the split holds');
    assert.equal((await app.events('type=split')).length, 1);
    assert.equal((await admin(app, 'POST', '/api/v1/profiles/user_id:dana/split', { identifier: 'anonymous_id:kiosk' })).statusCode, 400);
  });
});
