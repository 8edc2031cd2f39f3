import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { BlockedDestination, checkUrl, guardedLookup, isPrivateAddress, parseAllowList } from '../src/activate/webhook.ts';
import { bearer, mid, openTestApp, tempDir, type TestApp } from './helpers.ts';

/** A webhook receiver on 127.0.0.1 that answers what `answer` says and records every request. */
async function receiver(t: TestContext) {
  const got: Array<{ headers: IncomingHttpHeaders; body: string; json: Record<string, any>; status: number }> = [];
  let answer: (n: number, json: Record<string, any>) => number = () => 200;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const json = JSON.parse(body);
      const status = answer(got.length + 1, json);
      got.push({ headers: { ...req.headers, 'x-received-at': String(Date.now()) }, body, json, status });
      res.writeHead(status, status === 429 ? { 'retry-after': '1' } : status === 302 ? { location: `http://127.0.0.1:${(server.address() as AddressInfo).port}/elsewhere` } : {}).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got, answer: (fn: (n: number, json: Record<string, any>) => number) => void (answer = fn) };
}

const ENV = { TANDEM_DESTINATION_ALLOW_HOSTS: '127.0.0.1', TANDEM_DELIVERY_RETRY_MS: '20', TANDEM_DELIVERY_MAX_ATTEMPTS: '4' };

async function until<T>(what: string, read: () => T | Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) assert.fail(`${what}: still ${JSON.stringify(v)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function token(app: TestApp, role: string, pii = false): Promise<string> {
  return (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: `${role}-${mid()}`, role, pii } })).json().token;
}

const api = (app: TestApp, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, as?: string, payload?: unknown) =>
  app.inject({ method, url, headers: { authorization: bearer(as) }, ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) });

async function audience(app: TestApp, key: string, text: string) {
  assert.equal((await api(app, 'POST', '/api/v1/audiences', undefined, { key, text })).statusCode, 201);
  await until(`audience ${key} built`, async () => (await api(app, 'GET', `/api/v1/audiences/${key}`)).json().backfill?.status, (s) => s === 'done');
}

const deliveries = async (app: TestApp, destination: string, query = '', as?: string) => (await api(app, 'GET', `/api/v1/destinations/${destination}/deliveries?limit=1000${query}`, as)).json().data as Array<Record<string, any>>;

function verify(secret: string, r: { headers: IncomingHttpHeaders; body: string }) {
  const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(r.headers['tandem-signature'])) ?? [];
  assert.ok(t && v1, `signature header: ${r.headers['tandem-signature']}`);
  assert.equal(v1, createHmac('sha256', secret).update(`${t}.${r.body}`).digest('hex'), 'the HMAC of "<t>.<body>" with the destination secret');
}

describe('the SSRF guard', () => {
  test('refuses addresses that are not public, IPv4 inside IPv6 included', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:a9fe:a9fe', '64:ff9b::10.0.0.1', '::ffff:0:7f00:1', '0:0:0:0:0:ffff:7f00:1', '::127.0.0.1', '64:ff9b:1::1', '2001:db8::1', 'not an ip']) {
      assert.equal(isPrivateAddress(a), true, a);
    }
    for (const a of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2a00:1450:4001::200e']) assert.equal(isPrivateAddress(a), false, a);
  });

  test('property: an IPv4 address and its IPv4-mapped IPv6 forms are judged alike', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
        const hex = `::ffff:${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
        assert.equal(isPrivateAddress(`::ffff:${v4}`), isPrivateAddress(v4));
        assert.equal(isPrivateAddress(hex), isPrivateAddress(v4), hex);
      }),
      { numRuns: 2000 },
    );
  });

  test('URLs: https only, no credentials, no private literals or local names, unless the operator allows the host', () => {
    const none = parseAllowList('');
    for (const url of ['http://hooks.example.com/x', 'https://127.0.0.1/x', 'https://[::1]/x', 'https://localhost/x', 'https://intranet/x', 'https://user:pw@hooks.example.com/x', 'ftp://hooks.example.com', 'not a url', 'https://169.254.169.254/latest/meta-data']) {
      assert.throws(() => checkUrl(url, none), BlockedDestination, url);
    }
    assert.equal(checkUrl('https://hooks.example.com/x?a=1', none).host, 'hooks.example.com');
    const allow = parseAllowList('127.0.0.1, *.internal.example, 10.0.0.0/8, hooks.local');
    for (const url of ['http://127.0.0.1:9/x', 'https://a.internal.example/x', 'http://10.2.3.4/x', 'http://hooks.local/x']) assert.ok(checkUrl(url, allow), url);
    assert.throws(() => checkUrl('http://192.168.0.1/x', allow));
  });

  test('a host name is checked on the addresses it resolves to, at every connection', async () => {
    const lookup = (allow: string, host: string) => new Promise<string>((resolve, reject) => guardedLookup(parseAllowList(allow))(host, {}, (err, address) => (err ? reject(err) : resolve(address as string))));
    await assert.rejects(lookup('', '127.0.0.1'), /not a public address/);
    assert.equal(await lookup('127.0.0.0/8', '127.0.0.1'), '127.0.0.1');
  });
});

describe('destinations and activations', () => {
  test('an audience goes to a webhook: members first, then entries and exits in order, signed, with the chosen traits and identifiers; no consent, no entry', async (t) => {
    const hook = await receiver(t);
    const app = await openTestApp(t, { env: { ...ENV, TANDEM_DELIVERY_MAX_ATTEMPTS: '12' } });
    const [engineer, marketer] = [await token(app, 'engineer'), await token(app, 'marketer')];
    await app.send('/v1/batch', {
      batch: [
        { type: 'identify', userId: 'ada', messageId: mid(), traits: { plan: 'pro', email: 'ada@example.com', seats: 5 }, context: { consent: { categoryPreferences: { Advertising: true } } } },
        { type: 'identify', userId: 'bob', messageId: mid(), traits: { plan: 'pro' }, context: { consent: { categoryPreferences: { Advertising: false } } } },
        { type: 'identify', userId: 'cy', messageId: mid(), traits: { plan: 'free' }, context: { consent: { categoryPreferences: { Advertising: true } } } },
      ],
    });
    await audience(app, 'pros', 'traits.plan = "pro"');

    assert.equal((await api(app, 'POST', '/api/v1/destinations', marketer, { name: 'Ads', url: hook.url })).statusCode, 403, 'marketers do not add destinations');
    const refused = await api(app, 'POST', '/api/v1/destinations', engineer, { name: 'Ads', url: 'http://169.254.169.254/latest' });
    assert.equal(refused.statusCode, 400);
    assert.equal(refused.json().error.code, 'invalid_destination');
    const made = await api(app, 'POST', '/api/v1/destinations', engineer, { name: 'Ads', url: hook.url, purposes: ['Advertising'] });
    assert.equal(made.statusCode, 201, made.body);
    const destination = made.json();
    assert.match(destination.secret, /^whsec_/);
    assert.equal((await api(app, 'POST', '/api/v1/destinations', engineer, { name: 'Ads', url: hook.url })).json().error.code, 'already_exists');
    assert.equal((await api(app, 'GET', '/api/v1/destinations', marketer)).json().data[0].secret, undefined, 'listings never show the secret');
    assert.equal((await api(app, 'GET', `/api/v1/destinations/${destination.id}`, marketer)).json().url, `${new URL(hook.url).origin}/…`, "marketers see where, not the URL's path and query");
    assert.equal((await api(app, 'GET', '/api/v1/destinations', engineer)).json().data[0].url, hook.url);

    const activation = await api(app, 'POST', '/api/v1/activations', marketer, { destination: 'Ads', audience: 'pros', traits: ['plan', 'seats'] });
    assert.equal(activation.statusCode, 201, activation.body);
    await until('ada entered', () => hook.got.length, (n) => n >= 1);
    const first = hook.got[0]!;
    verify(destination.secret, first);
    assert.equal(first.headers['tandem-event'], 'audience_entered');
    assert.equal(first.headers['tandem-delivery'], first.json.id);
    assert.deepEqual(first.json.profile.identifiers, { user_id: ['ada'] });
    assert.deepEqual(first.json.profile.traits, { plan: 'pro', seats: 5 }, 'only the chosen traits');
    assert.deepEqual({ type: first.json.type, audience: first.json.audience.key }, { type: 'audience_entered', audience: 'pros' });
    const suppressed = await until('bob suppressed', () => deliveries(app, destination.id, '&status=suppressed'), (d) => d.length === 1);
    assert.match(suppressed[0]!.last_error, /no consent for Advertising/);

    // Cy enters, Ada leaves and comes back: each profile's changes arrive in order, even when
    // the exit fails until after the re-entry is queued.
    let holdExit = true;
    hook.answer((_n, json) => (holdExit && json.type === 'audience_exited' ? 503 : 200));
    await app.send('/v1/identify', { userId: 'ada', messageId: mid(), traits: { plan: 'free' } });
    await app.send('/v1/identify', { userId: 'cy', messageId: mid(), traits: { plan: 'pro' } });
    await until('the exit retried', () => hook.got.filter((r) => r.status === 503).length, (n) => n >= 1);
    await app.send('/v1/identify', { userId: 'ada', messageId: mid(), traits: { plan: 'pro' } });
    await until('the re-entry queued', () => deliveries(app, destination.id, '&status=pending'), (d) => d.some((x) => x.type === 'audience_entered'));
    await new Promise((r) => setTimeout(r, 300));
    holdExit = false;
    await until('four deliveries', () => hook.got.filter((r) => r.status === 200).length, (n) => n >= 4);
    await app.deliverer.idle();
    const seen = hook.got.filter((r) => r.status === 200).map((r) => `${r.json.profile.identifiers.user_id[0]} ${r.json.type}`);
    assert.deepEqual(seen.filter((s) => s.startsWith('ada')), ['ada audience_entered', 'ada audience_exited', 'ada audience_entered']);
    assert.ok(seen.includes('cy audience_entered'));
    for (const r of hook.got) verify(destination.secret, r);

    // Bob leaves: the destination never had him, so nothing is sent.
    await app.send('/v1/identify', { userId: 'bob', messageId: mid(), traits: { plan: 'free' } });
    await until('bob skipped', () => deliveries(app, destination.id, '&status=skipped'), (d) => d.length === 1);
    assert.ok(!hook.got.some((r) => r.json.profile.identifiers.user_id?.[0] === 'bob'));
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /tandem_deliveries_total\{outcome="delivered"\} 4/);
    assert.match(metrics, /tandem_deliveries_pending 0/);
  });

  test('a first sync bigger than a page, with members leaving, joining and coming back meanwhile, ends with the destination holding exactly the audience', async (t) => {
    const hook = await receiver(t);
    const app = await openTestApp(t, { env: ENV });
    const identify = (from: number, to: number, plan: string) => app.send('/v1/batch', { batch: Array.from({ length: to - from }, (_, i) => ({ type: 'identify', userId: `u${from + i}`, messageId: mid(), traits: { plan } })) });
    for (let i = 1000; i < 5000; i += 500) await identify(i, i + 500, 'pro');
    await identify(0, 1000, 'pro');
    await audience(app, 'pros', 'traits.plan = "pro"');
    const destination = (await api(app, 'POST', '/api/v1/destinations', undefined, { name: 'sync', url: hook.url })).json();
    assert.equal((await api(app, 'POST', '/api/v1/activations', undefined, { destination: destination.id, audience: 'pros' })).statusCode, 201);
    // While the first sync pages through the members (500 a turn):
    await identify(0, 100, 'free');
    await identify(5000, 5100, 'pro');
    await identify(100, 150, 'free');
    await identify(100, 150, 'pro');
    await until('the members and the changes delivered', () => hook.got.length, (n) => n >= 5000, 20_000);
    await until('nothing pending', async () => (await api(app, 'GET', `/api/v1/destinations/${destination.id}`)).json().deliveries.pending, (n) => n === 0, 20_000);
    await app.deliverer.idle();
    const seen = new Map<string, string[]>();
    for (const r of hook.got) seen.set(r.json.profile.identifiers.user_id[0], [...(seen.get(r.json.profile.identifiers.user_id[0]) ?? []), r.json.type]);
    for (let i = 0; i < 5100; i++) {
      const history = seen.get(`u${i}`) ?? [];
      history.forEach((type, k) => assert.equal(type, k % 2 === 0 ? 'audience_entered' : 'audience_exited', `u${i}: ${history.join(', ')}`));
      assert.equal(history.at(-1) === 'audience_entered', i >= 100, `u${i} ends ${i >= 100 ? 'in' : 'out'}: ${history.join(', ')}`);
    }
  });

  test('consent is followed: a withdrawal removes the profile from the destination, a grant adds a member that was held back', async (t) => {
    const hook = await receiver(t);
    const app = await openTestApp(t, { env: ENV });
    const consent = (userId: string, granted: boolean | undefined, traits: Record<string, unknown> = {}) =>
      app.send('/v1/identify', { userId, messageId: mid(), traits, ...(granted === undefined ? {} : { context: { consent: { categoryPreferences: { Advertising: granted } } } }) });
    await consent('ada', true, { plan: 'pro' });
    await consent('bob', undefined, { plan: 'pro' });
    await consent('cy', undefined, { plan: 'free' });
    await audience(app, 'pros', 'traits.plan = "pro"');
    const destination = (await api(app, 'POST', '/api/v1/destinations', undefined, { name: 'Ads', url: hook.url, purposes: ['Advertising'] })).json();
    await api(app, 'POST', '/api/v1/activations', undefined, { destination: destination.id, audience: 'pros' });
    await until('ada in, bob held back', async () => [hook.got.length, (await deliveries(app, destination.id, '&status=suppressed')).length], ([n, s]) => n === 1 && s === 1);
    await consent('ada', false);
    await until('ada out', () => hook.got.length, (n) => n === 2);
    await consent('bob', true);
    await consent('cy', true);
    await consent('ada', true);
    await until('bob and ada in', () => hook.got.length, (n) => n === 4);
    await new Promise((r) => setTimeout(r, 200));
    await app.deliverer.idle();
    const seen = (user: string) => hook.got.filter((r) => r.json.profile.identifiers.user_id[0] === user).map((r) => r.json.type);
    assert.deepEqual(seen('ada'), ['audience_entered', 'audience_exited', 'audience_entered']);
    assert.deepEqual(seen('bob'), ['audience_entered']);
    assert.deepEqual(seen('cy'), [], 'not a member: consent alone sends nothing');
    assert.match(hook.got[1]!.json.cause, /^consent:/);
  });

  test('failures are retried with backoff, refusals and exhausted retries become dead letters that can be sent again; the queue outlives a restart', async (t) => {
    const hook = await receiver(t);
    const dataDir = tempDir(t);
    let app = await openTestApp(t, { env: ENV, dataDir });
    await app.send('/v1/identify', { userId: 'ada', messageId: mid(), traits: { plan: 'pro', email: 'ada@example.com' } });
    await audience(app, 'pros', 'traits.plan = "pro"');
    const destination = (await api(app, 'POST', '/api/v1/destinations', undefined, { name: 'CRM', url: hook.url })).json();

    // 503, 503, then 200: delivered on the third attempt.
    hook.answer((n) => (n <= 2 ? 503 : 200));
    await api(app, 'POST', '/api/v1/activations', undefined, { destination: destination.id, audience: 'pros', identifiers: ['user_id', 'email'], traits: ['email'] });
    const done = await until('delivered after retries', () => deliveries(app, destination.id), (d) => d[0]?.status === 'delivered');
    assert.equal(done[0]!.attempts, 3);
    assert.equal(hook.got.length, 3);
    assert.equal(hook.got[0]!.body, hook.got[2]!.body, 'a retry sends the same body');
    assert.deepEqual(hook.got[2]!.json.profile.identifiers, { user_id: ['ada'], email: ['ada@example.com'] });

    // A 400 is not retried; a 500 every time gives up after the attempts allowed.
    hook.answer(() => 400);
    await app.send('/v1/identify', { userId: 'bea', messageId: mid(), traits: { plan: 'pro' } });
    await until('dead at once', () => deliveries(app, destination.id, '&status=dead'), (d) => d.length === 1 && d[0]!.attempts === 1);
    hook.answer(() => 500);
    await app.send('/v1/identify', { userId: 'cid', messageId: mid(), traits: { plan: 'pro' } });
    const dead = await until('dead after 4 attempts', () => deliveries(app, destination.id, '&status=dead'), (d) => d.length === 2);
    assert.equal(dead[0]!.attempts, 4);
    assert.match(dead[0]!.last_error, /gave up after 4 attempts/);
    assert.equal(dead[0]!.last_status, 500);

    // Masked for a marketer, as they are for every read without the pii permission.
    const masked = await deliveries(app, destination.id, '&status=delivered', await token(app, 'marketer'));
    assert.deepEqual(masked[0]!.body.profile.identifiers.email, ['a***@example.com']);
    assert.deepEqual(masked[0]!.body.profile.traits, { email: 'a***@example.com' });

    // Retried while the receiver is down, then the process stops: the queue is still there after a restart.
    hook.answer(() => 503);
    assert.equal((await api(app, 'POST', `/api/v1/destinations/${destination.id}/deliveries/retry`, undefined, {})).json().retried, 2);
    await app.close();
    hook.answer(() => 200);
    app = await openTestApp(t, { env: ENV, dataDir });
    await until('dead letters delivered after the restart', () => deliveries(app, destination.id, '&status=delivered'), (d) => d.length === 3, 15_000);
    const ids = new Set(hook.got.filter((r) => r.json.profile.identifiers.user_id[0] !== 'ada').map((r) => r.json.profile.identifiers.user_id[0]));
    assert.deepEqual([...ids].sort(), ['bea', 'cid']);
  });

  test('a disabled destination holds its deliveries; a deleted activation cancels them; another workspace sees none of it', async (t) => {
    const hook = await receiver(t);
    const app = await openTestApp(t, { env: ENV });
    await app.send('/v1/identify', { userId: 'ada', messageId: mid(), traits: { plan: 'pro' } });
    await audience(app, 'pros', 'traits.plan = "pro"');
    const destination = (await api(app, 'POST', '/api/v1/destinations', undefined, { name: 'Paused', url: hook.url, enabled: false })).json();
    const activation = (await api(app, 'POST', '/api/v1/activations', undefined, { destination: destination.id, audience: 'pros' })).json();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hook.got.length, 0, 'nothing goes to a disabled destination');
    assert.equal((await deliveries(app, destination.id, '&status=pending')).length, 1);
    assert.equal((await api(app, 'PATCH', `/api/v1/destinations/${destination.id}`, undefined, { enabled: true })).statusCode, 200);
    await until('sent once enabled', () => hook.got.length, (n) => n === 1);

    await api(app, 'PATCH', `/api/v1/destinations/${destination.id}`, undefined, { enabled: false });
    await app.send('/v1/identify', { userId: 'bea', messageId: mid(), traits: { plan: 'pro' } });
    await until('queued', () => deliveries(app, destination.id, '&status=pending'), (d) => d.length === 1);
    assert.equal((await api(app, 'DELETE', `/api/v1/activations/${activation.id}`)).statusCode, 204);
    assert.equal((await deliveries(app, destination.id, '&status=cancelled')).length, 1);

    app.stores.access.ensureWorkspace('acme', 'Acme');
    const { hashToken } = await import('../src/access/credentials.ts');
    app.stores.access.createToken('acme', 'acme owner', 'owner', hashToken('tdm_acme_owner_token_0000002'));
    const acme = 'tdm_acme_owner_token_0000002';
    for (const [method, url] of [['GET', `/api/v1/destinations/${destination.id}`], ['PATCH', `/api/v1/destinations/${destination.id}`], ['DELETE', `/api/v1/destinations/${destination.id}`], ['GET', `/api/v1/destinations/${destination.id}/deliveries`], ['POST', `/api/v1/destinations/${destination.id}/secret`]] as const) {
      assert.equal((await api(app, method, url, acme, method === 'PATCH' ? {} : undefined)).statusCode, 404, `${method} ${url}`);
    }
    assert.deepEqual((await api(app, 'GET', '/api/v1/destinations', acme)).json().data, []);
    assert.equal((await api(app, 'POST', '/api/v1/activations', acme, { destination: destination.id, audience: 'pros' })).statusCode, 404);
  });
});

describe('event streams', () => {
  test('events go to a destination as they are applied: chosen types and names, accepted or flagged only, in order per identity, with consent; engineers set them up', async (t) => {
    const [warehouse, ads] = [await receiver(t), await receiver(t)];
    const app = await openTestApp(t, { env: ENV });
    const marketer = await token(app, 'marketer');
    await app.send('/v1/track', { userId: 'ada', event: 'Order Completed', messageId: 'before-the-stream', properties: { total: 1 } });
    const w = (await api(app, 'POST', '/api/v1/destinations', undefined, { name: 'Warehouse', url: warehouse.url })).json();
    const a = (await api(app, 'POST', '/api/v1/destinations', undefined, { name: 'Ads', url: ads.url, purposes: ['Advertising'] })).json();
    assert.equal((await api(app, 'POST', '/api/v1/event-streams', marketer, { destination: 'Warehouse' })).statusCode, 403, 'marketers do not forward whole events');
    assert.equal((await api(app, 'POST', '/api/v1/event-streams', undefined, { destination: 'Warehouse', source: 'nope' })).statusCode, 404);
    const stream = await api(app, 'POST', '/api/v1/event-streams', undefined, { destination: 'Warehouse', types: ['identify', 'track'], events: ['Order Completed'] });
    assert.equal(stream.statusCode, 201, stream.body);
    const all = (await api(app, 'POST', '/api/v1/event-streams', undefined, { destination: 'Ads', source: 'default' })).json();
    await app.send('/v1/batch', {
      context: { app: { name: 'shop' } },
      batch: [
        { type: 'identify', userId: 'ada', messageId: 'e1', traits: { email: 'ada@example.com' }, context: { consent: { categoryPreferences: { Advertising: true } } } },
        { type: 'track', userId: 'ada', messageId: 'e2', event: 'Order Completed', properties: { total: 42 } },
        { type: 'track', userId: 'ada', messageId: 'e3', event: 'Product Viewed' },
        { type: 'page', userId: 'ada', messageId: 'e4', name: 'Home' },
        { type: 'track', userId: 'bob', messageId: 'e5', event: 'Order Completed', context: { consent: { categoryPreferences: { Advertising: false } } } },
        { type: 'track', userId: 'cy', messageId: 'e6' },
      ],
    });
    await until('the warehouse has its three', () => warehouse.got.length, (n) => n === 3);
    await until('ads has ada’s four', () => ads.got.length, (n) => n === 4);
    await app.deliverer.idle();
    const ids = warehouse.got.map((r) => r.json.event.messageId as string);
    assert.deepEqual([...ids].sort(), ['e1', 'e2', 'e5'], 'no Product Viewed, no page, nothing quarantined, nothing from before');
    assert.ok(ids.indexOf('e1') < ids.indexOf('e2'), "ada's in order");
    for (const r of warehouse.got) verify(w.secret, r);
    const order = warehouse.got.find((r) => r.json.event.messageId === 'e2')!.json;
    assert.equal(order.type, 'event');
    assert.deepEqual({ total: order.event.properties.total, app: order.event.context.app.name, type: order.event.type }, { total: 42, app: 'shop', type: 'track' });
    assert.ok(order.event.receivedAt && order.eventId && order.sourceId, 'the event as the event log shows it');
    assert.deepEqual(ads.got.map((r) => r.json.event.messageId), ['e1', 'e2', 'e3', 'e4'], 'one identity: in log order');
    assert.equal((await deliveries(app, a.id, '&status=suppressed')).length, 1, "bob's event: no consent");
    const masked = await deliveries(app, w.id, '&status=delivered', marketer);
    assert.equal(masked.find((d) => d.body.event.messageId === 'e1')!.body.event.traits.email, 'a***@example.com');

    assert.equal((await api(app, 'DELETE', `/api/v1/event-streams/${all.id}`)).statusCode, 204);
    await app.send('/v1/track', { userId: 'ada', event: 'Order Completed', messageId: 'e7' });
    await until('the warehouse has the next one', () => warehouse.got.length, (n) => n === 4);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(ads.got.length, 4, 'a deleted stream sends nothing more');
    // A plan change to a forwarded event names the destination that receives it.
    const plan = (await api(app, 'POST', '/api/v1/change-requests', marketer, { kind: 'tracking_plan', target: 'web', definition: { events: { 'Order Completed': { type: 'object' } } } })).json();
    assert.deepEqual(plan.impact.destinations, ['Warehouse']);
    const other = (await api(app, 'POST', '/api/v1/change-requests', marketer, { kind: 'tracking_plan', target: 'web', definition: { events: { 'Cart Viewed': { type: 'object' } } } })).json();
    assert.deepEqual(other.impact.destinations, []);
  });
});

describe('change requests for destinations', () => {
  test('a marketer proposes a destination and an activation that sends personal data; an engineer approves; each shows its diff and impact', async (t) => {
    const hook = await receiver(t);
    const app = await openTestApp(t, { env: ENV });
    const [engineer, marketer] = [await token(app, 'engineer'), await token(app, 'marketer')];
    await app.send('/v1/identify', { userId: 'ada', messageId: mid(), traits: { plan: 'pro', email: 'ada@example.com' } });
    await audience(app, 'pros', 'traits.plan = "pro"');

    const proposed = await api(app, 'POST', '/api/v1/change-requests', marketer, { kind: 'destination', definition: { name: 'Ads', url: hook.url, purposes: ['Advertising'], consentMode: 'opt_out' }, comment: 'for retargeting' });
    assert.equal(proposed.statusCode, 201, proposed.body);
    const request = proposed.json();
    assert.equal(request.status, 'open');
    assert.deepEqual(request.diff.destinations.added, [{ name: 'Ads', url: hook.url, purposes: ['Advertising'], consentMode: 'opt_out' }]);
    assert.deepEqual(request.impact.destinations, ['Ads']);
    assert.equal((await api(app, 'GET', '/api/v1/destinations', marketer)).json().data.length, 0, 'nothing before the review');
    const badUrl = await api(app, 'POST', '/api/v1/change-requests', marketer, { kind: 'destination', definition: { name: 'Meta', url: 'https://10.0.0.1/x' } });
    assert.equal(badUrl.json().error.code, 'invalid_destination', 'the guard applies to proposals too');
    const approved = (await api(app, 'POST', `/api/v1/change-requests/${request.id}/approve`, engineer, { comment: 'ok' })).json();
    assert.equal(approved.status, 'approved');
    const destination = (await api(app, 'GET', `/api/v1/destinations/${approved.applied_id}`, marketer)).json();
    assert.deepEqual({ name: destination.name, consent_mode: destination.consent_mode }, { name: 'Ads', consent_mode: 'opt_out' });

    // Personal data to a destination: refused directly, proposed, approved.
    const direct = await api(app, 'POST', '/api/v1/activations', marketer, { destination: 'Ads', audience: 'pros', traits: ['plan', 'email'] });
    assert.equal(direct.statusCode, 403);
    assert.equal(direct.json().error.code, 'approval_required');
    const withoutPii = await api(app, 'POST', '/api/v1/activations', marketer, { destination: 'Ads', audience: 'pros', traits: ['plan'] });
    assert.equal(withoutPii.statusCode, 201, 'no personal data, no review');
    assert.equal((await api(app, 'DELETE', `/api/v1/activations/${withoutPii.json().id}`, marketer)).statusCode, 204);
    const pii = (await api(app, 'POST', '/api/v1/change-requests', marketer, { kind: 'activation', definition: { destination: 'Ads', audience: 'pros', traits: ['plan', 'email'], identifiers: ['user_id', 'phone'] } })).json();
    assert.equal(pii.status, 'open');
    assert.equal(pii.target, 'Ads/pros');
    assert.deepEqual(pii.impact.pii.added, ['traits.email (email)', 'identifiers.phone (phone)']);
    assert.deepEqual(pii.impact.audiences, ['pros']);
    assert.deepEqual(pii.impact.destinations, ['Ads']);
    assert.equal(pii.impact.volume_7d.pros, 1, "the audience's entries and exits over the week");
    assert.equal((await api(app, 'POST', `/api/v1/change-requests/${pii.id}/approve`, marketer, {})).statusCode, 403);
    const done = (await api(app, 'POST', `/api/v1/change-requests/${pii.id}/approve`, engineer, {})).json();
    assert.match(done.applied_id, /^act_/);
    await until('the approved activation delivers', () => hook.got.length, (n) => n === 1);
    assert.deepEqual(hook.got[0]!.json.profile.traits, { plan: 'pro', email: 'ada@example.com' });

    // Adding personal data to an activation that exists: refused directly, reviewed as a change of its fields.
    const act = done.applied_id as string;
    const patched = await api(app, 'PATCH', `/api/v1/activations/${act}`, marketer, { traits: ['plan', 'email', 'first_name'] });
    assert.equal(patched.json().error?.code, 'approval_required', patched.body);
    assert.deepEqual((await api(app, 'PATCH', `/api/v1/activations/${act}`, marketer, { traits: ['email'] })).json().traits, ['email'], 'taking a trait away needs no review');
    const fields = (await api(app, 'POST', '/api/v1/change-requests', marketer, { kind: 'activation_fields', target: act, definition: { traits: ['email', 'first_name', 'plan'] } })).json();
    assert.equal(fields.status, 'open');
    assert.deepEqual(fields.diff.traits, { added: ['first_name', 'plan'], removed: [] });
    assert.deepEqual(fields.impact.pii, { added: ['traits.first_name (name)'], removed: [] });
    assert.deepEqual(fields.impact.destinations, ['Ads']);
    const stale = (await api(app, 'POST', '/api/v1/change-requests', marketer, { kind: 'activation_fields', target: act, definition: { traits: ['email', 'phone'] } })).json();
    assert.equal((await api(app, 'POST', `/api/v1/change-requests/${fields.id}/approve`, engineer, {})).json().status, 'approved');
    assert.deepEqual((await api(app, 'GET', `/api/v1/activations/${act}`, marketer)).json().traits, ['email', 'first_name', 'plan']);
    assert.equal((await api(app, 'POST', `/api/v1/change-requests/${stale.id}/approve`, engineer, {})).json().error.code, 'stale_change', 'made on fields that changed since');

    // A tracking plan change that touches the audience's traits names the destination in its impact.
    const plan = (await api(app, 'POST', '/api/v1/change-requests', marketer, { kind: 'tracking_plan', target: 'web', definition: { identify: { type: 'object', properties: { plan: { type: 'string' } } } } })).json();
    assert.deepEqual(plan.impact.destinations, ['Ads']);

    // Review switched off for personal data: the marketer's activation applies at once.
    await api(app, 'PUT', '/api/v1/governance/settings', undefined, { approvalRequired: { pii_to_destination: false } });
    assert.deepEqual((await api(app, 'GET', '/api/v1/governance/settings', marketer)).json().approvalRequired, { tracking_plan: true, destination: true, pii_to_destination: false });
    await audience(app, 'everyone', 'traits.plan exists');
    assert.equal((await api(app, 'POST', '/api/v1/activations', marketer, { destination: 'Ads', audience: 'everyone', traits: ['email'] })).statusCode, 201);
  });
});

describe('hostile and failing destinations', () => {
  test('webhook URLs that reach this machine or private networks are refused in every spelling; the canary hears nothing', async (t) => {
    const canary = await receiver(t);
    const port = new URL(canary.url).port;
    const app = await openTestApp(t);
    for (const url of [
      `https://127.0.0.1:${port}/`, `http://127.0.0.1:${port}/`, `https://localhost:${port}/`, `https://[::1]:${port}/`, `https://[::ffff:127.0.0.1]:${port}/`,
      `https://2130706433:${port}/`, `https://0177.0.0.1:${port}/`, `https://0x7f.1:${port}/`, `https://0.0.0.0:${port}/`, 'https://169.254.169.254/latest/meta-data/', 'https://10.0.0.1/',
      'https://192.168.1.1/', 'https://[fd00::1]/', 'file:///etc/passwd', `gopher://127.0.0.1:${port}/`,
    ]) {
      const res = await api(app, 'POST', '/api/v1/destinations', undefined, { name: `canary ${url}`, url });
      assert.equal(res.statusCode, 400, url);
      assert.equal(res.json().error.code, 'invalid_destination', url);
    }
    const ok = (await api(app, 'POST', '/api/v1/destinations', undefined, { name: 'public', url: 'https://hooks.example.com/x' })).json();
    assert.equal((await api(app, 'PATCH', `/api/v1/destinations/${ok.id}`, undefined, { url: `https://127.0.0.1:${port}/` })).json().error.code, 'invalid_destination');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(canary.got.length, 0);
  });

  test('a redirect is not followed; 429 waits for Retry-After; a destination that never answers or answers 50 MB does not hold up another', async (t) => {
    const canary = await receiver(t);
    const good = await receiver(t);
    const limited = await receiver(t);
    const redirecting = await receiver(t);
    // Answers nothing, ever; and one that answers 200 with a 50 MB body.
    const hanging = createServer(() => undefined);
    let streamed = 0;
    const flooding = createServer((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(1024 * 1024);
      const more = () => {
        while (streamed < 50 * 1024 * 1024 && res.write(chunk)) streamed += chunk.length;
        if (streamed < 50 * 1024 * 1024) res.once('drain', more);
        else res.end();
      };
      res.on('error', () => undefined);
      more();
    });
    for (const s of [hanging, flooding]) {
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      t.after(() => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); }));
    }
    const urlOf = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/hook`;
    const app = await openTestApp(t, { env: { ...ENV, TANDEM_DELIVERY_TIMEOUT_MS: '300', TANDEM_DELIVERY_MAX_ATTEMPTS: '50', TANDEM_DELIVERY_CONCURRENCY: '2' } });
    redirecting.answer(() => 302);
    limited.answer((n) => (n === 1 ? 429 : 200));
    await app.send('/v1/batch', { batch: ['a', 'b', 'c'].map((userId) => ({ type: 'identify', userId, messageId: mid(), traits: { plan: 'pro' } })) });
    await audience(app, 'pros', 'traits.plan = "pro"');
    const made: Record<string, string> = {};
    for (const [name, url] of [['hanging', urlOf(hanging)], ['flooding', urlOf(flooding)], ['redirecting', redirecting.url], ['limited', limited.url], ['good', good.url]] as const) {
      made[name] = (await api(app, 'POST', '/api/v1/destinations', undefined, { name, url })).json().id;
      await api(app, 'POST', '/api/v1/activations', undefined, { destination: made[name], audience: 'pros' });
    }
    await until('the good destination has all three', () => good.got.length, (n) => n === 3, 5_000);
    await until('the flood is cut short and counted delivered', () => deliveries(app, made.flooding!, '&status=delivered'), (d) => d.length === 3);
    assert.ok(streamed < 50 * 1024 * 1024, `read ${streamed} bytes of the 50 MB answer`);
    const redirected = await until('redirects are dead letters', () => deliveries(app, made.redirecting!, '&status=dead'), (d) => d.length === 3);
    assert.match(redirected[0]!.last_error, /HTTP 302: not retried/);
    const hung = await until('the silent one is retried', () => deliveries(app, made.hanging!, '&status=pending'), (d) => d.length === 3 && d.some((x) => x.attempts >= 2));
    assert.match(hung.find((x) => x.attempts >= 1)!.last_error, /no answer within 300 ms/);
    await until('429 then delivered', () => deliveries(app, made.limited!, '&status=delivered'), (d) => d.length === 3);
    const firstTry = limited.got[0]!;
    const again = limited.got.find((r, i) => i > 0 && r.json.id === firstTry.json.id)!;
    const gap = Number(again.headers['x-received-at']) - Number(firstTry.headers['x-received-at']);
    assert.ok(gap >= 900, `Retry-After: 1 was honoured (${gap} ms; the backoff alone is ~20 ms)`);
    assert.equal(canary.got.length, 0);
    await app.close();
  });
});
