import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DefinitionError, type AudienceNode } from './definition.ts';
import { parseAudience, printAudience } from './text.ts';

test('the example from the issue parses to the tree a marketer means', () => {
  const tree = parseAudience('traits.plan = "pro" and performed "Order Completed" at least 3 times in last 30 days where total > 50 and not in audience "churned"');
  assert.deepEqual(tree, {
    and: [
      { trait: 'plan', op: '=', value: 'pro' },
      { event: 'Order Completed', count: { op: '>=', value: 3 }, withinDays: 30, where: [{ property: 'total', op: '>', value: 50 }] },
      { not: { audience: 'churned' } },
    ],
  });
  assert.deepEqual(parseAudience('did not perform "Email Opened" in last 7 days or traits.vip = true'), { or: [{ not: { event: 'Email Opened', withinDays: 7 } }, { trait: 'vip', op: '=', value: true }] });
  assert.deepEqual(parseAudience('value tier = "high" and predicted clv > 100 and consented to "Advertising" and account.plan in ["enterprise"]'), {
    and: [
      { trait: 'value_tier', op: '=', value: 'high' },
      { trait: 'predicted_clv', op: '>', value: 100 },
      { consent: 'Advertising' },
      { account: 'plan', op: 'in', value: ['enterprise'] },
    ],
  });
  assert.deepEqual(parseAudience('performed "E" where total > 5 and value > 3 and value tier = "low"'), { and: [{ event: 'E', where: [{ property: 'total', op: '>', value: 5 }, { property: 'value', op: '>', value: 3 }] }, { trait: 'value_tier', op: '=', value: 'low' }] });
  assert.deepEqual(parseAudience('(traits.a exists or traits.b does not exist) and traits.c in ["x", 2]'), { and: [{ or: [{ trait: 'a', op: 'exists' }, { trait: 'b', op: 'not_exists' }] }, { trait: 'c', op: 'in', value: ['x', 2] }] });
});

test('mistakes are reported with the column where they are', () => {
  const cases: Array<[string, string]> = [
    ['traits.plan ~ "pro"', 'text:13'],
    ['traits.plan = ', 'text:15'],
    ['performed Order', 'text:11'],
    ['traits.plan = "pro" and', 'text:24'],
    ['traits.plan = "pro" traits.x exists', 'text:21'],
    ['in audience "a" or', 'text:19'],
    ['traits.seats > true', 'text:20'],
    ['performed "E" at least 2.5 times', 'text:24'],
    ['traits.plan = "pro" § 1', 'text:21'],
  ];
  for (const [text, path] of cases) assert.throws(() => parseAudience(text), (err: unknown) => err instanceof DefinitionError && err.path === path, `${text} -> ${path}`);
  assert.throws(() => parseAudience('traits.plan matches "(a+)+$"'), DefinitionError, 'there is no regular-expression operator');
});

const NAMES = ['plan', 'seats', 'last', 'address.city', 'my key', 'x-y', 'value_tier', 'predicted_clv', 'value'];
const scalar = fc.oneof(fc.string({ maxLength: 8 }), fc.integer({ min: -1000, max: 1000 }), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).filter((d) => !Object.is(d, -0)), fc.boolean());
const text = fc.oneof(fc.string({ maxLength: 8 }), fc.integer({ min: -1000, max: 1000 }));
const comparison = fc.oneof(
  fc.record({ op: fc.constantFrom('=', '!='), value: scalar }),
  fc.record({ op: fc.constantFrom('>', '>=', '<', '<='), value: text }),
  fc.record({ op: fc.constantFrom('exists', 'not_exists') }),
  fc.record({ op: fc.constant('in'), value: fc.array(scalar, { minLength: 1, maxLength: 3 }) }),
  fc.record({ op: fc.constant('contains'), value: scalar }),
  fc.record({ op: fc.constantFrom('before', 'after'), value: fc.constantFrom('2026-01-01', '2025-12-31T10:00:00Z') }),
  fc.record({ op: fc.constantFrom('within_days', 'older_than_days'), value: fc.integer({ min: 1, max: 400 }) }),
);
const filter = fc.tuple(fc.constantFrom('total', 'product.price', 'in', 'a b', 'value', 'account', 'predicted'), fc.oneof(fc.record({ op: fc.constantFrom('=', '!=', '>', '>=', '<', '<='), value: text }), fc.record({ op: fc.constant('exists') }), fc.record({ op: fc.constant('in'), value: fc.array(scalar, { minLength: 1, maxLength: 2 }) }))).map(([property, c]) => ({ property, ...c }));
const leaf = fc.oneof(
  fc.tuple(fc.constantFrom(...NAMES), comparison).map(([trait, c]) => ({ trait, ...c })),
  fc.record({ event: fc.constantFrom('Order Completed', 'signup', 'and'), where: fc.array(filter, { minLength: 1, maxLength: 3 }), withinDays: fc.integer({ min: 1, max: 90 }), count: fc.record({ op: fc.constantFrom('>=', '>', '=', '<', '<='), value: fc.nat(20) }) }, { requiredKeys: ['event'] }),
  fc.record({ audience: fc.constantFrom('churned', 'vip') }),
  fc.record({ consent: fc.constantFrom('Advertising', 'email marketing') }),
  fc.tuple(fc.constantFrom('plan', 'employees', 'tier'), comparison).map(([account, c]) => ({ account, ...c })),
);
const tree = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small' }, leaf, fc.record({ and: fc.array(tie('node'), { minLength: 2, maxLength: 3 }) }), fc.record({ or: fc.array(tie('node'), { minLength: 2, maxLength: 3 }) }), fc.record({ not: tie('node') })),
})).node as fc.Arbitrary<AudienceNode>;

test('property: printing any tree and parsing the text gives the same tree', () => {
  fc.assert(
    fc.property(tree, (generated) => {
      const t = JSON.parse(JSON.stringify(generated)) as AudienceNode;
      const printed = printAudience(t);
      assert.deepEqual(parseAudience(printed), t, printed);
    }),
    { numRuns: 2000 },
  );
});
