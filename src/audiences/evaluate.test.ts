import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DefinitionError, dependencyOrder, validateDefinition, type AudienceNode } from './definition.ts';
import { evaluate } from './evaluate.ts';

type Profile = { traits: Record<string, unknown>; members: Set<string>; consents: Record<string, boolean>; accounts: Array<Record<string, unknown>> };

/** A straightforward reference: every condition spelled out on its own, no shared helpers. */
function reference(node: any, p: Profile): boolean {
  if (node.and) return node.and.every((n: unknown) => reference(n, p));
  if (node.or) return node.or.some((n: unknown) => reference(n, p));
  if (node.not) return !reference(node.not, p);
  if (node.audience) return p.members.has(node.audience);
  if (node.consent) return p.consents[node.consent] === true;
  if (node.account) {
    const having = p.accounts.filter((a) => node.account in a);
    if (node.op === 'not_exists') return having.every((a) => a[node.account] === null);
    return having.some((a) => leaf(node, a[node.account]));
  }
  return leaf(node, p.traits[node.trait]);
}

function leaf(node: any, v: unknown): boolean {
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

const view = (p: Profile, now = 0) => ({
  value: (k: string) => p.traits[k],
  member: (k: string) => p.members.has(k),
  consent: (purpose: string) => p.consents[purpose],
  account: (k: string) => p.accounts.filter((a) => k in a).map((a) => a[k]),
  now,
});

const KEYS = ['plan', 'seats', 'vip', 'country'];
const PURPOSES = ['Advertising', 'Analytics'];
const scalar = fc.oneof(fc.constantFrom('pro', 'free', 'DE', 'FR', 'a', ''), fc.integer({ min: -3, max: 30 }), fc.boolean());
const comparison = fc.oneof(
  fc.record({ op: fc.constantFrom('=', '!=', '>', '>=', '<', '<='), value: scalar.filter((v) => typeof v !== 'boolean') }),
  fc.record({ op: fc.constantFrom('=', '!='), value: scalar }),
  fc.record({ op: fc.constantFrom('exists', 'not_exists') }),
  fc.record({ op: fc.constant('in'), value: fc.array(scalar, { minLength: 1, maxLength: 3 }) }),
);
const leafNode = fc.oneof(
  fc.tuple(fc.constantFrom(...KEYS), comparison).map(([trait, c]) => ({ trait, ...c })),
  fc.tuple(fc.constantFrom(...KEYS), comparison).map(([account, c]) => ({ account, ...c })),
  fc.record({ audience: fc.constantFrom('a1', 'a2') }),
  fc.record({ consent: fc.constantFrom(...PURPOSES) }),
);
const tree: fc.Arbitrary<AudienceNode> = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leafNode, fc.record({ and: fc.array(tie('node'), { minLength: 1, maxLength: 3 }) }), fc.record({ or: fc.array(tie('node'), { minLength: 1, maxLength: 3 }) }), fc.record({ not: tie('node') })),
})).node as fc.Arbitrary<AudienceNode>;
const values = fc.dictionary(fc.constantFrom(...KEYS), fc.oneof(scalar, fc.constant(null)), { maxKeys: 4 });
const profile: fc.Arbitrary<Profile> = fc.record({
  traits: values,
  members: fc.subarray(['a1', 'a2']).map((m) => new Set(m)),
  consents: fc.dictionary(fc.constantFrom(...PURPOSES), fc.boolean()),
  accounts: fc.array(values, { maxLength: 3 }),
});

test('property: the evaluator agrees with a straightforward reference on random profiles and definitions', () => {
  fc.assert(
    fc.property(tree, profile, (definition, p) => {
      validateDefinition(definition);
      assert.equal(evaluate(definition, view(p)), reference(definition, p));
    }),
    { numRuns: 3000 },
  );
});

test('event conditions count hidden computed values; dates compare absolutely and relative to now', () => {
  const now = Date.parse('2026-06-01T00:00:00Z');
  const at = (traits: Record<string, unknown>) => view({ traits, members: new Set(), consents: {}, accounts: [] }, now);
  const bought = { event: 'Order Completed', withinDays: 30 } as const;
  validateDefinition(bought);
  assert.equal(evaluate({ not: bought }, at({})), true, 'did not perform');
  assert.equal(evaluate({ trait: 'signed_up', op: 'before', value: '2026-01-01' }, at({ signed_up: '2025-12-31T10:00:00Z' })), true);
  assert.equal(evaluate({ trait: 'last_seen', op: 'within_days', value: 7 }, at({ last_seen: '2026-05-28T00:00:00Z' })), true);
  assert.equal(evaluate({ trait: 'last_seen', op: 'older_than_days', value: 7 }, at({ last_seen: '2026-05-28T00:00:00Z' })), false);
  assert.equal(evaluate({ trait: 'tags', op: 'contains', value: 'vip' }, at({ tags: ['new', 'vip'] })), true);
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
    [{ consent: '' }, '$'],
    [{ account: 'plan', op: '=', value: 'a', trait: 'x' }, '$.account'],
    [{ account: 'plan', op: '>', value: true }, '$.value'],
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
