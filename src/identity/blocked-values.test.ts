import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isBlockedIdentifier } from './blocked-values.ts';

const BLOCKED = ['id', 'email', 'abc123', 'ID', '"email"', '\u200b', '\u200e', '\u0000', '\u202enull', 'gu\u200best', '\ufeffundefined', '', ' ', '\t', '0', '000', '-', '0-0', '000-000', '-1', 'null', 'NULL', 'undefined', 'Undefined', 'nan', 'NaN', 'none', 'None', 'nil', 'anonymous', 'Anonymous', 'guest', 'GUEST', '[object Object]', 'true', 'false', '"null"', "'undefined'", '`guest`', '" null "', '"\'nan\'"', ' [OBJECT OBJECT] '];
const ALLOWED = ['u-1', 'abc1234', 'ids', 'email-7', 'a\u200bb', '1', '10', 'null-user', 'guest42', 'a@b.c', '+4915112345678', '0x1', '"real"'];

for (const value of BLOCKED) test(`blocked: ${JSON.stringify(value)}`, () => assert.equal(isBlockedIdentifier(value), true));
for (const value of ALLOWED) test(`allowed: ${JSON.stringify(value)}`, () => assert.equal(isBlockedIdentifier(value), false));

test('the shortcut for long plain values answers as the general rule does', () => {
  // The rule as first written, without the shortcut: the reference.
  const words = new Set(['-1', 'null', 'undefined', 'nan', 'none', 'nil', 'anonymous', 'guest', '[object object]', 'true', 'false', 'id', 'email', 'abc123']);
  const reference = (value: string) => {
    let v = value.replace(/[\u0000\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]/g, '').trim().toLowerCase();
    for (let m = /^(["'`])(.*)\1$/s.exec(v); m; m = /^(["'`])(.*)\1$/s.exec(v)) v = m[2]!.trim();
    return v === '' || /^[0-]*$/.test(v) || words.has(v);
  };
  const unit = fc.constantFrom('a', 'Z', '1', '0', '-', ' ', '\u00a0', '"', "'", '\u200b', '\ufeff', 'n', 'u', 'l', '[', ']', 'é', 'İ');
  const pad = fc.oneof(fc.string({ unit, maxLength: 20 }), fc.string({ unit: fc.constantFrom(' ', '\u00a0', '\u200b', '\t', '"'), maxLength: 20 }));
  const padded = fc.tuple(fc.constantFrom(...words, 'guest42', '0000', 'user-1'), pad, pad).map(([w, a, b]) => a + w + b);
  fc.assert(fc.property(fc.oneof(fc.string({ unit, maxLength: 40 }), padded), (value) => assert.equal(isBlockedIdentifier(value), reference(value), JSON.stringify(value))), { numRuns: 5000 });
});
