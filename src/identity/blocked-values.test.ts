import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBlockedIdentifier } from './blocked-values.ts';

const BLOCKED = ['id', 'email', 'abc123', 'ID', '"email"', '\u200b', '\u200e', '\u0000', '\u202enull', 'gu\u200best', '\ufeffundefined', '', ' ', '\t', '0', '000', '-', '0-0', '000-000', '-1', 'null', 'NULL', 'undefined', 'Undefined', 'nan', 'NaN', 'none', 'None', 'nil', 'anonymous', 'Anonymous', 'guest', 'GUEST', '[object Object]', 'true', 'false', '"null"', "'undefined'", '`guest`', '" null "', '"\'nan\'"', ' [OBJECT OBJECT] '];
const ALLOWED = ['u-1', 'abc1234', 'ids', 'email-7', 'a\u200bb', '1', '10', 'null-user', 'guest42', 'a@b.c', '+4915112345678', '0x1', '"real"'];

for (const value of BLOCKED) test(`blocked: ${JSON.stringify(value)}`, () => assert.equal(isBlockedIdentifier(value), true));
for (const value of ALLOWED) test(`allowed: ${JSON.stringify(value)}`, () => assert.equal(isBlockedIdentifier(value), false));
