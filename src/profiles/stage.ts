import { extractIdentifiers } from '../identity/identifiers.ts';
import { planEvent, type IdentityRules } from '../identity/merge-policy.ts';
import { expandRecord, selectEvents, type StoredEvent } from '../ingest/event-view.ts';
import type { EventLog } from '../store/ports.ts';
import { contribution, type ComputedTrait } from './computed-traits.ts';
import type { ProfileReader, ProfileWriter, Provenance } from './ports.ts';
import { parseProfileId } from './profile-ref.ts';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
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
    else for (const trait of matched) writer.recompute(target, trait, now());
  }

  function recomputeAll(workspaceId: string, profileId: string): void {
    for (const trait of writer.computedTraits(workspaceId)) writer.recompute(profileId, trait, now());
  }

  /**
   * A new or changed computed trait: its definition, then a backfill over every event the
   * stage processed before this one, attributed to the profiles those events belong to now.
   */
  function defineTrait(workspaceId: string, e: StoredEvent, upTo: number): void {
    const trait = e.payload.trait as ComputedTrait;
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
    const id = parseProfileId(ref);
    if (id.type === 'profile_id') return writer.metadata(id.value)?.workspaceId === workspaceId ? id.value : undefined;
    return writer.graph(workspaceId).profileOf(id);
  }

  /** An administrator's merge: no limit applies, the merge is recorded against this log event. */
  function adminMerge(workspaceId: string, e: StoredEvent): void {
    const from = resolve(workspaceId, String(e.payload.from));
    const into = resolve(workspaceId, String(e.payload.into));
    if (!from || !into || from === into) return;
    writer.merge(workspaceId, from, into, parseProfileId(String(e.payload.from)), { eventId: e.id, messageId: e.messageId, rule: 'admin_merge', at: now() });
    recomputeAll(workspaceId, into);
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
      const [recordId, index] = ref.eventId.split('.').map(Number) as [number, number];
      const record = log.get(workspaceId, recordId);
      const event = record && selectEvents(record, () => true, index + 1).events.find((x) => x.id === ref.eventId);
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
    writer.recordSplit(workspaceId, from, to, id, moved, { eventId: e.id, messageId: e.messageId, rule: 'admin_split', at });
  }

  /** Windowed computed traits lapse on time: drop what left the window and recompute. */
  function expireWindows(): number {
    let changed = 0;
    writer.transaction(() => {
      for (const workspaceId of writer.workspaces()) {
        for (const trait of writer.computedTraits(workspaceId)) {
          for (const profileId of writer.expire(workspaceId, trait, now())) {
            writer.recompute(profileId, trait, now());
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
          else if (e.type === 'computed_trait') defineTrait(record.workspaceId, e, record.id);
          else if (e.type === 'computed_trait_delete') writer.deleteComputedTrait(record.workspaceId, String(e.payload.key));
        }
      }
      writer.setCheckpoint(last);
    });
    return last;
  }

  return { runOnce, expireWindows };
}
