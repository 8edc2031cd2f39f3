import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { extractIdentifiers, type Identifier } from './identifiers.ts';
import { DEFAULT_RULES, planEvent, type GraphView, type IdentityRules, type Plan } from './merge-policy.ts';

/** A graph in memory that applies plans: the reference the stores are compared with. */
class MemoryGraph implements GraphView {
  owner = new Map<string, string>();
  mergeCount = new Map<string, number>();
  #next = 0;
  static key = (id: Identifier) => `${id.type}:${id.value}`;
  profileOf(id: Identifier) {
    return this.owner.get(MemoryGraph.key(id));
  }
  counts(profileId: string) {
    const c: Record<string, number> = {};
    for (const [k, p] of this.owner) if (p === profileId) c[k.split(':')[0]!] = (c[k.split(':')[0]!] ?? 0) + 1;
    return c;
  }
  merges(profileId: string) {
    return this.mergeCount.get(profileId) ?? 0;
  }
  pinnedIds = new Set<string>();
  pinned(id: Identifier) {
    return this.pinnedIds.has(MemoryGraph.key(id));
  }
  apply(plan: Plan): string | undefined {
    if (plan.links.length === 0 && plan.target === null) return undefined;
    const target = plan.target ?? `p${++this.#next}`;
    for (const m of plan.merges) {
      for (const [k, p] of this.owner) if (p === m.profileId) this.owner.set(k, target);
      this.mergeCount.set(target, this.merges(target) + this.merges(m.profileId) + 1);
    }
    for (const l of plan.links) this.owner.set(MemoryGraph.key(l.id), target);
    return target;
  }
  send(event: Record<string, unknown>, rules: IdentityRules = DEFAULT_RULES) {
    const plan = planEvent(extractIdentifiers(event).ids, this, rules);
    return { plan, profile: this.apply(plan) };
  }
  partition(): string[][] {
    const groups = new Map<string, string[]>();
    for (const [k, p] of this.owner) groups.set(p, [...(groups.get(p) ?? []), k]);
    return [...groups.values()].map((g) => g.sort()).sort((a, b) => a[0]!.localeCompare(b[0]!));
  }
}

const ids = (g: MemoryGraph, profile: string | undefined) => [...g.owner].filter(([, p]) => p === profile).map(([k]) => k).sort();

describe('merge policy rules', () => {
  test('identify with userId and anonymousId stitches the anonymous history to the user, without a merge', () => {
    const g = new MemoryGraph();
    const anon = g.send({ type: 'page', anonymousId: 'a1' }).profile;
    const { plan, profile } = g.send({ type: 'identify', userId: 'u1', anonymousId: 'a1' });
    assert.equal(profile, anon);
    assert.deepEqual(plan.merges, []);
    assert.deepEqual(plan.links, [{ id: { type: 'user_id', value: 'u1' }, rule: 'joined_by_identifier' }]);
  });

  test('identify after the track it explains converges: two anonymous profiles merge through the user', () => {
    const g = new MemoryGraph();
    g.send({ type: 'track', event: 'x', anonymousId: 'a1' });
    g.send({ type: 'identify', userId: 'u1', traits: { email: 'U1@Example.com ' } });
    const { plan } = g.send({ type: 'identify', userId: 'u1', anonymousId: 'a1' });
    assert.equal(plan.merges.length, 1);
    assert.deepEqual(g.partition(), [['anonymous_id:a1', 'email:u1@example.com', 'user_id:u1']]);
  });

  test('user_id limit 1: a shared device never joins two users; each user keeps a profile', () => {
    const g = new MemoryGraph();
    const alice = g.send({ type: 'identify', userId: 'alice', anonymousId: 'tablet' }).profile;
    const { plan, profile } = g.send({ type: 'identify', userId: 'bob', anonymousId: 'tablet' });
    assert.notEqual(profile, alice, "bob's events do not land on alice's profile");
    assert.deepEqual(plan.warnings.map((w) => [w.kind, w.rule]), [['merge_refused', 'limit:user_id=1']]);
    const carol = g.send({ type: 'track', event: 'Bought', userId: 'carol', anonymousId: 'tablet' }).profile;
    assert.equal(new Set([alice, profile, carol]).size, 3);
    assert.deepEqual(ids(g, alice), ['anonymous_id:tablet', 'user_id:alice']);
  });

  test('alias never merges two identified users; it links an anonymous previousId', () => {
    const g = new MemoryGraph();
    const a = g.send({ type: 'identify', userId: 'u-old' }).profile;
    const b = g.send({ type: 'identify', userId: 'u-new' }).profile;
    const { plan } = g.send({ type: 'alias', userId: 'u-new', previousId: 'u-old' });
    assert.notEqual(a, b);
    assert.equal(plan.merges.length, 0);
    assert.equal(plan.warnings[0]?.rule, 'limit:user_id=1');
    const anon = g.send({ type: 'page', anonymousId: 'anon-9' }).profile;
    const alias = g.send({ type: 'alias', userId: 'u-new', previousId: 'anon-9' });
    assert.deepEqual(alias.plan.merges.map((m) => m.profileId), [anon]);
    assert.deepEqual(ids(g, b), ['anonymous_id:anon-9', 'user_id:u-new']);
  });

  test('a support agent "logging in as" a customer on the agent\'s device does not merge them', () => {
    const g = new MemoryGraph();
    const agent = g.send({ type: 'identify', userId: 'agent-7', anonymousId: 'agent-laptop', traits: { email: 'agent@shop.example' } }).profile;
    const customer = g.send({ type: 'identify', userId: 'cust-1', anonymousId: 'agent-laptop' }).profile;
    assert.notEqual(agent, customer);
    assert.deepEqual(ids(g, agent), ['anonymous_id:agent-laptop', 'email:agent@shop.example', 'user_id:agent-7']);
  });

  test('other types default to 5 per profile; the 6th is refused with a warning, never half applied', () => {
    const g = new MemoryGraph();
    for (let i = 1; i <= 5; i++) g.send({ type: 'identify', userId: 'u', anonymousId: `d${i}` });
    const { plan, profile } = g.send({ type: 'identify', userId: 'u', anonymousId: 'd6' });
    assert.equal(plan.warnings[0]?.rule, 'limit:anonymous_id=5');
    assert.equal(g.profileOf({ type: 'anonymous_id', value: 'd6' }), undefined);
    assert.equal(ids(g, profile).length, 6);
  });

  test('limits and priority are per workspace', () => {
    const rules: IdentityRules = { ...DEFAULT_RULES, limits: { user_id: 1, anonymous_id: 1 }, priority: ['email', 'user_id', 'anonymous_id'] };
    const g = new MemoryGraph();
    const p = g.send({ type: 'identify', userId: 'u1', anonymousId: 'a1' }, rules).profile;
    const second = g.send({ type: 'identify', userId: 'u1', anonymousId: 'a2' }, rules);
    assert.equal(second.plan.warnings[0]?.rule, 'limit:anonymous_id=1');
    const byEmail = g.send({ type: 'identify', userId: 'u9', traits: { email: 'x@y.io' } }, rules);
    assert.equal(byEmail.plan.links[0]?.id.type, 'email', 'email ranks first here');
    assert.notEqual(byEmail.profile, p);
  });

  test('the merge cap stops a profile from absorbing more than N others', () => {
    const rules: IdentityRules = { ...DEFAULT_RULES, mergeCap: 2, defaultLimit: 100 };
    const g = new MemoryGraph();
    for (let i = 0; i < 4; i++) g.send({ type: 'page', anonymousId: `a${i}` });
    const hub = g.send({ type: 'identify', userId: 'u', anonymousId: 'a0' }).profile;
    const results = [1, 2, 3].map((i) => g.send({ type: 'identify', userId: 'u', anonymousId: `a${i}` }, rules));
    assert.deepEqual(results.map((r) => r.plan.merges.length), [1, 1, 0]);
    assert.equal(results[2]!.plan.warnings[0]?.rule, 'merge_cap=2');
    assert.equal(g.merges(hub!), 2);
  });

  test('an identifier split off by an administrator never merges back automatically', () => {
    const g = new MemoryGraph();
    g.send({ type: 'page', anonymousId: 'kiosk' });
    const alice = g.send({ type: 'identify', userId: 'alice' }).profile;
    g.pinnedIds.add('anonymous_id:kiosk');
    const { plan, profile } = g.send({ type: 'identify', userId: 'alice', anonymousId: 'kiosk' });
    assert.equal(profile, alice);
    assert.deepEqual(plan.merges, []);
    assert.equal(plan.warnings[0]?.rule, 'split');
  });

  test('blocked values never link anything: every junk identifier of shared/RELIABILITY.md', () => {
    const g = new MemoryGraph();
    const dictionary = [null, undefined, 'null', 'undefined', '', ' ', '\t', '0', 0, -1, '-1', '000-000', 'NaN', 'None', 'none', 'nil', 'anonymous', 'guest', 'id', 'email', 'true', 'false', true, false, '[object Object]', 'abc123', {}, [], '\u200b', '\u202e', '\u0000', ' null '];
    const junk = [...dictionary, ...dictionary.filter((v) => typeof v === 'string').flatMap((v) => [`"${v}"`, `'${v}'`])];
    for (const [i, value] of junk.entries()) {
      g.send({ type: 'identify', userId: value, anonymousId: `device-${i}` });
      g.send({ type: 'identify', userId: `real-${i}`, anonymousId: value });
      g.send({ type: 'identify', userId: `mail-${i}`, traits: { email: value } });
    }
    for (const group of g.partition()) assert.ok(group.length <= 2, `no stranger joined: ${group}`);
    assert.deepEqual([...g.owner.keys()].map((k) => k.slice(k.indexOf(':') + 1)).filter((v) => !/^(device|real|mail)-\d+$/.test(v)), [], 'only the real identifiers were linked');
  });
});

describe('property: delivery order does not matter when no limit is hit', () => {
  test('any order of the same events gives the same partition', () => {
    const person = fc.integer({ min: 0, max: 5 });
    const event = fc.record({ p: person, anon: fc.integer({ min: 0, max: 3 }), kind: fc.constantFrom('identify', 'anon', 'email') }).map(({ p, anon, kind }) =>
      kind === 'identify' ? { type: 'identify', userId: `u${p}`, anonymousId: `a${p}-${anon}` } : kind === 'email' ? { type: 'identify', userId: `u${p}`, traits: { email: `p${p}@x.io` } } : { type: 'page', anonymousId: `a${p}-${anon}` },
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }).chain((events) => fc.tuple(fc.constant(events), fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }))), ([events, shuffled]) => {
        const a = new MemoryGraph();
        const b = new MemoryGraph();
        for (const e of events) a.send(e);
        for (const e of shuffled) b.send(e);
        assert.deepEqual(a.partition(), b.partition());
      }),
      { numRuns: 300 },
    );
  });
});
