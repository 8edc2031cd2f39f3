import assert from 'node:assert/strict';
import { deflateSync, zstdDecompressSync } from 'node:zlib';
import { describe, test } from 'node:test';
import { basic, bearer, gzip, mid, openTestApp, trackEvent, WRITE_KEY } from './helpers.ts';

const CALLS = {
  identify: { userId: 'u-1', traits: { plan: 'pro' } },
  track: { userId: 'u-1', event: 'Signed Up' },
  page: { anonymousId: 'a-1', name: 'Home' },
  screen: { anonymousId: 'a-1', name: 'Dashboard' },
  group: { userId: 'u-1', groupId: 'acme', traits: { employees: 10 } },
  alias: { userId: 'u-1', previousId: 'a-1' },
} as const;
const SHORT = { identify: 'i', track: 't', page: 'p', screen: 's', group: 'g', alias: 'a' } as const;

describe('ingest endpoints', () => {
  test('every call type is accepted on its long and short path and stored with its type', async (t) => {
    const app = await openTestApp(t);
    for (const [type, body] of Object.entries(CALLS)) {
      for (const path of [`/v1/${type}`, `/v1/${SHORT[type as keyof typeof SHORT]}`]) {
        const messageId = mid(type);
        const res = await app.send(path, { ...body, messageId });
        assert.equal(res.statusCode, 200, `${path}: ${res.body}`);
        assert.deepEqual(res.json(), { success: true });
        const [stored] = await app.events(`messageId=${messageId}`);
        assert.equal(stored?.type, type, path);
        assert.equal(stored?.status, 'accepted');
      }
    }
  });

  test('batch paths /v1/batch, /v1/b, /b and /v1/import accept mixed events', async (t) => {
    const app = await openTestApp(t);
    for (const path of ['/v1/batch', '/v1/b', '/b', '/v1/import']) {
      const batch = Object.entries(CALLS).map(([type, body]) => ({ type, ...body, messageId: mid(path) }));
      const res = await app.send(path, { batch });
      assert.equal(res.statusCode, 200, res.body);
      for (const e of batch) assert.equal((await app.events(`messageId=${e.messageId}`))[0]?.type, e.type);
    }
  });

  test('per-call required fields: 400 with a stable code', async (t) => {
    const app = await openTestApp(t);
    const cases: Array<[string, unknown, string]> = [
      ['/v1/track', { userId: 'u' }, 'missing_event_name'],
      ['/v1/track', { userId: 'u', event: '  ' }, 'missing_event_name'],
      ['/v1/track', { event: 'X' }, 'missing_identity'],
      ['/v1/track', { event: 'X', userId: '', anonymousId: '   ' }, 'missing_identity'],
      ['/v1/group', { userId: 'u' }, 'missing_group_id'],
      ['/v1/alias', { userId: 'u' }, 'missing_previous_id'],
      ['/v1/alias', { previousId: 'p', anonymousId: 'a' }, 'missing_previous_id'],
      ['/v1/identify', { userId: { id: 1 } }, 'invalid_identifier'],
      ['/v1/identify', { userId: ['a'] }, 'invalid_identifier'],
      ['/v1/identify', { userId: true }, 'invalid_identifier'],
      ['/v1/identify', { userId: 'u', traits: 'pro' }, 'invalid_field'],
      ['/v1/track', { userId: 'u', event: 'X', messageId: 'm'.repeat(101) }, 'invalid_message_id'],
      ['/v1/track', [1, 2], 'invalid_event'],
      ['/v1/batch', { batch: null }, 'invalid_batch'],
      ['/v1/batch', { batch: {} }, 'invalid_batch'],
      ['/v1/batch', [], 'invalid_batch'],
    ];
    for (const [path, body, code] of cases) {
      const res = await app.send(path, body);
      assert.equal(res.statusCode, 400, `${JSON.stringify(body)} -> ${res.body}`);
      assert.deepEqual(res.json(), { success: false, error: { code, message: res.json().error.message } });
      assert.equal(typeof res.json().error.message, 'string');
    }
    assert.equal((await app.send('/v1/track', { userId: 'u', event: 'X', messageId: 'm'.repeat(100) })).statusCode, 200);
    assert.equal((await app.send('/v1/identify', { userId: 12345 })).statusCode, 200, 'numeric ids are accepted as strings');
    assert.equal((await app.events('userId=12345'))[0]?.userId, '12345');
  });

  test('invalid items inside a batch are quarantined with their reason; the rest are accepted', async (t) => {
    const app = await openTestApp(t);
    const good = trackEvent();
    const res = await app.send('/v1/batch', { batch: [good, { type: 'track', userId: 'u', messageId: 'bad-1' }, { type: 'launch', userId: 'u', messageId: 'bad-2' }, 'nope'] });
    assert.equal(res.statusCode, 200);
    assert.equal((await app.events(`messageId=${good.messageId}`))[0]?.status, 'accepted');
    const quarantined = await app.events('status=quarantined');
    assert.deepEqual(quarantined.map((e) => e.reasons[0]).sort(), ['invalid_event', 'invalid_type', 'missing_event_name']);
    assert.deepEqual(quarantined.find((e) => e.messageId === 'bad-1')?.payload.userId, 'u', 'the original payload is kept');
  });
});

describe('write keys', () => {
  test('HTTP Basic, body writeKey, missing, unknown and revoked keys', async (t) => {
    const app = await openTestApp(t);
    const body = trackEvent();
    const post = (headers: Record<string, string>, payload: unknown) => app.inject({ method: 'POST', url: '/v1/track', payload: JSON.stringify(payload), headers: { 'content-type': 'application/json', ...headers } });
    assert.equal((await post({ authorization: basic(WRITE_KEY) }, body)).statusCode, 200);
    assert.equal((await post({}, { ...trackEvent(), writeKey: WRITE_KEY })).statusCode, 200);
    assert.equal((await post({}, trackEvent())).json().error.code, 'missing_write_key');
    assert.equal((await post({ authorization: basic('wk_nope') }, trackEvent())).statusCode, 401);
    assert.equal((await post({ authorization: basic('wk_nope') }, trackEvent())).json().error.code, 'invalid_write_key');
    assert.equal((await post({ authorization: 'Basic !!!' }, trackEvent())).json().error.code, 'missing_write_key');
    assert.equal((await post({ authorization: basic(WRITE_KEY) }, 'not json')).statusCode, 400);
    const revoke = await app.inject({ method: 'DELETE', url: `/api/v1/write-keys/${WRITE_KEY}`, headers: { authorization: bearer() } });
    assert.equal(revoke.statusCode, 204);
    assert.equal((await post({ authorization: basic(WRITE_KEY) }, trackEvent())).json().error.code, 'invalid_write_key');
  });

  test('a write key is useless on admin routes', async (t) => {
    const app = await openTestApp(t);
    for (const authorization of [basic(WRITE_KEY), `Bearer ${WRITE_KEY}`]) {
      const res = await app.inject({ method: 'GET', url: '/api/v1/events', headers: { authorization } });
      assert.equal(res.statusCode, 401);
      assert.equal(res.json().error.code, 'unauthorized');
    }
  });
});

describe('encodings', () => {
  test('JSON whatever the Content-Type says, gzip and deflate, BOM', async (t) => {
    const app = await openTestApp(t);
    for (const contentType of ['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream', 'text/plain;charset=UTF-8']) {
      const e = trackEvent();
      assert.equal((await app.send('/v1/track', e, { 'content-type': contentType })).statusCode, 200, contentType);
      const z = trackEvent();
      assert.equal((await app.send('/v1/track', gzip(z), { 'content-type': contentType, 'content-encoding': 'gzip' })).statusCode, 200, `gzip ${contentType}`);
      assert.equal((await app.events(`messageId=${z.messageId}`)).length, 1);
    }
    const d = trackEvent();
    assert.equal((await app.send('/v1/track', deflateSync(JSON.stringify(d)), { 'content-encoding': 'deflate' })).statusCode, 200);
    const bom = trackEvent();
    assert.equal((await app.send('/v1/track', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(bom))]))).statusCode, 200);
    const noType = await app.inject({ method: 'POST', url: '/v1/track', payload: JSON.stringify(trackEvent()), headers: { authorization: basic(WRITE_KEY) } });
    assert.equal(noType.statusCode, 200);
  });

  test('bad encodings are 400, a gzip bomb is 413 without inflating it', async (t) => {
    const app = await openTestApp(t);
    assert.equal((await app.send('/v1/track', Buffer.from('not gzip'), { 'content-encoding': 'gzip' })).json().error.code, 'invalid_encoding');
    assert.equal((await app.send('/v1/track', JSON.stringify(trackEvent()), { 'content-encoding': 'br' })).json().error.code, 'invalid_encoding');
    const bomb = gzip(`{"userId":"u","event":"x","p":"${'a'.repeat(20 * 1024 * 1024)}"}`);
    assert.ok(bomb.length < 100 * 1024);
    const res = await app.send('/v1/track', bomb, { 'content-encoding': 'gzip' });
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().error.code, 'body_too_large');
  });
});

describe('limits', () => {
  const padded = (bytes: number): Record<string, unknown> => {
    const base = trackEvent({ properties: { pad: '' } });
    const overhead = Buffer.byteLength(JSON.stringify(base));
    return trackEvent({ messageId: base.messageId, properties: { pad: 'x'.repeat(bytes - overhead) } });
  };

  test('an event of 32 KB is accepted, 32 KB + 1 byte is not, alone or in a batch', async (t) => {
    const app = await openTestApp(t);
    const exact = padded(32 * 1024);
    assert.equal(Buffer.byteLength(JSON.stringify(exact)), 32 * 1024);
    assert.equal((await app.send('/v1/track', exact)).statusCode, 200);
    const over = padded(32 * 1024 + 1);
    const res = await app.send('/v1/track', over);
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'event_too_large');
    const inBatch = [padded(32 * 1024), padded(32 * 1024 + 1)];
    assert.equal((await app.send('/v1/batch', { batch: inBatch })).statusCode, 200);
    assert.equal((await app.events(`messageId=${inBatch[0]!.messageId}`))[0]?.status, 'accepted');
    const [quarantined] = await app.events(`messageId=${inBatch[1]!.messageId}&status=quarantined`);
    assert.deepEqual(quarantined?.reasons, ['event_too_large']);
  });

  test('a batch of 500 KB is accepted, 500 KB + 1 byte is 400; 2500 events pass and 2501 do not', async (t) => {
    const app = await openTestApp(t);
    const batchOf = (bytes: number) => {
      const items = Array.from({ length: 20 }, () => trackEvent({ properties: { pad: 'y'.repeat(20_000) } }));
      const body = { batch: items, pad: '' };
      body.pad = 'z'.repeat(bytes - Buffer.byteLength(JSON.stringify(body)));
      return body;
    };
    const exact = batchOf(500 * 1024);
    assert.equal(Buffer.byteLength(JSON.stringify(exact)), 500 * 1024);
    assert.equal((await app.send('/v1/batch', exact)).statusCode, 200);
    const over = await app.send('/v1/batch', batchOf(500 * 1024 + 1));
    assert.equal(over.statusCode, 400);
    assert.equal(over.json().error.code, 'batch_too_large');
    const small = (n: number) => ({ batch: Array.from({ length: n }, (_, i) => ({ type: 'track', event: 'e', userId: `u${i}`, messageId: mid('s') })) });
    assert.equal((await app.send('/v1/batch', small(2500))).statusCode, 200);
    const many = await app.send('/v1/batch', small(2501));
    assert.equal(many.statusCode, 400);
    assert.equal(many.json().error.code, 'batch_too_many_events');
  });

  test('a 10 MB body is refused with 413 while it is being read', async (t) => {
    const app = await openTestApp(t);
    const res = await app.send('/v1/batch', Buffer.alloc(10 * 1024 * 1024, 0x20));
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().error.code, 'body_too_large');
  });
});

describe('what ingest stores', () => {
  test('request bodies are stored compressed with their verdicts, as one frame (by the ingest thread), and read back as sent', async (t) => {
    const app = await openTestApp(t);
    const events = Array.from({ length: 30 }, (_, i) => trackEvent({ userId: `user-${i}` }));
    assert.equal((await app.send('/v1/batch', { batch: events })).statusCode, 200);
    const stored = await app.events(`messageId=${events[7]!.messageId}`);
    assert.equal(stored[0]?.payload.userId, 'user-7');
    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(`${app.dataDir}/tandem.db`, { readOnly: true });
    t.after(() => db.close());
    const row = db.prepare("SELECT encoding, body, meta FROM log WHERE kind = 'batch' ORDER BY id DESC LIMIT 1").get() as { encoding: string | null; body: Uint8Array; meta: string };
    assert.equal(row.encoding, 'zstd+meta');
    const json = JSON.stringify({ batch: events });
    assert.ok(row.body.byteLength * 3 < Buffer.byteLength(json), `${row.body.byteLength} bytes stored`);
    // The frame: the verdicts (as many bytes as the meta column says), then the JSON as sent.
    const frame = zstdDecompressSync(row.body);
    const verdicts = JSON.parse(frame.toString('utf8', 0, Number(row.meta))) as unknown[][];
    assert.deepEqual(verdicts.map((v) => v[0]), events.map((e) => e.messageId));
    assert.equal(frame.toString('utf8', Number(row.meta)), json);
  });

  test('batch-level context and integrations merge into each event; the event wins', async (t) => {
    const app = await openTestApp(t);
    const a = trackEvent({ context: { locale: 'de-DE' } });
    const b = trackEvent({ integrations: { Mixpanel: true } });
    await app.send('/v1/batch', { batch: [a, b], context: { ip: '10.0.0.1', locale: 'en-US' }, integrations: { All: false, Mixpanel: false } });
    const [ea] = await app.events(`messageId=${a.messageId}`);
    const [eb] = await app.events(`messageId=${b.messageId}`);
    assert.deepEqual(ea?.payload.context, { ip: '10.0.0.1', locale: 'de-DE' });
    assert.deepEqual(ea?.payload.integrations, { All: false, Mixpanel: false });
    assert.deepEqual(eb?.payload.integrations, { All: false, Mixpanel: true });
  });

  test('server-owned fields are set by the server whatever the client sends', async (t) => {
    const app = await openTestApp(t);
    const e = trackEvent({ receivedAt: '2001-01-01T00:00:00Z', workspaceId: 'other', sourceId: 'evil', writeKey: 'leak' });
    await app.send('/v1/track', e);
    const [stored] = await app.events(`messageId=${e.messageId}`);
    assert.notEqual(stored?.receivedAt, '2001-01-01T00:00:00.000Z');
    assert.equal(stored?.payload.receivedAt, stored?.receivedAt);
    assert.equal(stored?.payload.workspaceId, undefined);
    assert.equal(stored?.payload.sourceId, undefined);
    assert.equal(stored?.payload.writeKey, undefined);
    assert.match(stored?.sourceId, /^src_/);
  });

  test('clock skew: timestamp = receivedAt − (sentAt − originalTimestamp) when timestamp is absent', async (t) => {
    const receivedAt = Date.parse('2026-06-01T12:00:00Z');
    const app = await openTestApp(t, { now: () => receivedAt });
    const skewed = trackEvent({ originalTimestamp: '2026-06-03T12:00:00Z', sentAt: '2026-06-03T12:00:05Z' });
    const batched = trackEvent({ originalTimestamp: '2026-05-29T11:00:00Z' });
    const explicit = trackEvent({ timestamp: '2026-05-01T00:00:00Z', sentAt: '2026-06-03T12:00:05Z' });
    const none = trackEvent();
    await app.send('/v1/track', skewed);
    await app.send('/v1/batch', { batch: [batched, explicit, none], sentAt: '2026-05-29T11:00:30Z' });
    const ts = async (m: unknown) => (await app.events(`messageId=${m}`))[0]?.timestamp;
    assert.equal(await ts(skewed.messageId), '2026-06-01T11:59:55.000Z');
    assert.equal(await ts(batched.messageId), '2026-06-01T11:59:30.000Z', 'three days late, sent in a batch');
    assert.equal(await ts(explicit.messageId), '2026-05-01T00:00:00.000Z', 'an explicit timestamp is kept');
    assert.equal(await ts(none.messageId), '2026-06-01T12:00:00.000Z', 'no time at all: receivedAt');
  });
});

describe('dedupe', () => {
  test('a messageId seen within the window is accepted and ignored; after the window it is new', async (t) => {
    let now = Date.parse('2026-06-01T00:00:00Z');
    const app = await openTestApp(t, { now: () => now, env: { TANDEM_DEDUPE_WINDOW_HOURS: '1' } });
    const e = trackEvent();
    assert.equal((await app.send('/v1/track', e)).statusCode, 200);
    assert.equal((await app.send('/v1/track', e)).statusCode, 200);
    assert.equal((await app.send('/v1/batch', { batch: [e, e] })).statusCode, 200);
    assert.equal((await app.events(`messageId=${e.messageId}`)).length, 1);
    assert.equal((await app.events(`messageId=${e.messageId}&status=duplicate`)).length, 3);
    now += 3_600_001;
    assert.equal((await app.send('/v1/track', e)).statusCode, 200);
    assert.equal((await app.events(`messageId=${e.messageId}`)).length, 2);
  });

  test('sources of one workspace dedupe together; another workspace has its own window', async (t) => {
    const app = await openTestApp(t);
    const created = await app.inject({ method: 'POST', url: '/api/v1/write-keys', headers: { authorization: bearer() }, payload: { source: 'ios' } });
    assert.equal(created.statusCode, 201);
    app.stores.access.ensureWorkspace('acme', 'Acme');
    const acmeKey = app.stores.access.createWriteKey('acme', 'web', 'wk_acme_key_0001');
    const e = trackEvent();
    await app.send('/v1/track', e);
    await app.send('/v1/track', e, { authorization: basic(created.json().key) });
    await app.send('/v1/track', e, { authorization: basic(acmeKey.key) });
    assert.equal((await app.events(`messageId=${e.messageId}`)).length, 1, 'the default workspace sees one event');
    const acmeToken = app.stores.access.createToken('acme', 'acme owner', 'owner', (await import('../src/access/credentials.ts')).hashToken('tdm_acme_token_000000000001'));
    assert.equal(acmeToken.workspaceId, 'acme');
    const acme = await app.inject({ method: 'GET', url: `/api/v1/events?messageId=${e.messageId}`, headers: { authorization: bearer('tdm_acme_token_000000000001') } });
    assert.equal(acme.json().data.length, 1, 'acme stored its own copy');
  });
});

describe('browser support', () => {
  test('CORS is open on ingest routes, including the preflight', async (t) => {
    const app = await openTestApp(t);
    const pre = await app.inject({ method: 'OPTIONS', url: '/v1/t', headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
    assert.equal(pre.statusCode, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'https://shop.example');
    const res = await app.send('/v1/t', trackEvent(), { origin: 'https://shop.example', 'content-type': 'text/plain' });
    assert.equal(res.headers['access-control-allow-origin'], 'https://shop.example');
  });

  test('settings for analytics.js point at this host', async (t) => {
    const app = await openTestApp(t);
    const res = await app.inject({ method: 'GET', url: `/v1/projects/${WRITE_KEY}/settings`, headers: { host: 'cdp.example:8080' } });
    assert.equal(res.statusCode, 200);
    const io = res.json().integrations['Segment.io'];
    assert.equal(io.apiKey, WRITE_KEY);
    assert.equal(io.apiHost, 'cdp.example:8080/v1');
    assert.equal((await app.inject({ method: 'GET', url: '/v1/projects/wk_unknown/settings' })).statusCode, 404);
  });
});
