import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { gzip, mid, openTestApp, trackEvent } from './helpers.ts';

/** The identifier part of the bad input dictionary in shared/RELIABILITY.md. */
const JUNK_IDS: unknown[] = [
  null, undefined, 'null', 'undefined', '', ' ', '\t\n', '0', 0, -1, '-1', '000-000', 'NaN', NaN, 'None', 'none', 'nil', 'anonymous', 'guest',
  'id', 'email', 'true', 'false', true, false, '[object Object]', 'abc123', '"null"', "'undefined'", '"[object Object]"', '"guest"', 1.5, {}, [], { id: 1 }, ['u'],
  'x'.repeat(1024 * 1024), 'a\u200bb', '\u202eresu', 'nul\u0000byte', '\ud800lone', '  padded  ',
];

describe('bad input dictionary: identifiers', () => {
  test('no identifier crashes ingest or yields a 5xx; blocked values are flagged, unusable ones refused', async (t) => {
    const app = await openTestApp(t);
    for (const id of JUNK_IDS) {
      for (const field of ['userId', 'anonymousId']) {
        const e = trackEvent({ userId: undefined, [field]: id });
        const res = await app.send('/v1/track', e);
        assert.ok(res.statusCode === 200 || res.statusCode === 400 || res.statusCode === 413, `${field}=${JSON.stringify(id)?.slice(0, 40)} -> ${res.statusCode}`);
        if (res.statusCode === 200) {
          const [stored] = await app.events(`messageId=${e.messageId}`);
          assert.ok(stored, 'a 200 means it is stored');
        } else {
          assert.match(res.json().error.code, /^(missing_identity|invalid_identifier|event_too_large|body_too_large)$/);
        }
      }
    }
    const junk = trackEvent({ userId: '[object Object]', anonymousId: 'null' });
    await app.send('/v1/track', junk);
    const [flagged] = await app.events(`messageId=${junk.messageId}`);
    assert.equal(flagged?.status, 'flagged');
    assert.deepEqual(flagged?.reasons, ['blocked_identifier']);
    const real = trackEvent({ userId: 'null', anonymousId: 'device-9' });
    await app.send('/v1/track', real);
    assert.equal((await app.events(`messageId=${real.messageId}`))[0]?.status, 'accepted', 'one usable id is enough');
  });
});

describe('bad input dictionary: JSON and sizes', () => {
  test('malformed bodies get a 4xx with a code, never a 5xx', async (t) => {
    const app = await openTestApp(t);
    const deep = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    const cases: Array<[string | Buffer, string]> = [
      ['', 'invalid_json'],
      ['{', 'invalid_json'],
      ['{"userId":"u","event":"e"} trailing', 'invalid_json'],
      ['{"userId":"u","event":"e"}{}', 'invalid_json'],
      [Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), 'invalid_encoding'],
      ['[' + '1,'.repeat(300_000) + '1]', 'invalid_event'],
      [deep(1_000), 'nesting_too_deep'],
      [deep(10_000), 'nesting_too_deep'],
      [deep(100_000), 'nesting_too_deep'],
      ['"just a string"', 'invalid_event'],
      ['null', 'invalid_event'],
      ['1e400', 'invalid_event'],
    ];
    for (const [body, code] of cases) {
      const res = await app.send('/v1/track', body);
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${String(body).slice(0, 30)} -> ${res.statusCode} ${res.body}`);
      assert.equal(res.json().error.code, code, String(body).slice(0, 30));
    }
    const batchDeep = await app.send('/v1/batch', `{"batch":[${deep(200)}]}`);
    assert.equal(batchDeep.json().error.code, 'nesting_too_deep');
    const million = await app.send('/v1/batch', `{"batch":[${'0,'.repeat(999_999)}0]}`);
    assert.equal(million.json().error.code, 'body_too_large', 'an array of 1e6 elements');
    const many = await app.send('/v1/batch', `{"batch":[${'0,'.repeat(200_000)}0]}`);
    assert.equal(many.json().error.code, 'batch_too_many_events');
  });

  test('duplicate keys, __proto__ and constructor.prototype keys, -0 and 1e400 values store safely', async (t) => {
    const app = await openTestApp(t);
    const messageId = mid('proto');
    const body = `{"type":"track","userId":"u","userId":"u2","event":"e","messageId":"${messageId}","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"properties":{"__proto__":{"polluted":true},"n":-0,"big":1e400}}`;
    const res = await app.send('/v1/batch', `{"batch":[${body}],"context":{"__proto__":{"polluted":true}}}`);
    assert.equal(res.statusCode, 200);
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
    const [stored] = await app.events(`messageId=${messageId}`);
    assert.equal(stored?.userId, 'u2', 'the last duplicate key wins, as in JSON.parse');
    assert.equal(Object.getPrototypeOf(stored?.payload), Object.prototype);
    assert.equal(stored?.payload.properties.big, null);
  });

  test('100,000 keys in one event is refused as too large; a gzip body inflating to 1 GB is 413', async (t) => {
    const app = await openTestApp(t);
    const keys = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i]));
    const res = await app.send('/v1/track', trackEvent({ properties: keys }));
    assert.equal(res.statusCode, 413, 'over the hard cap');
    const res2 = await app.send('/v1/track', gzip(JSON.stringify(trackEvent({ properties: keys }))), { 'content-encoding': 'gzip' });
    assert.equal(res2.statusCode, 413);
  });
});

describe('bad input dictionary: time', () => {
  test('timestamps far ahead or behind are clamped and flagged with the original kept; bad formats flagged', async (t) => {
    const receivedAt = Date.parse('2026-06-01T12:00:00Z');
    const app = await openTestApp(t, { now: () => receivedAt });
    const cases: Array<[Record<string, unknown>, string, string | null]> = [
      [{ timestamp: '2076-06-01T12:00:00Z' }, '2026-06-01T12:00:00.000Z', 'timestamp_in_future'],
      [{ timestamp: '1926-06-01T12:00:00Z' }, '2026-06-01T12:00:00.000Z', 'timestamp_too_old'],
      [{ timestamp: 'yesterday-ish' }, '2026-06-01T12:00:00.000Z', 'invalid_timestamp'],
      [{ timestamp: { at: 1 } }, '2026-06-01T12:00:00.000Z', 'invalid_timestamp'],
      [{ timestamp: 1780315200 }, '2026-06-01T12:00:00.000Z', null],
      [{ timestamp: 1780315200000 }, '2026-06-01T12:00:00.000Z', null],
      [{ timestamp: '2026-06-01T13:00:00+01:00' }, '2026-06-01T12:00:00.000Z', null],
      [{ timestamp: '2026-06-02T11:00:00Z' }, '2026-06-02T11:00:00.000Z', null],
      [{ originalTimestamp: '2026-05-29T12:00:00Z', sentAt: '2026-06-01T12:00:00Z' }, '2026-05-29T12:00:00.000Z', null],
      [{ originalTimestamp: '2026-06-01T12:00:00Z', sentAt: '2026-05-29T12:00:00Z' }, '2026-06-01T12:00:00.000Z', 'timestamp_in_future'],
      [{ originalTimestamp: '2026-06-01T12:00:00Z', sentAt: 'garbage' }, '2026-06-01T12:00:00.000Z', null],
    ];
    for (const [fields, expected, reason] of cases) {
      const e = trackEvent(fields);
      assert.equal((await app.send('/v1/track', e)).statusCode, 200);
      const [stored] = await app.events(`messageId=${e.messageId}`);
      assert.equal(stored?.timestamp, expected, JSON.stringify(fields));
      assert.deepEqual(stored?.reasons, reason ? [reason] : [], JSON.stringify(fields));
      if (reason && fields.timestamp !== undefined) assert.deepEqual(stored?.payload.originalTimestamp, fields.timestamp, 'the original is kept');
    }
  });

  test('equal timestamps and the same messageId reused by another user', async (t) => {
    const app = await openTestApp(t);
    const a = trackEvent({ timestamp: '2026-01-01T00:00:00Z' });
    const b = trackEvent({ timestamp: '2026-01-01T00:00:00Z' });
    const reused = trackEvent({ messageId: a.messageId, userId: 'someone-else' });
    await app.send('/v1/batch', { batch: [a, b, reused] });
    assert.equal((await app.events(`messageId=${a.messageId}`)).length, 1, 'a messageId is one event per workspace, whoever sends it');
    assert.equal((await app.events(`messageId=${b.messageId}`)).length, 1);
  });
});

describe('property: no input crashes ingest or yields a 5xx', () => {
  test('arbitrary JSON values, arbitrary bytes and mangled events on every ingest path', async (t) => {
    const app = await openTestApp(t);
    const paths = ['/v1/track', '/v1/identify', '/v1/page', '/v1/screen', '/v1/group', '/v1/alias', '/v1/batch', '/b'];
    const field = fc.oneof(fc.jsonValue(), fc.string(), fc.constantFrom(...JUNK_IDS.filter((v) => typeof v !== 'string' || v.length < 100)));
    const event = fc.record(
      { type: fc.oneof(fc.constantFrom('track', 'identify', 'page', 'screen', 'group', 'alias'), fc.string()), userId: field, anonymousId: field, event: field, groupId: field, previousId: field, messageId: field, timestamp: field, sentAt: field, originalTimestamp: field, properties: field, traits: field, context: field },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v) ?? ''),
      fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
      event.map((e) => JSON.stringify(e)),
      fc.array(event, { maxLength: 20 }).map((batch) => JSON.stringify({ batch, context: { ip: '1.2.3.4' } })),
      fc.string().map((s) => `{"batch":[${s}]}`),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), body, fc.constantFrom(undefined, 'gzip'), async (path, payload, encoding) => {
        const bytes = encoding === 'gzip' ? gzip(payload) : payload;
        const res = await app.send(path, bytes, encoding ? { 'content-encoding': encoding } : {});
        assert.ok(res.statusCode === 200 || (res.statusCode >= 400 && res.statusCode < 500), `${res.statusCode} ${res.body}`);
        const json = res.json();
        if (res.statusCode !== 200) assert.equal(typeof json.error.code, 'string');
      }),
      { numRuns: Number(process.env.TANDEM_PROPERTY_RUNS ?? 400) },
    );
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    await app.events();
  });
});
