import type { Identifier } from './identifiers.ts';
import { PREVIOUS_ID } from './identifiers.ts';

/** Per-workspace identity rules (DESIGN.md, "Identity"); editable through the admin API. */
export type IdentityRules = {
  /** Most identifiers of one type a profile may hold; types not listed use `defaultLimit`. */
  limits: Record<string, number>;
  defaultLimit: number;
  /** Types in order of trust: the first decides which profile an event belongs to. Unlisted custom types rank before `anonymous_id`. */
  priority: string[];
  /** Workspace regular expressions (in addition to the built-in blocked values), per type or `*`. */
  blocked: Array<{ type: string; pattern: string }>;
  /** Most merges one profile may take part in. */
  mergeCap: number;
};

export const DEFAULT_RULES: IdentityRules = {
  limits: { user_id: 1 },
  defaultLimit: 5,
  priority: ['user_id', 'email', 'phone', 'anonymous_id'],
  blocked: [],
  mergeCap: 100,
};

/** What the policy needs to know about the current graph. */
export interface GraphView {
  profileOf(id: Identifier): string | undefined;
  /** How many identifiers of each type the profile holds. */
  counts(profileId: string): Record<string, number>;
  merges(profileId: string): number;
  /** Identifiers split off by an administrator: their profile never merges automatically again. */
  pinned(id: Identifier): boolean;
}

export type Warning =
  | { kind: 'limit'; id: Identifier; profileId: string; rule: string }
  | { kind: 'merge_refused'; id: Identifier; profileId: string; other: string; rule: string };

/**
 * What one event does to the graph: the profile it belongs to (`null`: a new one), the
 * identifiers to link to it, the profiles to merge into it, and what was refused and why.
 * Every link and merge names the rule that allowed it.
 */
export type Plan = {
  target: string | null;
  links: Array<{ id: Identifier; rule: string }>;
  merges: Array<{ profileId: string; via: Identifier; rule: string }>;
  warnings: Warning[];
};

export function limitOf(rules: IdentityRules, type: string): number {
  return rules.limits[type] ?? rules.defaultLimit;
}

function rank(rules: IdentityRules, type: string): number {
  const i = rules.priority.indexOf(type);
  if (i >= 0) return i;
  const anonymous = rules.priority.indexOf('anonymous_id');
  return anonymous >= 0 ? anonymous - 0.5 : rules.priority.length;
}

/** alias's previousId is the user id it names if one exists, else an anonymous id. */
function resolvePrevious(ids: Identifier[], graph: GraphView): Identifier[] {
  return ids.map((id) => {
    if (id.type !== PREVIOUS_ID) return id;
    const asUser = { type: 'user_id', value: id.value };
    return graph.profileOf(asUser) ? asUser : { type: 'anonymous_id', value: id.value };
  });
}

/**
 * Decides, without changing anything, where one event's identifiers go. The highest-priority
 * identifier decides the profile: it joins the profile of the next identifiers only when no
 * limit breaks, otherwise it starts a profile of its own. Two profiles merge only when their
 * identifiers together stay within every limit (so two different user_ids never merge) and
 * the merge cap holds. Limits are never broken halfway: a refused link is a warning.
 */
/** The graph as it stands while one event is planned: each question is asked of the store once. */
function memoized(graph: GraphView): GraphView {
  const owners = new Map<string, string | undefined>();
  const counts = new Map<string, Record<string, number>>();
  const merges = new Map<string, number>();
  return {
    profileOf: (id) => {
      const key = `${id.type}:${id.value}`;
      if (!owners.has(key)) owners.set(key, graph.profileOf(id));
      return owners.get(key);
    },
    counts: (p) => counts.get(p) ?? counts.set(p, graph.counts(p)).get(p)!,
    merges: (p) => merges.get(p) ?? merges.set(p, graph.merges(p)).get(p)!,
    pinned: (id) => graph.pinned(id),
  };
}

export function planEvent(rawIds: Identifier[], store: GraphView, rules: IdentityRules): Plan {
  const graph = memoized(store);
  const ids = resolvePrevious(rawIds, graph)
    .map((id, order) => ({ id, order }))
    .sort((a, b) => rank(rules, a.id.type) - rank(rules, b.id.type) || a.order - b.order)
    .map((x) => x.id);
  const plan: Plan = { target: null, links: [], merges: [], warnings: [] };
  if (ids.length === 0) return plan;

  const first = ids[0]!;
  // What the target holds: its stored identifiers (asked of the store only when a link or a
  // merge needs them) plus what this plan adds.
  let base: string | undefined;
  const extra: Record<string, number> = {};
  let extraMerges = 0;
  const countOf = (type: string) => (base ? (graph.counts(base)[type] ?? 0) : 0) + (extra[type] ?? 0);
  const mergesSoFar = () => (base ? graph.merges(base) : 0) + extraMerges;

  const firstOwner = graph.profileOf(first);
  if (firstOwner) {
    plan.target = base = firstOwner;
  } else {
    const joinable = ids.map((id) => graph.profileOf(id)).find((p): p is string => p !== undefined && (graph.counts(p)[first.type] ?? 0) + 1 <= limitOf(rules, first.type));
    if (joinable) plan.target = base = joinable;
    plan.links.push({ id: first, rule: joinable ? 'joined_by_identifier' : 'new_profile' });
    extra[first.type] = (extra[first.type] ?? 0) + 1;
  }
  const target = plan.target ?? 'new';
  const merged = new Set<string>([target]);

  for (const id of ids.slice(1)) {
    const owner = graph.profileOf(id);
    if (owner !== undefined && merged.has(owner)) continue;
    if (owner === undefined) {
      if (plan.links.some((l) => l.id.type === id.type && l.id.value === id.value)) continue;
      if (countOf(id.type) + 1 > limitOf(rules, id.type)) {
        plan.warnings.push({ kind: 'limit', id, profileId: target, rule: `limit:${id.type}=${limitOf(rules, id.type)}` });
        continue;
      }
      plan.links.push({ id, rule: 'same_event' });
      extra[id.type] = (extra[id.type] ?? 0) + 1;
      continue;
    }
    if (graph.pinned(id)) {
      plan.warnings.push({ kind: 'merge_refused', id, profileId: target, other: owner, rule: 'split' });
      continue;
    }
    const theirs = graph.counts(owner);
    const broken = Object.keys(theirs).find((t) => countOf(t) + theirs[t]! > limitOf(rules, t));
    if (broken) {
      plan.warnings.push({ kind: 'merge_refused', id, profileId: target, other: owner, rule: `limit:${broken}=${limitOf(rules, broken)}` });
      continue;
    }
    const mergesAfter = mergesSoFar() + graph.merges(owner) + 1;
    if (mergesAfter > rules.mergeCap) {
      plan.warnings.push({ kind: 'merge_refused', id, profileId: target, other: owner, rule: `merge_cap=${rules.mergeCap}` });
      continue;
    }
    plan.merges.push({ profileId: owner, via: id, rule: 'shared_identifier' });
    merged.add(owner);
    for (const [t, n] of Object.entries(theirs)) extra[t] = (extra[t] ?? 0) + n;
    extraMerges += graph.merges(owner) + 1;
  }
  return plan;
}
