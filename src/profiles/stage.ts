import { extractIdentifiers } from '../identity/identifiers.ts';
import { planEvent, type IdentityRules } from '../identity/merge-policy.ts';
import { expandRecord, findEvent, type StoredEvent } from '../ingest/event-view.ts';
import type { EventLog } from '../store/ports.ts';
import { dependencyOrder, dependsOnNow, eventTraits, references, type Audience } from '../audiences/definition.ts';
import { evaluate } from '../audiences/evaluate.ts';
import { contribution, type ComputedTrait } from './computed-traits.ts';
import type { ProfileReader, ProfileWriter, Provenance } from './ports.ts';
import { parseProfileId, profileByRef } from './profile-ref.ts';
import { isObject } from '../json.ts';

const PROCESSED = new Set(['accepted', 'flagged']);

function blockedBy(rules: IdentityRules): (type: string, value: string) => boolean {
  const patterns = rules.blocked.map((b) => ({ type: b.type, re: new RegExp(b.pattern, 'iu') }));
  return (type, value) => patterns.some((p) => (p.type === '*' || p.type === type) && p.re.test(value));
}

/**
 * The profile stage: reads the event log forward from its checkpoint and, in log order, resolves
 * each event's identity, applies merges and links with their provenance, updates traits (last
 * write wins by event timestamp, then messageId) and the profile's event list. One transaction
 * per run moves the checkpoint with the state, so each event takes effect exactly once.
 */
export function createProfileStage(log: Pick<EventLog, 'readForward' | 'get'>, writer: ProfileWriter & ProfileReader, now: () => number = Date.now) {
  const blockers = new WeakMap<IdentityRules, (type: string, value: string) => boolean>();

  function processEvent(workspaceId: string, e: StoredEvent): void {
    const rules = writer.rules(workspaceId);
    let blocked = blockers.get(rules);
    if (!blocked) blockers.set(rules, (blocked = blockedBy(rules)));
    const payload = e.payload;
    const { ids } = extractIdentifiers(payload, blocked);
    const plan = planEvent(ids, writer.graph(workspaceId), rules);
    if (plan.target === null && plan.links.length === 0) return;
    const at = now();
    const why = (rule: string): Provenance => ({ eventId: e.id, messageId: e.messageId, rule, at });
    const target = plan.target ?? writer.createProfile(workspaceId, at);
    for (const m of plan.merges) writer.merge(workspaceId, m.profileId, target, m.via, why(m.rule));
    for (const l of plan.links) writer.link(workspaceId, target, l.id, why(l.rule));
    if (plan.warnings.length > 0) writer.warn(workspaceId, e.id, target, plan.warnings);

    const timestamp = Date.parse(e.timestamp);
    const context = isObject(payload.context) ? payload.context : {};
    const traits = { ...(isObject(context.traits) ? context.traits : {}), ...(e.type === 'identify' && isObject(payload.traits) ? payload.traits : {}) };
    if (Object.keys(traits).length > 0) writer.setTraits(workspaceId, target, traits, timestamp, why('trait'));
    if (e.type === 'group' && (typeof payload.groupId === 'string' || typeof payload.groupId === 'number')) {
      const groupId = String(payload.groupId);
      writer.upsertAccount(workspaceId, groupId, isObject(payload.traits) ? payload.traits : {}, timestamp, why('group'));
      writer.linkAccount(workspaceId, groupId, target, why('group'));
    }
    writer.addEvent(target, timestamp, e.id);
    const matched: ComputedTrait[] = [];
    for (const trait of writer.computedTraits(workspaceId)) {
      const value = contribution(trait, e);
      if (value === undefined) continue;
      writer.addContribution(workspaceId, target, trait.key, timestamp, e.id, value);
      matched.push(trait);
    }
    if (plan.merges.length > 0) recomputeAll(workspaceId, target);
    // A count only grows with a new event (windows shrink it in the sweep), so no recount here.
    else for (const trait of matched) trait.kind === 'count' ? writer.incrementCount(target, trait, timestamp, now()) : writer.recompute(target, trait, now());
    for (const m of plan.merges) leaveAll(workspaceId, m.profileId, e.id);
    const changed = plan.merges.length > 0 ? 'all' : new Set([...Object.keys(traits), ...matched.map((t) => t.key)]);
    evaluateAudiences(workspaceId, target, changed, e.id);
  }

  const orders = new WeakMap<Audience[], Array<{ audience: Audience; keys: Set<string>; audiences: Set<string> }>>();
  function ordered(list: Audience[]) {
    let o = orders.get(list);
    if (!o) orders.set(list, (o = dependencyOrder(list).map((audience) => ({ audience, ...references(audience.definition) }))));
    return o;
  }

  /**
   * Re-evaluates, for one profile, the audiences that read what changed (trait and computed
   * keys, or other audiences whose membership just changed), in dependency order, recording
   * each entry and exit with its cause.
   */
  function evaluateAudiences(workspaceId: string, profileId: string, changed: Set<string> | 'all', cause: string, only?: string): void {
    const list = writer.audiences(workspaceId);
    if (list.length === 0) return;
    let values: Record<string, unknown> | undefined;
    let members: Set<string> | undefined;
    const moved = new Set<string>();
    for (const { audience, keys, audiences } of ordered(list)) {
      const due = only ? audience.key === only || [...audiences].some((a) => moved.has(a)) : changed === 'all' || [...keys].some((k) => changed.has(k)) || [...audiences].some((a) => moved.has(a));
      if (!due) continue;
      values ??= { ...Object.fromEntries(Object.entries(writer.traits(profileId)).map(([k, v]) => [k, v.value])), ...writer.allComputedValues(profileId) };
      members ??= new Set(writer.memberships(profileId));
      const snapshot = values;
      const inside = members;
      const isIn = evaluate(audience.definition, { value: (k) => snapshot[k], member: (k) => inside.has(k), now: now() });
      const change = writer.setMembership(workspaceId, audience.key, profileId, isIn, now(), cause, inside.has(audience.key));
      if (change) {
        moved.add(audience.key);
        if (isIn) members.add(audience.key);
        else members.delete(audience.key);
      }
    }
  }

  /** A profile merged away leaves every audience; the profile it joined is evaluated anew. */
  function leaveAll(workspaceId: string, profileId: string, cause: string): void {
    for (const key of writer.memberships(profileId)) writer.setMembership(workspaceId, key, profileId, false, now(), cause);
  }

  /** A new or changed audience: its hidden event traits (backfilled), then every profile. */
  function defineAudience(workspaceId: string, e: StoredEvent, upTo: number): void {
    const audience = e.payload.audience as Audience;
    const existing = new Set(writer.computedTraits(workspaceId).map((t) => t.key));
    for (const trait of eventTraits(audience.definition)) if (!existing.has(trait.key)) defineTrait(workspaceId, trait, upTo);
    writer.defineAudience(workspaceId, audience, now());
    try {
      dependencyOrder(writer.audiences(workspaceId));
    } catch {
      writer.deleteAudience(workspaceId, audience.key);
      return;
    }
    for (const profileId of writer.profileIds(workspaceId)) evaluateAudiences(workspaceId, profileId, 'all', e.id, audience.key);
  }

  /**
   * What saving an audience would give, computed by the very code that saves it, then undone:
   * so a preview always equals the saved result.
   */
  function previewAudience(workspaceId: string, e: StoredEvent, upTo: number): void {
    const audience = e.payload.audience as Audience;
    const sampleSize = Number(e.payload.sample ?? 10);
    const result = writer.tentatively(() => {
      defineAudience(workspaceId, e, upTo);
      if (!writer.audiences(workspaceId).some((a) => a.key === audience.key)) return { error: 'cycle' };
      const members = writer.profileIds(workspaceId).filter((p) => writer.memberships(p).includes(audience.key));
      return { size: members.length, sample: members.slice(0, sampleSize).map((p) => ({ profile_id: p, identifiers: writer.identifiers(p).slice(0, 5).map((i) => ({ type: i.type, value: i.value })) })) };
    });
    writer.savePreview(workspaceId, String(e.payload.previewId), result, now());
  }

  function deleteAudience(workspaceId: string, key: string, cause: string): void {
    const audience = writer.audiences(workspaceId).find((a) => a.key === key);
    if (!audience) return;
    for (const profileId of writer.profileIds(workspaceId)) if (writer.memberships(profileId).includes(key)) writer.setMembership(workspaceId, key, profileId, false, now(), cause);
    writer.deleteAudience(workspaceId, key);
    const stillUsed = new Set(writer.audiences(workspaceId).flatMap((a) => eventTraits(a.definition).map((t) => t.key)));
    for (const trait of eventTraits(audience.definition)) if (!stillUsed.has(trait.key)) writer.deleteComputedTrait(workspaceId, trait.key);
  }

  function recomputeAll(workspaceId: string, profileId: string): void {
    for (const trait of writer.computedTraits(workspaceId)) writer.recompute(profileId, trait, now());
  }

  /**
   * A new or changed computed trait: its definition, then a backfill over every event the
   * stage processed before this one, attributed to the profiles those events belong to now.
   */
  function defineTrait(workspaceId: string, trait: ComputedTrait, upTo: number): void {
    writer.defineComputedTrait(workspaceId, trait, now());
    const touched = new Set<string>();
    for (let after = 0; after < upTo; ) {
      const records = log.readForward(after, 256).filter((r) => r.id < upTo);
      if (records.length === 0) break;
      for (const record of records) {
        after = record.id;
        if (record.workspaceId !== workspaceId || record.kind === 'admin') continue;
        for (const past of expandRecord(record, (v) => PROCESSED.has(v.status) && (v.event === trait.event))) {
          const value = contribution(trait, past);
          const profileId = value === undefined ? undefined : writer.profileOfEvent(past.id);
          if (!profileId) continue;
          writer.addContribution(workspaceId, profileId, trait.key, Date.parse(past.timestamp), past.id, value);
          touched.add(profileId);
        }
      }
    }
    for (const profileId of touched) writer.recompute(profileId, trait, now());
  }

  /** The profile a reference names now: `profile_id:…` or any identifier. */
  function resolve(workspaceId: string, ref: string): string | undefined {
    return profileByRef(writer, workspaceId, parseProfileId(ref));
  }

  /** An administrator's merge: no limit applies, the merge is recorded against this log event. */
  function adminMerge(workspaceId: string, e: StoredEvent): void {
    const from = resolve(workspaceId, String(e.payload.from));
    const into = resolve(workspaceId, String(e.payload.into));
    if (!from || !into || from === into) return;
    writer.merge(workspaceId, from, into, parseProfileId(String(e.payload.from)), { eventId: e.id, messageId: e.messageId, rule: 'admin_merge', at: now() });
    recomputeAll(workspaceId, into);
    leaveAll(workspaceId, from, e.id);
    evaluateAudiences(workspaceId, into, 'all', e.id);
  }

  /**
   * An administrator's split: the identifier moves to a new profile with the events that came
   * only through it (no other identifier of the old profile in them), traits are rebuilt on both
   * sides from their history, and the identifier is pinned so it never merges back by itself.
   */
  function adminSplit(workspaceId: string, e: StoredEvent): void {
    const from = resolve(workspaceId, String(e.payload.profile));
    const id = parseProfileId(String(e.payload.identifier));
    if (!from || writer.graph(workspaceId).profileOf(id) !== from) return;
    const at = now();
    const to = writer.createProfile(workspaceId, at);
    writer.moveIdentifier(workspaceId, id, to);
    const remaining = new Set(writer.identifiers(from).map((i) => `${i.type}:${i.value}`));
    let moved = 0;
    for (const ref of writer.events(from, Number.MAX_SAFE_INTEGER)) {
      const event = findEvent(log, workspaceId, ref.eventId);
      if (!event) continue;
      const keys = extractIdentifiers(event.payload).ids.flatMap((i) => (i.type === 'previous_id' ? [`user_id:${i.value}`, `anonymous_id:${i.value}`] : [`${i.type}:${i.value}`]));
      if (keys.includes(`${id.type}:${id.value}`) && !keys.some((k) => remaining.has(k))) {
        writer.moveEvent(ref.eventId, from, to);
        moved++;
      }
    }
    writer.recomputeTraits(from);
    writer.recomputeTraits(to);
    recomputeAll(workspaceId, from);
    recomputeAll(workspaceId, to);
    evaluateAudiences(workspaceId, from, 'all', e.id);
    evaluateAudiences(workspaceId, to, 'all', e.id);
    writer.recordSplit(workspaceId, from, to, id, moved, { eventId: e.id, messageId: e.messageId, rule: 'admin_split', at });
  }

  /** Windowed computed traits lapse on time: drop what left the window and recompute. */
  function expireWindows(): number {
    let changed = 0;
    writer.transaction(() => {
      for (const workspaceId of writer.workspaces()) {
        // Conditions relative to now (within_days, older_than_days) change with time alone.
        for (const audience of writer.audiences(workspaceId).filter((a) => dependsOnNow(a.definition))) {
          for (const profileId of writer.profileIds(workspaceId)) evaluateAudiences(workspaceId, profileId, 'all', 'time', audience.key);
        }
        for (const trait of writer.computedTraits(workspaceId)) {
          for (const profileId of writer.expire(workspaceId, trait, now())) {
            writer.recompute(profileId, trait, now());
            evaluateAudiences(workspaceId, profileId, new Set([trait.key]), 'window');
            changed++;
          }
        }
      }
    });
    return changed;
  }

  /** Processes up to `maxRecords` log records; returns the checkpoint after the run. */
  function runOnce(maxRecords = 64): number {
    const from = writer.checkpoint();
    const records = log.readForward(from, maxRecords);
    if (records.length === 0) return from;
    const last = records[records.length - 1]!.id;
    writer.transaction(() => {
      for (const record of records) {
        for (const e of expandRecord(record, (v) => PROCESSED.has(v.status))) {
          if (record.kind !== 'admin') processEvent(record.workspaceId, e);
          else if (e.type === 'merge') adminMerge(record.workspaceId, e);
          else if (e.type === 'split') adminSplit(record.workspaceId, e);
          else if (e.type === 'computed_trait') defineTrait(record.workspaceId, e.payload.trait as ComputedTrait, record.id);
          else if (e.type === 'audience') defineAudience(record.workspaceId, e, record.id);
          else if (e.type === 'audience_preview') previewAudience(record.workspaceId, e, record.id);
          else if (e.type === 'audience_delete') deleteAudience(record.workspaceId, String(e.payload.key), e.id);
          else if (e.type === 'computed_trait_delete') writer.deleteComputedTrait(record.workspaceId, String(e.payload.key));
        }
      }
      writer.setCheckpoint(last);
    });
    return last;
  }

  return { runOnce, expireWindows };
}
