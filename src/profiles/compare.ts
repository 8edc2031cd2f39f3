/** The comparisons a condition can make on one value. */
export type Comparison =
  | { op: 'exists' | 'not_exists' }
  | { op: '=' | '!='; value: string | number | boolean }
  | { op: '>' | '>=' | '<' | '<='; value: number | string }
  | { op: 'in'; value: Array<string | number | boolean> }
  | { op: 'contains'; value: string | number | boolean }
  | { op: 'before' | 'after'; value: string }
  | { op: 'within_days' | 'older_than_days'; value: number };

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
 * One comparison, shared by audience conditions and computed-trait filters. Missing values
 * satisfy only `not_exists` and `!=`; ordering compares numbers with numbers and strings with
 * strings (ISO dates order correctly as strings), nothing else.
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
      return Array.isArray(c.value) && c.value.includes(actual as never);
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
