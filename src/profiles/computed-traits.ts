import type { Json } from '../json.ts';
import { compare, type Comparison } from './compare.ts';

/**
 * Computed traits: an aggregate over one event name, with property filters and an optional
 * sliding window, kept per profile. Each matching event adds a contribution; the value is
 * recomputed from the profile's contributions in the window, so windows lapse on time.
 */
export const KINDS = ['count', 'sum', 'min', 'max', 'average', 'first', 'last', 'most_frequent', 'unique_list', 'unique_count'] as const;
export type Kind = (typeof KINDS)[number];
export const OPS = ['=', '!=', '>', '>=', '<', '<=', 'exists', 'in', 'contains'] as const;
export type Filter = { property: string; op: (typeof OPS)[number]; value?: unknown };

export type ComputedTrait = {
  key: string;
  kind: Kind;
  /** The track event name (or `page`/`screen` names) the trait aggregates. */
  event: string;
  /** The event property aggregated; not needed for `count`. */
  property?: string;
  filters?: Filter[];
  /** Sliding window in days; absent means all time. */
  windowDays?: number;
};

const NAME = { type: 'string', minLength: 1, maxLength: 200 } as const;
export const COMPUTED_TRAIT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['key', 'kind', 'event'],
  properties: {
    key: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$' },
    kind: { enum: KINDS },
    event: NAME,
    property: NAME,
    filters: { type: 'array', maxItems: 20, items: { type: 'object', additionalProperties: false, required: ['property', 'op'], properties: { property: NAME, op: { enum: OPS }, value: {} } } },
    windowDays: { type: 'number', exclusiveMinimum: 0, maximum: 3650 },
  },
  if: { properties: { kind: { not: { const: 'count' } } } },
  then: { required: ['property'] },
} as const;


function propertyOf(properties: unknown, path: string): unknown {
  let v: unknown = properties;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, part)) return undefined;
    v = (v as Json)[part];
  }
  return v;
}

/** The contribution an event makes to the trait (a value, or 1 for count), or undefined. */
export function contribution(trait: ComputedTrait, e: { type: string; event: string | null; payload: Json }): unknown {
  if (e.event !== trait.event || (e.type !== 'track' && e.type !== 'page' && e.type !== 'screen')) return undefined;
  const properties = e.payload.properties;
  for (const f of trait.filters ?? []) if (!compare(propertyOf(properties, f.property), f as Comparison, 0)) return undefined;
  if (trait.kind === 'count') return 1;
  const value = propertyOf(properties, trait.property!);
  if (value === undefined || value === null) return undefined;
  if (['sum', 'min', 'max', 'average'].includes(trait.kind) && (typeof value !== 'number' || !Number.isFinite(value))) return undefined;
  return value;
}
