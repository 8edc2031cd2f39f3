import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DefinitionError, dependencyOrder, validateDefinition, type AudienceNode } from './definition.ts';
import { evaluate } from './evaluate.ts';

/** A straightforward reference: every condition spelled out on its own, no shared helpers. */
function reference(node: any, traits: Record<string, unknown>, members: Set<string>): boolean {
  if (node.and) return node.and.every((n: unknown) => reference(n, traits, members));
  if (node.or) return node.or.some((n: unknown) => reference(n, traits, members));
  if (node.not) return !reference(node.not, traits, members);
  if (node.audience) return members.has(node.audience);
  const v = traits[node.trait];
  const has = v !== undefined && v !== null;
  if (node.op === 'exists') return has;
  if (node.op === 'not_exists') return !has;
  if (node.op === '=') return v === node.value;
  if (node.op === '!=') return v !== node.value;
  if (node.op === 'in') return has && node.value.indexOf(v) >= 0;
  if (['>', '>=', '<', '<='].includes(node.op)) {
    const sameKind = (typeof v === 'number' && typeof node.value === 'number') || (typeof v === 'string' && typeof node.value === 'string');
    if (!sameKind) return false;
    if (node.op === '>') return (v as number) > node.value;
    if (node.op === '>=') return (v as number) >= node.value;
    if (node.op === '<') return (v as number) < node.value;
    return (v as number) <= node.value;
  }
  throw new Error(`reference has no ${node.op}`);
}

const KEYS = ['plan', 'seats', 'vip', 'country'];
const scalar = fc.oneof(fc.constantFrom('pro', 'free', 'DE', 'FR', 'a', ''), fc.integer({ min: -3, max: 30 }), fc.boolean());
const leaf = fc.oneof(
  fc.record({ trait: fc.constantFrom(...KEYS), op: fc.constantFrom('=', '!=', '>', '>=', '<', '<='), value: scalar.filter((v) => typeof v !== 'boolean') }),
  fc.record({ trait: fc.constantFrom(...KEYS), op: fc.constantFrom('=', '!='), value: scalar }),
  fc.record({ trait: fc.constantFrom(...KEYS), op: fc.constantFrom('exists', 'not_exists') }),
  fc.record({ trait: fc.constantFrom(...KEYS), op: fc.constant('in'), value: fc.array(scalar, { minLength: 1, maxLength: 3 }) }),
  fc.record({ audience: fc.constantFrom('a1', 'a2') }),
);
const tree: fc.Arbitrary<AudienceNode> = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.record({ and: fc.array(tie('node'), { minLength: 1, maxLength: 3 }) }), fc.record({ or: fc.array(tie('node'), { minLength: 1, maxLength: 3 }) }), fc.record({ not: tie('node') })),
})).node as fc.Arbitrary<AudienceNode>;
const profile = fc.dictionary(fc.constantFrom(...KEYS), fc.oneof(scalar, fc.constant(null)), { maxKeys: 4 });

test('property: the evaluator agrees with a straightforward reference on random profiles and definitions', () => {
  fc.assert(
    fc.property(tree, profile, fc.subarray(['a1', 'a2']), (definition, traits, memberOf) => {
      validateDefinition(definition);
      const members = new Set(memberOf);
      assert.equal(evaluate(definition, { value: (k) => traits[k], member: (k) => members.has(k), now: 0 }), reference(definition, traits, members));
    }),
    { numRuns: 3000 },
  );
});

test('event conditions count hidden computed values; dates compare absolutely and relative to now', () => {
  const now = Date.parse('2026-06-01T00:00:00Z');
  const view = (values: Record<string, unknown>) => ({ value: (k: string) => values[k], member: () => false, now });
  const bought = { event: 'Order Completed', withinDays: 30 } as const;
  validateDefinition(bought);
  assert.equal(evaluate({ not: bought }, view({})), true, 'did not perform');
  assert.equal(evaluate({ trait: 'signed_up', op: 'before', value: '2026-01-01' }, view({ signed_up: '2025-12-31T10:00:00Z' })), true);
  assert.equal(evaluate({ trait: 'last_seen', op: 'within_days', value: 7 }, view({ last_seen: '2026-05-28T00:00:00Z' })), true);
  assert.equal(evaluate({ trait: 'last_seen', op: 'older_than_days', value: 7 }, view({ last_seen: '2026-05-28T00:00:00Z' })), false);
  assert.equal(evaluate({ trait: 'tags', op: 'contains', value: 'vip' }, view({ tags: ['new', 'vip'] })), true);
});

test('invalid definitions are refused with the path of the bad node; no regular expressions exist to hang on', () => {
  const cases: Array<[unknown, string]> = [
    [null, '$'],
    [{ and: [] }, '$.and'],
    [{ and: [{ trait: 'plan', op: '~', value: 'x' }] }, '$.and[0].op'],
    [{ or: [{ trait: 'plan', op: '=', value: 'a' }, { not: { event: 'E', count: { op: '>=', value: -1 } } }] }, '$.or[1].not.count'],
    [{ trait: 'plan', op: 'in', value: [] }, '$.value'],
    [{ trait: 'plan', op: 'matches', value: '(a+)+$' }, '$.op'],
    [{ event: 'E', where: [{ property: 'total', op: 'regex', value: '.*' }] }, '$.where[0].op'],
    [{ trait: 'plan', op: '=', value: 'a', extra: 1 }, '$.extra'],
    [{ audience: 'not a key!' }, '$'],
    [{ and: Array.from({ length: 250 }, () => ({ trait: 'a', op: 'exists' })) }, '$.and[199]'],
  ];
  for (const [definition, path] of cases) {
    assert.throws(() => validateDefinition(definition), (err: unknown) => err instanceof DefinitionError && err.path === path, JSON.stringify(definition).slice(0, 80));
  }
});

test('audiences that reference each other in a cycle are refused', () => {
  const a = { key: 'a', name: 'a', definition: { audience: 'b' } as AudienceNode };
  const b = { key: 'b', name: 'b', definition: { not: { audience: 'a' } } as AudienceNode };
  assert.throws(() => dependencyOrder([a, b]), /cycle/);
  assert.deepEqual(dependencyOrder([a, { ...b, definition: { trait: 'x', op: 'exists' } }]).map((x) => x.key), ['b', 'a']);
});
