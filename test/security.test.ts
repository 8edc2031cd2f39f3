import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
import { PERMISSIONS, type Permission } from '../src/access/credentials.ts';
import { basic, bearer, openTestApp, WRITE_KEY, type TestApp } from './helpers.ts';

type Route = { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; url: string; permission: Permission; body?: Record<string, unknown> };

/** Every admin route, with a body its schema accepts, so that only the role decides. */
const ROUTES: Route[] = [
  { method: 'GET', url: '/api/v1/events', permission: 'events:read' },
  { method: 'GET', url: '/api/v1/write-keys', permission: 'keys:manage' },
  { method: 'POST', url: '/api/v1/write-keys', permission: 'keys:manage', body: { source: 'matrix' } },
  { method: 'DELETE', url: '/api/v1/write-keys/wk_nope', permission: 'keys:manage' },
  { method: 'GET', url: '/api/v1/tokens', permission: 'tokens:manage' },
  { method: 'POST', url: '/api/v1/tokens', permission: 'tokens:manage', body: { name: 'made', role: 'analyst' } },
  { method: 'DELETE', url: '/api/v1/tokens/tok_nope', permission: 'tokens:manage' },
  { method: 'GET', url: '/api/v1/identity/rules', permission: 'identity:read' },
  { method: 'PUT', url: '/api/v1/identity/rules', permission: 'identity:manage', body: {} },
  { method: 'GET', url: '/api/v1/profiles/user_id:nobody/identities', permission: 'identity:read' },
  { method: 'POST', url: '/api/v1/profiles/merge', permission: 'identity:manage', body: { from: 'user_id:a', into: 'user_id:b' } },
  { method: 'POST', url: '/api/v1/profiles/user_id:a/split', permission: 'identity:manage', body: { identifier: 'anonymous_id:x' } },
  { method: 'GET', url: '/api/v1/computed-traits', permission: 'traits:read' },
  { method: 'POST', url: '/api/v1/computed-traits', permission: 'traits:manage', body: { key: 'orders', kind: 'count', event: 'Order Completed' } },
  { method: 'DELETE', url: '/api/v1/computed-traits/nope', permission: 'traits:manage' },
  { method: 'GET', url: '/api/v1/audiences', permission: 'audiences:read' },
  { method: 'GET', url: '/api/v1/audiences/nope', permission: 'audiences:read' },
  { method: 'GET', url: '/api/v1/audiences/nope/sizes', permission: 'audiences:read' },
  { method: 'POST', url: '/api/v1/audiences', permission: 'audiences:manage', body: { key: 'pros', text: 'traits.plan = "pro"' } },
  { method: 'POST', url: '/api/v1/audiences/preview', permission: 'audiences:manage', body: { key: 'pros', text: 'traits.plan = "pro"' } },
  { method: 'DELETE', url: '/api/v1/audiences/nope', permission: 'audiences:manage' },
  { method: 'GET', url: '/api/v1/audience-events', permission: 'audiences:read' },
  { method: 'GET', url: '/api/v1/tracking-plans', permission: 'plans:read' },
  { method: 'GET', url: '/api/v1/tracking-plans/nope', permission: 'plans:read' },
  { method: 'PUT', url: '/api/v1/tracking-plans/web', permission: 'plans:manage', body: { definition: {} } },
  { method: 'GET', url: '/api/v1/sources', permission: 'plans:read' },
  { method: 'PUT', url: '/api/v1/sources/src_nope/plan', permission: 'plans:manage', body: { plan: null } },
  { method: 'GET', url: '/api/v1/violations', permission: 'plans:read' },
  { method: 'POST', url: '/api/v1/quarantine/replay', permission: 'quarantine:replay', body: {} },
  { method: 'GET', url: '/api/v1/clv/fits', permission: 'value:read' },
  { method: 'GET', url: '/api/v1/clv/fits/nope', permission: 'value:read' },
  { method: 'GET', url: '/api/v1/clv/fits/nope/chart.svg', permission: 'value:read' },
  { method: 'GET', url: '/api/v1/clv/scores', permission: 'value:read' },
  { method: 'POST', url: '/api/v1/clv/fit', permission: 'value:manage', body: {} },
  { method: 'POST', url: '/api/v1/clv/refresh', permission: 'value:manage' },
  { method: 'GET', url: '/api/v1/governance/settings', permission: 'plans:read' },
  { method: 'PUT', url: '/api/v1/governance/settings', permission: 'tokens:manage', body: { approvalRequired: { tracking_plan: true } } },
  { method: 'POST', url: '/api/v1/change-requests', permission: 'changes:propose', body: { kind: 'tracking_plan', target: 'web', definition: {} } },
  { method: 'GET', url: '/api/v1/change-requests', permission: 'changes:propose' },
  { method: 'GET', url: '/api/v1/change-requests/chg_nope', permission: 'changes:propose' },
  { method: 'POST', url: '/api/v1/change-requests/chg_nope/approve', permission: 'changes:approve', body: {} },
  { method: 'POST', url: '/api/v1/change-requests/chg_nope/reject', permission: 'changes:approve', body: {} },
  { method: 'GET', url: '/api/v1/users', permission: 'users:manage' },
  { method: 'POST', url: '/api/v1/users', permission: 'users:manage', body: { email: 'matrix@example.com', role: 'analyst', password: 'a long enough password' } },
  { method: 'DELETE', url: '/api/v1/users/usr_nope', permission: 'users:manage' },
  { method: 'PUT', url: '/api/v1/users/usr_nope/password', permission: 'users:manage', body: { password: 'a long enough password' } },
  { method: 'GET', url: '/api/v1/destinations', permission: 'destinations:read' },
  { method: 'POST', url: '/api/v1/destinations', permission: 'destinations:manage', body: { name: 'matrix', url: 'https://hooks.example.com/matrix' } },
  { method: 'GET', url: '/api/v1/destinations/dst_nope', permission: 'destinations:read' },
  { method: 'PATCH', url: '/api/v1/destinations/dst_nope', permission: 'destinations:manage', body: { enabled: false } },
  { method: 'DELETE', url: '/api/v1/destinations/dst_nope', permission: 'destinations:manage' },
  { method: 'POST', url: '/api/v1/destinations/dst_nope/secret', permission: 'destinations:manage' },
  { method: 'GET', url: '/api/v1/destinations/dst_nope/deliveries', permission: 'destinations:read' },
  { method: 'POST', url: '/api/v1/destinations/dst_nope/deliveries/retry', permission: 'activations:manage', body: {} },
  { method: 'GET', url: '/api/v1/event-streams', permission: 'destinations:read' },
  { method: 'POST', url: '/api/v1/event-streams', permission: 'destinations:manage', body: { destination: 'dst_nope' } },
  { method: 'GET', url: '/api/v1/event-streams/evs_nope', permission: 'destinations:read' },
  { method: 'DELETE', url: '/api/v1/event-streams/evs_nope', permission: 'destinations:manage' },
  { method: 'GET', url: '/api/v1/activations', permission: 'destinations:read' },
  { method: 'POST', url: '/api/v1/activations', permission: 'activations:manage', body: { destination: 'dst_nope', audience: 'nope' } },
  { method: 'GET', url: '/api/v1/activations/act_nope', permission: 'destinations:read' },
  { method: 'PATCH', url: '/api/v1/activations/act_nope', permission: 'activations:manage', body: { traits: ['plan'] } },
  { method: 'DELETE', url: '/api/v1/activations/act_nope', permission: 'activations:manage' },
  { method: 'GET', url: '/api/v1/audit', permission: 'audit:read' },
  { method: 'GET', url: '/api/v1/audit/export', permission: 'audit:read' },
];

async function tokens(app: TestApp) {
  const out: Record<string, { token: string; id: string }> = {};
  for (const role of ['engineer', 'marketer', 'analyst', 'access']) {
    const created = (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: role, role } })).json();
    out[role] = { token: created.token, id: created.id };
  }
  return out;
}

const call = (app: TestApp, r: Route, authorization: string) => app.inject({ method: r.method, url: r.url, headers: { authorization }, ...(r.body ? { payload: r.body } : {}) });

describe('security checks', () => {
  test('every role against every admin route: 403 exactly where the role lacks the permission, each refusal audited', async (t) => {
    const app = await openTestApp(t);
    const made = await tokens(app);
    const owner = (await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer() } })).json().data.find((x: { role: string }) => x.role === 'owner');
    for (const r of ROUTES) {
      for (const [role, credentials] of [['owner', { token: undefined, id: owner.id }], ...Object.entries(made)] as const) {
        const res = await call(app, r, bearer(credentials.token));
        const allowed = (PERMISSIONS[r.permission] as readonly string[]).includes(role);
        if (allowed) assert.notEqual(res.statusCode, 403, `${role} ${r.method} ${r.url}: ${res.body}`);
        else assert.equal(res.statusCode, 403, `${role} ${r.method} ${r.url}: ${res.statusCode} ${res.body}`);
      }
    }
    const denied = (await app.inject({ method: 'GET', url: '/api/v1/audit?action=denied&limit=1000', headers: { authorization: bearer() } })).json().data;
    for (const r of ROUTES) {
      for (const [role, { id }] of Object.entries(made)) {
        if ((PERMISSIONS[r.permission] as readonly string[]).includes(role)) continue;
        assert.ok(denied.some((e: { actor: string; route: string }) => e.actor === id && e.route.startsWith(`${r.method} /api/v1/`)), `no audit entry for ${role} refused on ${r.method} ${r.url}`);
      }
    }
  });

  test('the OpenAPI document lists every admin route', async (t) => {
    const app = await openTestApp(t);
    const doc = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    for (const r of ROUTES) {
      const path = Object.keys(doc.paths).find((p) => new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(r.url));
      assert.ok(path && doc.paths[path][r.method.toLowerCase()], `${r.method} ${r.url} is not documented`);
    }
  });

  test('write keys are useless on admin routes; malformed Authorization headers get 401', async (t) => {
    const app = await openTestApp(t);
    for (const authorization of [bearer(WRITE_KEY), basic(WRITE_KEY), 'Bearer', 'Basic !!!', 'Bearer a b', `Bearer ${'x'.repeat(600)}`]) {
      const res = await app.inject({ method: 'GET', url: '/api/v1/audiences', headers: { authorization } });
      assert.equal(res.statusCode, 401, authorization.slice(0, 20));
      assert.doesNotMatch(res.body, /at .*\.ts|stack/i, 'no stack traces');
    }
    const profile = await app.inject({ method: 'GET', url: '/v1/spaces/default/collections/users/profiles/user_id:x/traits', headers: { authorization: basic(WRITE_KEY) } });
    assert.equal(profile.statusCode, 401, 'nor on the Profile API');
  });

  test("another workspace's objects by id: 404, no data", async (t) => {
    const app = await openTestApp(t);
    await app.send('/v1/identify', { userId: 'ada', traits: { plan: 'pro', email: 'ada@example.com' }, messageId: 'sec-1' });
    for (const [method, url, payload] of [
      ['POST', '/api/v1/audiences', { key: 'pros', text: 'traits.plan = "pro"' }],
      ['PUT', '/api/v1/tracking-plans/web', { definition: {} }],
      ['POST', '/api/v1/computed-traits', { key: 'orders', kind: 'count', event: 'Order Completed' }],
    ] as const) assert.ok((await app.inject({ method, url, headers: { authorization: bearer() }, payload })).statusCode < 300);
    const event = (await app.inject({ method: 'GET', url: '/api/v1/events?messageId=sec-1', headers: { authorization: bearer() } })).json().data[0];
    app.stores.access.ensureWorkspace('acme', 'Acme');
    const { hashToken } = await import('../src/access/credentials.ts');
    app.stores.access.createToken('acme', 'acme owner', 'owner', hashToken('tdm_acme_owner_token_0000001'));
    const acme = bearer('tdm_acme_owner_token_0000001');
    const source = (await app.inject({ method: 'GET', url: '/api/v1/sources', headers: { authorization: bearer() } })).json().data[0].id;
    for (const [method, url, payload] of [
      ['GET', '/api/v1/audiences/pros', undefined],
      ['GET', '/api/v1/audiences/pros/sizes', undefined],
      ['DELETE', '/api/v1/audiences/pros', undefined],
      ['GET', '/api/v1/tracking-plans/web', undefined],
      ['PUT', `/api/v1/sources/${source}/plan`, { plan: null }],
      ['DELETE', '/api/v1/computed-traits/orders', undefined],
      ['GET', '/api/v1/profiles/user_id:ada/identities', undefined],
      ['POST', '/api/v1/quarantine/replay', { eventIds: [event.id] }],
    ] as const) {
      const res = await app.inject({ method, url, headers: { authorization: acme }, ...(payload ? { payload } : {}) });
      if (url.endsWith('replay')) assert.deepEqual(res.json().data, [], 'no other workspace event is seen');
      else assert.equal(res.statusCode, 404, `${method} ${url}: ${res.body}`);
      assert.doesNotMatch(res.body, /ada@example\.com|"plan"/);
    }
    assert.equal((await app.inject({ method: 'GET', url: `/api/v1/events?messageId=sec-1`, headers: { authorization: acme } })).json().data.length, 0);
  });

  test('changes are audited with before and after; the log is append-only, and owners query and export it', async (t) => {
    const app = await openTestApp(t);
    const made = await tokens(app);
    await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer(made.engineer!.token) }, payload: { definition: { unplannedEvents: 'allow' } } });
    await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer(made.engineer!.token) }, payload: { definition: { unplannedEvents: 'violation' } } });
    const changes = (await app.inject({ method: 'GET', url: '/api/v1/audit?action=change', headers: { authorization: bearer() } })).json().data.filter((e: { route: string }) => e.route === 'PUT /api/v1/tracking-plans/:key');
    assert.equal(changes.length, 2);
    assert.equal(changes[1].actor, made.engineer!.id);
    assert.deepEqual(changes[1].target, { key: 'web' });
    assert.deepEqual(changes[1].before, { version: 1, definition: { unplannedEvents: 'allow' } });
    assert.deepEqual(changes[1].after, { definition: { unplannedEvents: 'violation' } });
    const tokenMade = (await app.inject({ method: 'GET', url: '/api/v1/audit?action=change', headers: { authorization: bearer() } })).json().data.find((e: { route: string }) => e.route === 'POST /api/v1/tokens');
    assert.doesNotMatch(JSON.stringify(tokenMade), /tdm_/, 'secrets never reach the audit log');
    const exported = await app.inject({ method: 'GET', url: '/api/v1/audit/export', headers: { authorization: bearer() } });
    assert.match(String(exported.headers['content-type']), /^application\/x-ndjson/);
    assert.ok(exported.body.trim().split('\n').every((line) => typeof JSON.parse(line).id === 'number'));
    const db = new DatabaseSync(join(app.dataDir, 'tandem.db'));
    t.after(() => db.close());
    assert.throws(() => db.exec('UPDATE audit SET actor = NULL'), /append-only/);
    assert.throws(() => db.exec('DELETE FROM audit'), /append-only/);
  });
});

describe('PII masking', () => {
  test('without the pii permission every read of a profile or event shows personal data masked; with it, unmasked and audited', async (t) => {
    const app = await openTestApp(t);
    const { hashToken } = await import('../src/access/credentials.ts');
    app.stores.access.createToken('default', 'api', 'access', hashToken('tdm_access_masked_00000001'));
    app.stores.access.createToken('default', 'api-pii', 'access', hashToken('tdm_access_unmasked_000001'), true);
    const made = await tokens(app);
    const piiAnalyst = (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: 'dpo', role: 'analyst', pii: true } })).json();
    // A plan tags a custom field as personal data.
    await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer() }, payload: { definition: { unplannedEvents: 'allow', events: { 'Order Completed': { type: 'object', properties: { loyalty_card: { type: 'string', 'x-pii': 'card' } } } } } } });
    const source = (await app.inject({ method: 'GET', url: '/api/v1/sources', headers: { authorization: bearer() } })).json().data[0].id;
    await app.inject({ method: 'PUT', url: `/api/v1/sources/${source}/plan`, headers: { authorization: bearer() }, payload: { plan: 'web', enforcement: 'allow' } });
    await app.send('/v1/batch', {
      batch: [
        { type: 'identify', userId: 'ada@example.com', messageId: 'pii-1', traits: { email: 'ada@example.com', name: 'Ada Lovelace', phone: '+44 20 7946 0958', plan: 'pro' }, context: { ip: '203.0.113.7' } },
        { type: 'track', userId: 'ada@example.com', messageId: 'pii-2', event: 'Order Completed', properties: { total: 12, loyalty_card: 'LC-99887766', contact: 'ada@example.com' } },
        { type: 'group', userId: 'ada@example.com', groupId: 'acme', messageId: 'pii-3', traits: { name: 'Acme', owner_email: 'boss@acme.example' } },
      ],
    });
    await app.inject({ method: 'POST', url: '/api/v1/audiences', headers: { authorization: bearer() }, payload: { key: 'pros', text: 'traits.plan = "pro"' } });
    for (let i = 0; i < 200 && (await app.inject({ method: 'GET', url: '/api/v1/audiences/pros', headers: { authorization: bearer() } })).json().backfill.status !== 'done'; i++) await new Promise((r) => setTimeout(r, 10));

    const RAW = ['ada@example.com', 'Ada Lovelace', '7946 0958', '203.0.113.7', 'LC-99887766', 'boss@acme.example'];
    const profileApi = (token: string, path: string) => app.inject({ method: 'GET', url: `/v1/spaces/default/collections/${path}`, headers: { authorization: basic(token) } });
    const reads: Array<[string, () => Promise<{ statusCode: number; body: string }>]> = [
      ['Profile API traits', () => profileApi('tdm_access_masked_00000001', 'users/profiles/email:ada@example.com/traits?limit=50')],
      ['Profile API events', () => profileApi('tdm_access_masked_00000001', 'users/profiles/email:ada@example.com/events')],
      ['Profile API external ids', () => profileApi('tdm_access_masked_00000001', 'users/profiles/email:ada@example.com/external_ids')],
      ['Profile API account links', () => profileApi('tdm_access_masked_00000001', 'accounts/profiles/group_id:acme/links')],
      ['Profile API account traits', () => profileApi('tdm_access_masked_00000001', 'accounts/profiles/group_id:acme/traits')],
      ['event log (engineer)', () => app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization: bearer(made.engineer!.token) } })],
      ['identities (analyst)', () => app.inject({ method: 'GET', url: '/api/v1/profiles/email:ada@example.com/identities', headers: { authorization: bearer(made.analyst!.token) } })],
      ['audience events (marketer)', () => app.inject({ method: 'GET', url: '/api/v1/audience-events', headers: { authorization: bearer(made.marketer!.token) } })],
      ['audience preview (marketer)', () => app.inject({ method: 'POST', url: '/api/v1/audiences/preview', headers: { authorization: bearer(made.marketer!.token) }, payload: { key: 'p', text: 'traits.plan = "pro"' } })],
      ['violations sample (marketer)', () => app.inject({ method: 'GET', url: '/api/v1/violations', headers: { authorization: bearer(made.marketer!.token) } })],
    ];
    for (const [what, read] of reads) {
      const res = await read();
      assert.equal(res.statusCode, 200, `${what}: ${res.body}`);
      // The cursor echoes the identifier the caller asked by; everything else is stored data.
      const { cursor: _, ...body } = JSON.parse(res.body) as Record<string, unknown>;
      const shown = JSON.stringify(body);
      for (const raw of RAW) assert.ok(!shown.includes(raw), `${what} shows ${raw}: ${shown.slice(0, 300)}`);
    }
    const traits = (await profileApi('tdm_access_masked_00000001', 'users/profiles/email:ada@example.com/traits?limit=50')).json().traits;
    assert.deepEqual(traits, { email: 'a***@example.com', name: 'A***', phone: '***58', plan: 'pro' }, 'masked values keep what helps to recognise them');
    assert.equal((await profileApi('tdm_access_masked_00000001', 'accounts/profiles/group_id:acme/traits')).json().traits.name, 'Acme', "an account's name is not a person's");

    const unmasked = await profileApi('tdm_access_unmasked_000001', 'users/profiles/email:ada@example.com/traits?limit=50');
    assert.equal(unmasked.json().traits.email, 'ada@example.com');
    const events = await app.inject({ method: 'GET', url: '/api/v1/events?messageId=pii-2', headers: { authorization: bearer(piiAnalyst.token) } });
    assert.equal(events.json().data[0].payload.properties.loyalty_card, 'LC-99887766');
    await app.close(); // flushes the Profile API's read counts
    const db = new DatabaseSync(join(app.dataDir, 'tandem.db'), { readOnly: true });
    t.after(() => db.close());
    const audit = db.prepare("SELECT actor, route, target FROM audit WHERE action = 'read_pii'").all() as Array<{ actor: string; route: string; target: string }>;
    assert.ok(audit.some((e) => e.actor === piiAnalyst.id && e.route === 'GET /api/v1/events'), 'an unmasked read of the event log is audited');
    assert.ok(audit.some((e) => e.route.includes('/users/profiles/:id/traits') && JSON.parse(e.target).reads >= 1), 'Profile API reads are audited per token and minute');
  });
});
