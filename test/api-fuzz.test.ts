import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ADMIN_TOKEN, basic, bearer, openTestApp, trackEvent } from './helpers.ts';

/** No request to the Profile API or the admin API crashes the process or yields a 5xx. */
test('property: arbitrary paths, queries and bodies on the Profile API and admin routes get 2xx or 4xx', { timeout: 120_000 }, async (t) => {
  const app = await openTestApp(t);
  await app.send('/v1/batch', { batch: [trackEvent({ userId: 'fuzz', anonymousId: 'fz' }), { type: 'identify', userId: 'fuzz', traits: { email: 'f@z.io' }, messageId: 'fz-1' }] });
  await app.stores.stage!.caughtUp();
  const destination = (await app.inject({ method: 'POST', url: '/api/v1/destinations', headers: { authorization: bearer() }, payload: { name: 'fuzz', url: 'https://hooks.example.com/fuzz' } })).json().id as string;
  const segment = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('user_id:fuzz', 'email:f@z.io', 'anonymous_id:fz', 'profile_id:prof_x', 'group_id:acme', ':', 'user_id:', '%', '%00', '..', 'a'.repeat(2000)));
  const query = fc.dictionary(fc.constantFrom('limit', 'next', 'include', 'class', 'cursor', 'status', 'type', 'userId'), fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('0', '-1', '1e9', '10', 'computed_trait', 'audience', '%%')), { maxKeys: 3 });
  const encode = (s: string) => encodeURIComponent(s);
  const request = fc.oneof(
    fc.tuple(fc.constantFrom('traits', 'events', 'external_ids', 'metadata'), segment, query).map(([what, id, q]) => ({ method: 'GET' as const, url: `/v1/spaces/default/collections/users/profiles/${encode(id)}/${what}?${new URLSearchParams(q)}`, headers: { authorization: basic(ADMIN_TOKEN) } })),
    fc.tuple(fc.constantFrom('traits', 'links'), segment).map(([what, id]) => ({ method: 'GET' as const, url: `/v1/spaces/default/collections/accounts/profiles/${encode(id)}/${what}`, headers: { authorization: basic(ADMIN_TOKEN) } })),
    fc.tuple(segment, query).map(([id, q]) => ({ method: 'GET' as const, url: `/api/v1/profiles/${encode(id)}/identities?${new URLSearchParams(q)}`, headers: { authorization: bearer() } })),
    query.map((q) => ({ method: 'GET' as const, url: `/api/v1/events?${new URLSearchParams(q)}`, headers: { authorization: bearer() } })),
    fc.tuple(fc.constantFrom('/api/v1/profiles/merge', '/api/v1/computed-traits', '/api/v1/tokens', '/api/v1/write-keys', '/api/v1/profiles/user_id:fuzz/split'), fc.oneof(fc.jsonValue(), fc.record({ from: segment, into: segment }), fc.record({ key: fc.string(), kind: fc.string(), event: fc.string(), property: fc.string() }))).map(([url, body]) => ({ method: 'POST' as const, url, payload: JSON.stringify(body) ?? 'null', headers: { authorization: bearer(), 'content-type': 'application/json' } })),
    fc
      .tuple(
        fc.constantFrom('/api/v1/destinations', '/api/v1/activations', '/api/v1/event-streams', '/api/v1/change-requests', '/api/v1/destinations/dst_x/deliveries/retry'),
        fc.oneof(
          fc.jsonValue(),
          fc.record({ name: fc.string(), url: fc.oneof(fc.webUrl(), fc.string(), fc.constantFrom('http://127.0.0.1/x', 'https://[::ffff:10.0.0.1]/', 'https://user:pw@a.example/')), purposes: fc.array(fc.string(), { maxLength: 3 }) }, { requiredKeys: [] }),
          fc.record({ destination: fc.string(), audience: fc.string(), traits: fc.array(fc.string(), { maxLength: 3 }), identifiers: fc.array(fc.string(), { maxLength: 3 }), sync: fc.string() }, { requiredKeys: [] }),
          fc.record({ destination: fc.oneof(fc.string(), fc.constant('fuzz')), source: fc.oneof(fc.string(), fc.constant('default')), types: fc.array(fc.string(), { maxLength: 3 }), events: fc.array(fc.string(), { maxLength: 3 }) }, { requiredKeys: [] }),
          fc.record({ kind: fc.constantFrom('destination', 'activation', 'tracking_plan', 'other'), target: fc.string(), definition: fc.jsonValue() }, { requiredKeys: [] }),
          fc.record({ ids: fc.array(fc.integer(), { maxLength: 3 }) }, { requiredKeys: [] }),
        ),
      )
      .map(([url, body]) => ({ method: 'POST' as const, url, payload: JSON.stringify(body) ?? 'null', headers: { authorization: bearer(), 'content-type': 'application/json' } })),
    fc.tuple(fc.oneof(segment, fc.constant(destination)), fc.dictionary(fc.constantFrom('status', 'before', 'limit'), fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('0', '-1', '1e9', 'dead', 'pending')), { maxKeys: 3 })).map(([id, q]) => ({ method: 'GET' as const, url: `/api/v1/destinations/${encode(id)}/deliveries?${new URLSearchParams(q)}`, headers: { authorization: bearer() } })),
    fc.tuple(fc.oneof(segment, fc.constant(destination)), fc.oneof(fc.jsonValue(), fc.record({ name: fc.string(), url: fc.oneof(fc.webUrl(), fc.string()), enabled: fc.jsonValue(), consentMode: fc.string() }, { requiredKeys: [] }))).map(([id, body]) => ({ method: 'PATCH' as const, url: `/api/v1/destinations/${encode(id)}`, payload: JSON.stringify(body) ?? 'null', headers: { authorization: bearer(), 'content-type': 'application/json' } })),
    fc.jsonValue().map((body) => ({ method: 'PUT' as const, url: '/api/v1/identity/rules', payload: JSON.stringify(body) ?? 'null', headers: { authorization: bearer(), 'content-type': 'application/json' } })),
  );
  await fc.assert(
    fc.asyncProperty(request, async (req) => {
      const res = await app.inject(req);
      assert.ok(res.statusCode < 500, `${req.method} ${req.url.slice(0, 120)} -> ${res.statusCode} ${res.body.slice(0, 200)}`);
      if (res.statusCode >= 400) assert.equal(typeof res.json().error.code, 'string');
    }),
    { numRuns: Number(process.env.TANDEM_PROPERTY_RUNS ?? 400) },
  );
  assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
});
