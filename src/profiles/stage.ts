import { extractIdentifiers } from '../identity/identifiers.ts';
import { planEvent, type IdentityRules } from '../identity/merge-policy.ts';
import { expandRecord, type StoredEvent } from '../ingest/event-view.ts';
import type { EventLog } from '../store/ports.ts';
import type { ProfileWriter, Provenance } from './ports.ts';

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
export function createProfileStage(log: Pick<EventLog, 'readForward'>, writer: ProfileWriter, now: () => number = Date.now) {
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
    if (plan.warnings.length > 0) writer.warn(workspaceId, e.id, plan.warnings);

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
  }

  /** Processes up to `maxRecords` log records; returns the checkpoint after the run. */
  return function runOnce(maxRecords = 64): number {
    const from = writer.checkpoint();
    const records = log.readForward(from, maxRecords);
    if (records.length === 0) return from;
    const last = records[records.length - 1]!.id;
    writer.transaction(() => {
      for (const record of records) {
        for (const e of expandRecord(record, (v) => PROCESSED.has(v.status))) processEvent(record.workspaceId, e);
      }
      writer.setCheckpoint(last);
    });
    return last;
  };
}
