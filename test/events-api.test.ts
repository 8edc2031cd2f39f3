import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { hashToken } from '../src/access/credentials.ts';
import { ADMIN_TOKEN, bearer, mid, openTestApp, trackEvent } from './helpers.ts';

describe('GET /api/v1/events', () => {
  test('filters by messageId, userId, anonymousId, type and status, newest first', async (t) => {
    const app = await openTestApp(t);
    await app.send('/v1/batch', {
      batch: [
        trackEvent({ userId: 'alice', messageId: 'a1' }),
        { type: 'identify', userId: 'alice', messageId: 'a2', traits: { plan: 'pro' } },
        { type: 'page', anonymousId: 'anon-7', messageId: 'p1' },
        trackEvent({ userId: 'bob', messageId: 'b1', timestamp: 'soon' }),
        { type: 'track', userId: 'bob', messageId: 'q1' },
      ],
    });
    await app.send('/v1/track', trackEvent({ userId: 'alice', messageId: 'a3' }));
    const ids = async (q: string) => (await app.events(q)).map((e) => e.messageId);
    assert.deepEqual(await ids(''), ['a3', 'q1', 'b1', 'p1', 'a2', 'a1'], 'newest first, every status but duplicates');
    assert.deepEqual(await ids('userId=alice'), ['a3', 'a2', 'a1']);
    assert.deepEqual(await ids('anonymousId=anon-7'), ['p1']);
    assert.deepEqual(await ids('type=identify'), ['a2']);
    assert.deepEqual(await ids('status=flagged'), ['b1']);
    assert.deepEqual(await ids('status=quarantined'), ['q1']);
    assert.deepEqual(await ids('messageId=a2'), ['a2']);
    assert.deepEqual(await ids('userId=bob&status=accepted'), []);
  });

  test('cursor pagination walks every event exactly once', async (t) => {
    const app = await openTestApp(t);
    const sent: string[] = [];
    for (let r = 0; r < 7; r++) {
      const batch = Array.from({ length: 9 }, () => trackEvent());
      sent.push(...batch.map((e) => e.messageId as string));
      await app.send('/v1/batch', { batch });
    }
    const seen: string[] = [];
    let url: string | null = '/api/v1/events?limit=4';
    let pages = 0;
    while (url) {
      const res = await app.inject({ method: 'GET', url, headers: { authorization: bearer() } });
      assert.equal(res.statusCode, 200);
      const body = res.json();
      seen.push(...body.data.map((e: { messageId: string }) => e.messageId));
      assert.equal(body.cursor.has_more, body.cursor.next !== null);
      url = body.cursor.url;
      pages++;
    }
    assert.deepEqual(seen, sent.reverse());
    assert.equal(pages, Math.ceil(63 / 4));
  });

  test('bad queries, bad cursors and missing or wrong tokens get the admin error shape', async (t) => {
    const app = await openTestApp(t);
    const get = (url: string, headers: Record<string, string> = { authorization: bearer() }) => app.inject({ method: 'GET', url, headers });
    for (const [url, code] of [['/api/v1/events?limit=0', 'invalid_request'], ['/api/v1/events?limit=abc', 'invalid_request'], ['/api/v1/events?status=lost', 'invalid_request'], ['/api/v1/events?cursor=%%%', 'invalid_cursor'], ['/api/v1/events?cursor=bm9wZQ', 'invalid_cursor']] as const) {
      const res = await get(url);
      assert.equal(res.statusCode, 400, url);
      assert.deepEqual(Object.keys(res.json()), ['error']);
      assert.equal(res.json().error.code, code);
    }
    for (const authorization of ['', 'Bearer', 'Bearer tdm_wrong_token_value_1234', 'Basic abc', `bearer ${ADMIN_TOKEN}`, `Bearer ${ADMIN_TOKEN} extra`]) {
      const res = await get('/api/v1/events', { authorization });
      assert.equal(res.statusCode, 401, authorization);
      assert.equal(res.json().error.code, 'unauthorized');
    }
  });

  test('a marketer token is refused (403) until PII masking exists; an analyst may read', async (t) => {
    const app = await openTestApp(t);
    const create = async (role: string) => (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: role, role } })).json().token;
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization: bearer(await create('marketer')) } })).statusCode, 403);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization: bearer(await create('analyst')) } })).statusCode, 200);
  });

  test('another workspace never sees these events', async (t) => {
    const app = await openTestApp(t);
    await app.send('/v1/track', trackEvent({ messageId: 'mine' }));
    app.stores.access.ensureWorkspace('acme', 'Acme');
    app.stores.access.createToken('acme', 'o', 'owner', hashToken('tdm_acme_token_000000000001'));
    const res = await app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization: bearer('tdm_acme_token_000000000001') } });
    assert.deepEqual(res.json().data, []);
  });

  test('cross-origin browser calls to admin routes are refused; same-origin calls pass', async (t) => {
    const app = await openTestApp(t);
    const res = await app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization: bearer(), origin: 'https://evil.example' } });
    assert.equal(res.statusCode, 403);
    assert.equal(res.json().error.code, 'cross_origin_forbidden');
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    const same = await app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization: bearer(), origin: 'http://localhost:80', host: 'localhost:80' } });
    assert.equal(same.statusCode, 200);
  });

  test('revoking a token takes effect at once', async (t) => {
    const app = await openTestApp(t);
    const created = (await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer() }, payload: { name: 'ci', role: 'engineer' } })).json();
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization: bearer(created.token) } })).statusCode, 200);
    assert.equal((await app.inject({ method: 'DELETE', url: `/api/v1/tokens/${created.id}`, headers: { authorization: bearer() } })).statusCode, 204);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization: bearer(created.token) } })).statusCode, 401);
    const list = (await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer() } })).json().data;
    assert.ok(list.every((tok: Record<string, unknown>) => tok.token === undefined && tok.token_hash === undefined), 'secrets are never listed');
  });
});

describe('GET /api/v1/events/stream', () => {
  test('streams newly committed events of the workspace as Server-Sent Events, with filters', async (t) => {
    const app = await openTestApp(t);
    const address = await app.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = new URL(address);
    const received: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/v1/events/stream?type=track', headers: { authorization: bearer() } }, (res) => {
        assert.equal(res.statusCode, 200);
        assert.match(String(res.headers['content-type']), /text\/event-stream/);
        let buffer = '';
        let started = false;
        res.on('data', (chunk: Buffer) => {
          buffer += chunk.toString();
          if (!started) {
            started = true;
            void (async () => {
              await app.send('/v1/identify', { userId: 'u', messageId: 'skip-me' });
              await app.send('/v1/batch', { batch: [trackEvent({ messageId: 'live-1' }), trackEvent({ messageId: 'live-2' })] });
            })();
          }
          for (let i = buffer.indexOf('\n\n'); i >= 0; i = buffer.indexOf('\n\n')) {
            const message = buffer.slice(0, i);
            buffer = buffer.slice(i + 2);
            const data = message.split('\n').find((l) => l.startsWith('data: '));
            if (data) received.push(JSON.parse(data.slice(6)).messageId);
            if (received.length === 2) {
              req.destroy();
              resolve();
            }
          }
        });
      });
      req.on('error', (err) => (received.length === 2 ? resolve() : reject(err)));
      req.end();
    });
    await done;
    assert.deepEqual(received, ['live-1', 'live-2']);
  });
});

describe('operations', () => {
  test('healthz, readyz and metrics; metrics carry no identifiers or keys', async (t) => {
    const app = await openTestApp(t);
    await app.send('/v1/track', trackEvent({ userId: 'secret-user@example.com', messageId: mid('metric') }));
    await app.send('/v1/track', 'garbage');
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/readyz' })).json(), { status: 'ready' });
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /tandem_ingest_events_total\{status="accepted"\} 1/);
    assert.match(metrics, /tandem_ingest_rejected_requests_total\{code="invalid_json"\} 1/);
    assert.match(metrics, /tandem_ingest_ack_seconds_bucket/);
    assert.match(metrics, /tandem_log_commit_requests_bucket/);
    assert.match(metrics, /^tandem_profile_columns_kept \d+$/m);
    assert.match(metrics, /^tandem_profile_columns_profiles \d+$/m);
    await app.stores.stage?.caughtUp();
    assert.match((await app.inject({ method: 'GET', url: '/metrics' })).body, /tandem_profile_stage_lag_records 0\n/, 'the stage has applied everything committed');
    assert.doesNotMatch(metrics, /secret-user|wk_test|tdm_test|metric-/);
  });

  test('the OpenAPI document describes the admin routes', async (t) => {
    const app = await openTestApp(t);
    const doc = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    assert.equal(doc.openapi, '3.1.0');
    for (const path of ['/api/v1/events', '/api/v1/events/stream', '/api/v1/write-keys', '/api/v1/tokens', '/api/v1/identity/rules', '/api/v1/profiles/merge', '/api/v1/profiles/{ref}/split', '/api/v1/profiles/{ref}/identities', '/api/v1/computed-traits']) assert.ok(doc.paths[path], path);
  });

  test('unknown routes are 404 in the shape of their API; errors carry no stack traces', async (t) => {
    const app = await openTestApp(t);
    const ingest = await app.inject({ method: 'POST', url: '/v1/nope', payload: '{}' });
    assert.deepEqual(ingest.json(), { success: false, error: { code: 'not_found', message: 'Not found.' } });
    const admin = await app.inject({ method: 'GET', url: '/api/v1/nope', headers: { authorization: bearer() } });
    assert.deepEqual(admin.json(), { error: { code: 'not_found', message: 'Not found.' } });
    const long = await app.inject({ method: 'GET', url: `/api/v1/profiles/${'a'.repeat(5000)}/identities`, headers: { authorization: bearer() } });
    assert.equal(long.statusCode, 414);
    assert.deepEqual(long.json(), { error: { code: 'url_too_long', message: 'A part of the URL is longer than the server accepts.' } }, 'Fastify\'s own errors are generic too: the URL is not echoed');
    const bad = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: bearer(), 'content-type': 'application/json' }, payload: '{"name":' });
    assert.equal(bad.statusCode, 400);
    assert.doesNotMatch(bad.body, /at |\.ts|node_modules/);
  });
});
