import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isBlank, judgeEvent, parseTime } from './normalize.ts';

test('parseTime agrees with Date.parse on every ISO timestamp, and handles epochs', () => {
  fc.assert(
    fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), fc.boolean(), (d, withMs) => {
      const iso = withMs ? d.toISOString() : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
      assert.equal(parseTime(iso), Date.parse(iso));
    }),
  );
  for (const bad of ['2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T00:00:00', 'x026-01-01T00:00:00Z', '', 'tomorrow']) {
    assert.equal(parseTime(bad), Number.isNaN(Date.parse(bad)) ? undefined : Date.parse(bad), bad);
  }
  assert.equal(parseTime('2026-01-01T01:00:00+01:00'), Date.parse('2026-01-01T00:00:00Z'));
  assert.equal(parseTime(1_700_000_000), 1_700_000_000_000);
  assert.equal(parseTime(1_700_000_000_000), 1_700_000_000_000);
  assert.equal(parseTime(Infinity), undefined);
  assert.equal(parseTime({}), undefined);
});

test('property: judging any value never throws and always yields a messageId and a known status', () => {
  fc.assert(
    fc.property(fc.anything(), fc.option(fc.constantFrom('track', 'identify', 'page', 'screen', 'group', 'alias' as const), { nil: undefined }), (item, type) => {
      const v = judgeEvent(item, type, undefined, 1_700_000_000_000, { futureToleranceMs: 86_400_000, minTimestampMs: 0 }, 100);
      assert.ok(['accepted', 'flagged', 'quarantined'].includes(v.status));
      assert.ok(v.messageId.length > 0 && v.messageId.length <= 100);
      assert.ok(Number.isFinite(v.timestamp));
      if (v.status !== 'accepted') assert.ok(v.reasons.length > 0);
    }),
    { numRuns: 2000 },
  );
});

test('isBlank agrees with trim() on any string, white space of every kind included', () => {
  const space = fc.constantFrom(' ', '\t', '\n', '\r', '\v', '\f', '\u00a0', '\u1680', '\u2003', '\u2028', '\u3000', '\ufeff');
  const text = fc.oneof(fc.string(), fc.array(space).map((a) => a.join('')), fc.tuple(fc.array(space), fc.string(), fc.array(space)).map(([a, s, b]) => a.join('') + s + b.join('')));
  fc.assert(fc.property(text, (s) => assert.equal(isBlank(s), s.trim() === '', JSON.stringify(s))), { numRuns: 2000 });
  for (const s of ['', ' ', '\u00a0\u2003', 'a', ' a ', '\ufeffx']) assert.equal(isBlank(s), s.trim() === '', JSON.stringify(s));
});
