import { eventTraitKey, type AudienceNode, type Comparison } from './definition.ts';

/** What evaluation reads about one profile. */
export type ProfileView = {
  /** A trait's value: computed values first, then custom traits; undefined when absent. */
  value(key: string): unknown;
  member(audienceKey: string): boolean;
  now: number;
};

const DAY = 86_400_000;

function timeOf(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

/**
 * One comparison. Missing values satisfy only `not_exists` and `!=`; ordering compares numbers
 * with numbers and strings with strings (ISO dates order correctly as strings), nothing else.
 */
export function compare(actual: unknown, c: Comparison, now: number): boolean {
  const present = actual !== undefined && actual !== null;
  switch (c.op) {
    case 'exists':
      return present;
    case 'not_exists':
      return !present;
    case '=':
      return actual === c.value;
    case '!=':
      return actual !== c.value;
    case 'in':
      return present && c.value.includes(actual as never);
    case 'contains':
      return typeof actual === 'string' && typeof c.value === 'string' ? actual.includes(c.value) : Array.isArray(actual) && actual.includes(c.value);
    case 'before':
    case 'after': {
      const t = timeOf(actual);
      const ref = Date.parse(c.value);
      return t !== undefined && (c.op === 'before' ? t < ref : t > ref);
    }
    case 'within_days':
    case 'older_than_days': {
      const t = timeOf(actual);
      if (t === undefined) return false;
      return c.op === 'within_days' ? t >= now - c.value * DAY && t <= now : t < now - c.value * DAY;
    }
    default: {
      if (typeof actual !== typeof c.value || (typeof actual !== 'number' && typeof actual !== 'string')) return false;
      const a = actual as number | string;
      const b = c.value as number | string;
      return c.op === '>' ? a > b : c.op === '>=' ? a >= b : c.op === '<' ? a < b : a <= b;
    }
  }
}

export function evaluate(node: AudienceNode, profile: ProfileView): boolean {
  if ('and' in node) return node.and.every((n) => evaluate(n, profile));
  if ('or' in node) return node.or.some((n) => evaluate(n, profile));
  if ('not' in node) return !evaluate(node.not, profile);
  if ('audience' in node) return profile.member(node.audience);
  if ('event' in node) {
    const count = Number(profile.value(eventTraitKey(node)) ?? 0);
    const want = node.count ?? { op: '>=', value: 1 };
    return compare(count, want, profile.now);
  }
  return compare(profile.value(node.trait), node, profile.now);
}
