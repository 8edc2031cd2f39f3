import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { linearRegExp } from './linear-regexp.ts';
import { isObject, type Json } from '../json.ts';

/**
 * A tracking plan: JSON Schema (draft 2020-12) per event name for `track` properties, per name
 * for `page`/`screen` properties, and for `identify` and `group` traits, with a policy for
 * unplanned events and unplanned properties. Compiled once per version with Ajv.
 */
export type PlanDefinition = {
  events?: Record<string, Json>;
  pages?: Record<string, Json>;
  screens?: Record<string, Json>;
  identify?: Json;
  group?: Json;
  /** Whether an event the plan does not name is a violation (default: it is). */
  unplannedEvents?: 'allow' | 'violation';
  /** Whether properties or traits a schema does not list are violations (default: allowed). */
  unplannedProperties?: 'allow' | 'violation';
};

/** What a source does with an event that breaks its plan. */
export type Enforcement = 'allow' | 'flag' | 'block';
export const ENFORCEMENTS: readonly Enforcement[] = ['allow', 'flag', 'block'];

const NAME_MAP = { type: 'object', maxProperties: 2000, propertyNames: { minLength: 1, maxLength: 200 }, additionalProperties: { type: 'object' } } as const;
export const PLAN_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    events: NAME_MAP,
    pages: NAME_MAP,
    screens: NAME_MAP,
    identify: { type: 'object' },
    group: { type: 'object' },
    unplannedEvents: { enum: ['allow', 'violation'] },
    unplannedProperties: { enum: ['allow', 'violation'] },
  },
} as const;

export class PlanError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.path = path;
  }
}

/** At most this many violations are kept per event. */
const MAX_VIOLATIONS = 10;

/** The violations of one event, as `<field>:<keyword>` (e.g. `properties.total:type`), or `unplanned_event`. */
export type PlanCheck = (type: string, item: Json) => string[];

export function compilePlan(plan: PlanDefinition): PlanCheck {
  // One Ajv per plan version: schemas are compiled once and validation allocates nothing else.
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false, code: { regExp: linearRegExp } });
  const strictProperties = plan.unplannedProperties === 'violation';
  const compile = (schema: Json, path: string): ValidateFunction => {
    const s = strictProperties && schema.type === 'object' && schema.additionalProperties === undefined ? { ...schema, additionalProperties: false } : schema;
    try {
      return ajv.compile(s);
    } catch (err) {
      throw new PlanError(path, err instanceof Error ? err.message : String(err));
    }
  };
  const byName = (group: Record<string, Json> | undefined, path: string) => new Map(Object.entries(group ?? {}).map(([name, schema]) => [name, compile(schema, `${path}.${JSON.stringify(name)}`)]));
  const events = byName(plan.events, '$.events');
  const pages = byName(plan.pages, '$.pages');
  const screens = byName(plan.screens, '$.screens');
  const identify = plan.identify ? compile(plan.identify, '$.identify') : undefined;
  const group = plan.group ? compile(plan.group, '$.group') : undefined;
  const unplanned = plan.unplannedEvents !== 'allow';

  const check = (validate: ValidateFunction | undefined, value: unknown, field: string): string[] => {
    if (!validate) return unplanned ? ['unplanned_event'] : [];
    return validate(isObject(value) ? value : {}) ? [] : (validate.errors ?? []).slice(0, MAX_VIOLATIONS).map((e) => violation(field, e));
  };
  return (type, item) => {
    switch (type) {
      case 'track':
        return check(events.get(String(item.event)), item.properties, 'properties');
      case 'page':
        return check(pages.get(String(item.name ?? '')), item.properties, 'properties');
      case 'screen':
        return check(screens.get(String(item.name ?? '')), item.properties, 'properties');
      case 'identify':
        return identify ? check(identify, item.traits, 'traits') : [];
      case 'group':
        return group ? check(group, item.traits, 'traits') : [];
      default:
        return [];
    }
  };
}

function violation(field: string, e: ErrorObject): string {
  const path = e.instancePath.split('/').slice(1).map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (e.keyword === 'required') path.push(String(e.params.missingProperty));
  if (e.keyword === 'additionalProperties') path.push(String(e.params.additionalProperty));
  const keyword = e.keyword === 'additionalProperties' ? 'unplanned_property' : e.keyword;
  return `${[field, ...path].join('.')}:${keyword}`;
}
