import { isObject, type Json } from '../json.ts';
import type { Audience, AudienceNode } from '../audiences/definition.ts';
import type { ComputedTrait } from '../profiles/computed-traits.ts';
import type { PlanDefinition } from './tracking-plan.ts';
import type { AccessStore } from '../store/ports.ts';

/**
 * What a change to a tracking plan does: events (track, page, screen names) added, removed or
 * changed, properties added or removed per event, identify/group schemas changed, and fields
 * tagged as personal data (`x-pii`) added or removed.
 */
export type PlanDiff = {
  events: { added: string[]; removed: string[]; changed: string[] };
  properties: Array<{ event: string; added: string[]; removed: string[] }>;
  traits: { identify: boolean; group: boolean };
  pii: { added: string[]; removed: string[] };
  policy: { unplannedEvents?: [string | undefined, string | undefined]; unplannedProperties?: [string | undefined, string | undefined] };
};

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const propertiesOf = (schema: unknown): string[] => (isObject(schema) && isObject(schema.properties) ? Object.keys(schema.properties) : []);

function namedSchemas(plan: PlanDefinition): Map<string, Json> {
  const out = new Map<string, Json>();
  for (const [group, label] of [['events', ''], ['pages', 'page:'], ['screens', 'screen:']] as const) for (const [name, schema] of Object.entries(plan[group] ?? {})) out.set(`${label}${name}`, schema);
  return out;
}

function piiTags(plan: PlanDefinition): Set<string> {
  const out = new Set<string>();
  const walk = (schema: unknown, where: string): void => {
    if (!isObject(schema) || !isObject(schema.properties)) return;
    for (const [name, sub] of Object.entries(schema.properties)) {
      if (isObject(sub) && typeof sub['x-pii'] === 'string') out.add(`${where}.${name} (${sub['x-pii']})`);
      walk(sub, `${where}.${name}`);
    }
  };
  for (const [name, schema] of namedSchemas(plan)) walk(schema, name);
  walk(plan.identify, 'identify');
  walk(plan.group, 'group');
  return out;
}

export function diffPlans(base: PlanDefinition, proposed: PlanDefinition): PlanDiff {
  const [a, b] = [namedSchemas(base), namedSchemas(proposed)];
  const added = [...b.keys()].filter((k) => !a.has(k)).sort();
  const removed = [...a.keys()].filter((k) => !b.has(k)).sort();
  const changed = [...b.keys()].filter((k) => a.has(k) && !same(a.get(k), b.get(k))).sort();
  const properties = [...new Set([...added, ...removed, ...changed])]
    .sort()
    .map((event) => {
      const [before, after] = [propertiesOf(a.get(event)), propertiesOf(b.get(event))];
      return { event, added: after.filter((p) => !before.includes(p)), removed: before.filter((p) => !after.includes(p)) };
    })
    .filter((p) => p.added.length + p.removed.length > 0);
  const [tagsA, tagsB] = [piiTags(base), piiTags(proposed)];
  const policy: PlanDiff['policy'] = {};
  if (base.unplannedEvents !== proposed.unplannedEvents) policy.unplannedEvents = [base.unplannedEvents, proposed.unplannedEvents];
  if (base.unplannedProperties !== proposed.unplannedProperties) policy.unplannedProperties = [base.unplannedProperties, proposed.unplannedProperties];
  return {
    events: { added, removed, changed },
    properties,
    traits: { identify: !same(base.identify, proposed.identify), group: !same(base.group, proposed.group) },
    pii: { added: [...tagsB].filter((t) => !tagsA.has(t)).sort(), removed: [...tagsA].filter((t) => !tagsB.has(t)).sort() },
    policy,
  };
}

/** The track event names, page and screen names (prefixed) a diff touches. */
export const touchedEvents = (d: PlanDiff) => [...new Set([...d.events.added, ...d.events.removed, ...d.events.changed])];

/** Audiences and computed traits that read events or traits a diff touches. */
export function referencing(d: PlanDiff, audiences: Audience[], traits: ComputedTrait[]) {
  const events = new Set(touchedEvents(d));
  const traitFields = new Set(d.traits.identify || d.traits.group ? ['*'] : []);
  const readsEvent = (node: AudienceNode): boolean => {
    if ('and' in node) return node.and.some(readsEvent);
    if ('or' in node) return node.or.some(readsEvent);
    if ('not' in node) return readsEvent(node.not);
    if ('event' in node) return events.has(node.event);
    if ('trait' in node || 'account' in node) return traitFields.has('*');
    return false;
  };
  return {
    audiences: audiences.filter((a) => readsEvent(a.definition)).map((a) => a.key),
    computedTraits: traits.filter((t) => !t.key.startsWith('__') && events.has(t.event)).map((t) => t.key),
  };
}

/**
 * Which changes a workspace wants reviewed before they apply: tracking plan changes, new
 * destinations, and activations that would send personal data to a destination.
 */
export type GovernanceSettings = { approvalRequired: { tracking_plan: boolean; destination: boolean; pii_to_destination: boolean } };
export const DEFAULT_APPROVAL: GovernanceSettings['approvalRequired'] = { tracking_plan: true, destination: true, pii_to_destination: true };

export function settingsOf(access: AccessStore, workspaceId: string): GovernanceSettings {
  const stored = JSON.parse(access.governanceSettings(workspaceId) ?? '{}') as Partial<GovernanceSettings>;
  return { approvalRequired: { ...DEFAULT_APPROVAL, ...stored.approvalRequired } };
}
