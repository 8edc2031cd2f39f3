import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { judgeEvent, parseTime } from './normalize.ts';

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
