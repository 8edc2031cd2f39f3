import type { Comparison } from '../profiles/compare.ts';
import type { ComputedTrait, Filter } from '../profiles/computed-traits.ts';

export type { Comparison };

/**
 * An audience is a JSON tree of conditions. Event conditions compile to hidden computed traits
 * (count of matching events, optionally in a window), so they are kept current, backfilled and
 * lapse on time by the same machinery as computed traits; the tree is then evaluated over a
 * profile's traits, computed values and memberships.
 */
export type AudienceNode =
  | { and: AudienceNode[] }
  | { or: AudienceNode[] }
  | { not: AudienceNode }
  | ({ trait: string } & Comparison)
  | { event: string; where?: Filter[]; withinDays?: number; count?: { op: '>=' | '>' | '=' | '<' | '<='; value: number } }
  | { audience: string }
  /** The profile's latest consent for a purpose (Segment's `context.consent.categoryPreferences`) is granted. */
  | { consent: string }
  /** A trait of an account (group) the profile belongs to: true when any linked account's value matches. */
  | ({ account: string } & Comparison);

/** The computed traits the lifetime-value models write per profile, readable in audiences. */
export const VALUE_TIER_TRAIT = 'value_tier';
export const PREDICTED_CLV_TRAIT = 'predicted_clv';

export type Audience = { key: string; name: string; definition: AudienceNode };

export class DefinitionError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.path = path;
  }
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const TRAIT_OPS = ['exists', 'not_exists', '=', '!=', '>', '>=', '<', '<=', 'in', 'contains', 'before', 'after', 'within_days', 'older_than_days'];
const COUNT_OPS = ['>=', '>', '=', '<', '<='];
const FILTER_OPS = ['=', '!=', '>', '>=', '<', '<=', 'exists', 'in', 'contains'];
const MAX_NODES = 200;
const isScalar = (v: unknown) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean';

/** Checks a definition; throws a DefinitionError naming the JSON path of the bad node. */
export function validateDefinition(node: unknown, path = '$', budget = { nodes: 0 }): AudienceNode {
  if (++budget.nodes > MAX_NODES) throw new DefinitionError(path, `a definition has at most ${MAX_NODES} nodes`);
  if (typeof node !== 'object' || node === null || Array.isArray(node)) throw new DefinitionError(path, 'must be an object');
  const n = node as Record<string, unknown>;
  const keys = Object.keys(n);
  if ('and' in n || 'or' in n) {
    const op = 'and' in n ? 'and' : 'or';
    if (keys.length !== 1) throw new DefinitionError(path, `${op} takes no other fields`);
    const children = n[op];
    if (!Array.isArray(children) || children.length === 0) throw new DefinitionError(`${path}.${op}`, 'must be a non-empty array');
    children.forEach((c, i) => validateDefinition(c, `${path}.${op}[${i}]`, budget));
    return node as AudienceNode;
  }
  if ('not' in n) {
    if (keys.length !== 1) throw new DefinitionError(path, 'not takes no other fields');
    validateDefinition(n.not, `${path}.not`, budget);
    return node as AudienceNode;
  }
  if ('audience' in n) {
    if (keys.length !== 1 || typeof n.audience !== 'string' || !KEY.test(n.audience)) throw new DefinitionError(path, 'audience must name an audience key');
    return node as AudienceNode;
  }
  if ('consent' in n) {
    if (keys.length !== 1 || typeof n.consent !== 'string' || n.consent.length === 0 || n.consent.length > 100) throw new DefinitionError(path, 'consent must name a purpose');
    return node as AudienceNode;
  }
  if ('trait' in n || 'account' in n) {
    const field = 'trait' in n ? 'trait' : 'account';
    const name = n[field];
    if (typeof name !== 'string' || name.length === 0 || name.length > 200) throw new DefinitionError(`${path}.${field}`, `must be a${field === 'trait' ? '' : 'n account'} trait name`);
    if (typeof n.op !== 'string' || !TRAIT_OPS.includes(n.op)) throw new DefinitionError(`${path}.op`, `must be one of ${TRAIT_OPS.join(', ')}`);
    const extra = keys.filter((k) => ![field, 'op', 'value'].includes(k));
    if (extra.length) throw new DefinitionError(`${path}.${extra[0]}`, `is not a field of a${field === 'trait' ? '' : 'n account'} trait condition`);
    const v = n.value;
    const bad = (why: string) => new DefinitionError(`${path}.value`, why);
    switch (n.op) {
      case 'exists':
      case 'not_exists':
        if (v !== undefined) throw bad('takes no value');
        break;
      case 'in':
        if (!Array.isArray(v) || v.length === 0 || v.length > 1000 || !v.every(isScalar)) throw bad('must be a non-empty list of strings, numbers or booleans');
        break;
      case '>': case '>=': case '<': case '<=':
        if (!(typeof v === 'number' && Number.isFinite(v)) && typeof v !== 'string') throw bad('must be a number or a string');
        break;
      case 'before': case 'after':
        if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw bad('must be a date');
        break;
      case 'within_days': case 'older_than_days':
        if (typeof v !== 'number' || !(v > 0) || v > 36500) throw bad('must be a number of days');
        break;
      default:
        if (!isScalar(v)) throw bad('must be a string, number or boolean');
    }
    return node as AudienceNode;
  }
  if ('event' in n) {
    if (typeof n.event !== 'string' || n.event.length === 0 || n.event.length > 200) throw new DefinitionError(`${path}.event`, 'must be an event name');
    const extra = keys.filter((k) => !['event', 'where', 'withinDays', 'count'].includes(k));
    if (extra.length) throw new DefinitionError(`${path}.${extra[0]}`, 'is not a field of an event condition');
    if (n.withinDays !== undefined && (typeof n.withinDays !== 'number' || !(n.withinDays > 0) || n.withinDays > 3650)) throw new DefinitionError(`${path}.withinDays`, 'must be a number of days');
    if (n.where !== undefined) {
      if (!Array.isArray(n.where) || n.where.length > 20) throw new DefinitionError(`${path}.where`, 'must be a list of at most 20 filters');
      n.where.forEach((f: unknown, i: number) => {
        const fp = `${path}.where[${i}]`;
        if (typeof f !== 'object' || f === null) throw new DefinitionError(fp, 'must be an object');
        const ff = f as Record<string, unknown>;
        if (typeof ff.property !== 'string' || ff.property.length === 0) throw new DefinitionError(`${fp}.property`, 'must be a property path');
        if (typeof ff.op !== 'string' || !FILTER_OPS.includes(ff.op)) throw new DefinitionError(`${fp}.op`, `must be one of ${FILTER_OPS.join(', ')}`);
      });
    }
    if (n.count !== undefined) {
      const c = n.count as Record<string, unknown>;
      if (typeof c !== 'object' || c === null || !COUNT_OPS.includes(c.op as string) || typeof c.value !== 'number' || !Number.isInteger(c.value) || c.value < 0) throw new DefinitionError(`${path}.count`, 'must be {op, value} with a whole number');
    }
    return node as AudienceNode;
  }
  throw new DefinitionError(path, 'must be one of and, or, not, trait, event, audience, consent, account');
}

const keys = new WeakMap<object, string>();

/** A stable key for the hidden computed trait behind an event condition (memoised per node). */
export function eventTraitKey(node: { event: string; where?: Filter[]; withinDays?: number }): string {
  let key = keys.get(node);
  if (key === undefined) keys.set(node, (key = hashKey(node)));
  return key;
}

const hashKey = (node: { event: string; where?: Filter[]; withinDays?: number }): string => hiddenKey('__ev_', [node.event, node.where ?? [], node.withinDays ?? null]);

/** A stable key for a hidden computed trait (never shown as a trait): a prefix and a hash of its spec. */
export function hiddenKey(prefix: string, parts: unknown[]): string {
  const spec = JSON.stringify(parts);
  let h = 2166136261;
  for (let i = 0; i < spec.length; i++) h = Math.imul(h ^ spec.charCodeAt(i), 16777619) >>> 0;
  return `${prefix}${h.toString(36)}_${spec.length.toString(36)}`;
}

/** The hidden computed traits an audience needs, one per distinct event condition. */
export function eventTraits(node: AudienceNode): ComputedTrait[] {
  const out = new Map<string, ComputedTrait>();
  const walk = (n: AudienceNode): void => {
    if ('and' in n) n.and.forEach(walk);
    else if ('or' in n) n.or.forEach(walk);
    else if ('not' in n) walk(n.not);
    else if ('event' in n) {
      const key = eventTraitKey(n);
      out.set(key, { key, kind: 'count', event: n.event, ...(n.where ? { filters: n.where } : {}), ...(n.withinDays ? { windowDays: n.withinDays } : {}) });
    }
  };
  walk(node);
  return [...out.values()];
}

/**
 * What a definition reads, as change keys: trait and computed keys as they are, `consent:<purpose>`
 * and `account:<trait>`; and the audiences it reads. A profile change re-evaluates the audiences
 * whose keys it touched.
 */
export function references(node: AudienceNode): { keys: Set<string>; audiences: Set<string> } {
  const needs = needsOf(node);
  return { keys: new Set([...needs.keys, ...needs.consents.map(consentKey), ...needs.accounts.map(accountKey)]), audiences: new Set(needs.audiences) };
}

/**
 * What evaluating a definition over many profiles has to load for each. `keys` are read from
 * custom traits and computed values alike, unless `computedKeys` says which of them can be
 * computed (the others are then read from custom traits only; hidden `__` keys only from
 * computed values).
 */
export type Needs = { keys: string[]; audiences: string[]; consents: string[]; accounts: string[]; computedKeys?: Set<string> };

export function needsOf(node: AudienceNode): Needs {
  const keys = new Set<string>();
  const audiences = new Set<string>();
  const consents = new Set<string>();
  const accounts = new Set<string>();
  const walk = (n: AudienceNode): void => {
    if ('and' in n) n.and.forEach(walk);
    else if ('or' in n) n.or.forEach(walk);
    else if ('not' in n) walk(n.not);
    else if ('event' in n) keys.add(eventTraitKey(n));
    else if ('trait' in n) keys.add(n.trait);
    else if ('consent' in n) consents.add(n.consent);
    else if ('account' in n) accounts.add(n.account);
    else audiences.add(n.audience);
  };
  walk(node);
  return { keys: [...keys], audiences: [...audiences], consents: [...consents], accounts: [...accounts] };
}

export const consentKey = (purpose: string) => `consent:${purpose}`;
export const accountKey = (trait: string) => `account:${trait}`;

/** Whether a definition compares with "now" (within_days, older_than_days): it changes with time alone. */
export function dependsOnNow(node: AudienceNode): boolean {
  if ('and' in node) return node.and.some(dependsOnNow);
  if ('or' in node) return node.or.some(dependsOnNow);
  if ('not' in node) return dependsOnNow(node.not);
  return ('trait' in node || 'account' in node) && (node.op === 'within_days' || node.op === 'older_than_days');
}

/** Audience keys in an order where each comes after those it depends on; throws on a cycle. */
export function dependencyOrder(audiences: Audience[]): Audience[] {
  const byKey = new Map(audiences.map((a) => [a.key, a]));
  const out: Audience[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (a: Audience, path: string[]): void => {
    const s = state.get(a.key);
    if (s === 'done') return;
    if (s === 'visiting') throw new DefinitionError('$', `audiences reference each other in a cycle: ${[...path, a.key].join(' → ')}`);
    state.set(a.key, 'visiting');
    for (const dep of references(a.definition).audiences) {
      const d = byKey.get(dep);
      if (!d) throw new DefinitionError('$', `audience ${JSON.stringify(dep)} does not exist`);
      visit(d, [...path, a.key]);
    }
    state.set(a.key, 'done');
    out.push(a);
  };
  for (const a of audiences) visit(a, []);
  return out;
}
