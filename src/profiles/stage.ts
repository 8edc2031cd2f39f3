import { extractIdentifiers } from '../identity/identifiers.ts';
import { planEvent, type IdentityRules } from '../identity/merge-policy.ts';
import { expandRecord, findEvent, scanRecord, type StoredEvent } from '../ingest/event-view.ts';
import type { EventLog } from '../store/ports.ts';
import { accountKey, consentKey, dependencyOrder, dependsOnNow, eventTraits, needsOf, references, type Audience, type Needs } from '../audiences/definition.ts';
import { evaluate, type ProfileView } from '../audiences/evaluate.ts';
import { contribution, type ComputedTrait } from './computed-traits.ts';
import type { Backfill, ProfileEventCursor, ProfileReader, ProfileWriter, Provenance } from './ports.ts';
import { parseProfileId, profileByRef } from './profile-ref.ts';
import { isObject } from '../json.ts';
import { PURCHASES_JOB, purchaseTraits, scoreProfile, VALUE_KEYS, type FitRecord } from '../value/scores.ts';
import type { Purchase } from '../value/summary.ts';

const PROCESSED = new Set(['accepted', 'flagged']);

/** Whether two sets share an element (per event and audience: no arrays built). */
function intersects(a: Set<string>, b: Set<string>): boolean {
  for (const x of a) if (b.has(x)) return true;
  return false;
}
const DAY = 86_400_000;
/** Computed traits behind audience event conditions (see eventTraits). */
const EVENT_CONDITION = '__ev_';
const NOTHING_BUILDING = { audiences: new Set<string>(), traits: new Set<string>() };

/** Segment's consent preferences, `context.consent.categoryPreferences`: purpose → granted. */
export function consentOf(context: Record<string, unknown>): Record<string, boolean> | undefined {
  const consent = context.consent;
  if (!isObject(consent) || !isObject(consent.categoryPreferences)) return undefined;
  const out: Record<string, boolean> = {};
  for (const [purpose, granted] of Object.entries(consent.categoryPreferences)) if (typeof granted === 'boolean' && purpose.length <= 100) out[purpose] = granted;
  return Object.keys(out).length > 0 ? out : undefined;
}

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
export function createProfileStage(
  log: Pick<EventLog, 'readForward' | 'get'>,
  writer: ProfileWriter & ProfileReader,
  now: () => number = Date.now,
  /** How much a backfill does per step: log records per scan, profiles per sweep. */
  { backfillRecords = 256, backfillProfiles = 2000 } = {},
) {
  const blockers = new WeakMap<IdentityRules, (type: string, value: string) => boolean>();

  /**
   * Audiences being built in the background: those whose hidden event traits are still being
   * filled from the log are not evaluated live yet, and traits still being backfilled are
   * recounted from their contributions rather than incremented.
   */
  const buildingOf = new WeakMap<Backfill[], Map<string, { audiences: Set<string>; traits: Set<string> }>>();
  function building(workspaceId: string): { audiences: Set<string>; traits: Set<string> } {
    const pending = writer.pendingBackfills();
    let byWorkspace = buildingOf.get(pending);
    if (!byWorkspace) {
      buildingOf.set(pending, (byWorkspace = new Map()));
      for (const b of pending) {
        let entry = byWorkspace.get(b.workspaceId);
        if (!entry) byWorkspace.set(b.workspaceId, (entry = { audiences: new Set(), traits: new Set() }));
        if (b.phase === 'events') entry.audiences.add(b.audienceKey);
        for (const t of b.traits) entry.traits.add(t);
      }
    }
    return byWorkspace.get(workspaceId) ?? NOTHING_BUILDING;
  }

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
    const preferences = consentOf(context);
    const consentChanged = preferences ? writer.setConsents(target, preferences, timestamp, e.messageId) : [];
    let accountChanged: string[] = [];
    if (e.type === 'group' && (typeof payload.groupId === 'string' || typeof payload.groupId === 'number')) {
      const groupId = String(payload.groupId);
      const accountTraits = isObject(payload.traits) ? payload.traits : {};
      writer.upsertAccount(workspaceId, groupId, accountTraits, timestamp, why('group'));
      writer.linkAccount(workspaceId, groupId, target, why('group'));
      accountChanged = Object.keys(accountTraits).map(accountKey);
      // The account's other members read these traits too, when an audience does.
      if (readsAny(workspaceId, accountChanged)) for (const other of writer.accountLinks(workspaceId, groupId)) if (other !== target) evaluateAudiences(workspaceId, other, new Set(accountChanged), e.id);
    }
    const named = e.type === 'track' || e.type === 'page' || e.type === 'screen';
    writer.addEvent(target, timestamp, e.id, e.type, named ? e.event : null, named && isObject(payload.properties) ? JSON.stringify(payload.properties) : null);
    const matched: ComputedTrait[] = [];
    for (const trait of writer.computedTraits(workspaceId)) {
      const value = contribution(trait, e);
      if (value === undefined) continue;
      writer.addContribution(workspaceId, target, trait, timestamp, e.id, value);
      matched.push(trait);
    }
    if (plan.merges.length > 0) recomputeAll(workspaceId, target);
    else {
      // A count only grows with a new event (windows shrink it in the sweep), so no recount here,
      // unless a backfill is still filling the trait's earlier contributions.
      const backfilling = building(workspaceId).traits;
      for (const trait of matched) trait.kind === 'count' && !backfilling.has(trait.key) ? writer.incrementCount(target, trait, timestamp, now()) : writer.recompute(target, trait, now());
    }
    for (const m of plan.merges) leaveAll(workspaceId, m.profileId, e.id);
    // A new profile is evaluated against every audience: `not …` matches a profile with nothing yet.
    const changed = plan.merges.length > 0 || plan.target === null ? 'all' : new Set([...Object.keys(traits), ...matched.map((t) => t.key), ...consentChanged.map(consentKey), ...accountChanged]);
    evaluateAudiences(workspaceId, target, changed, e.id);
  }

  const orders = new WeakMap<Audience[], Array<{ audience: Audience; keys: Set<string>; audiences: Set<string> }>>();
  function ordered(list: Audience[]) {
    let o = orders.get(list);
    if (!o) orders.set(list, (o = dependencyOrder(list).map((audience) => ({ audience, ...references(audience.definition) }))));
    return o;
  }

  /** Whether any audience of the workspace reads one of these change keys. */
  function readsAny(workspaceId: string, keys: string[]): boolean {
    return keys.length > 0 && ordered(writer.audiences(workspaceId)).some((o) => keys.some((k) => o.keys.has(k)));
  }

  /**
   * Re-evaluates, for one profile, the audiences that read what changed (trait and computed
   * keys, consent and account keys, or other audiences whose membership just changed, starting
   * with `moved`), in dependency order, recording each entry and exit with its cause.
   */
  function evaluateAudiences(workspaceId: string, profileId: string, changed: Set<string> | 'all', cause: string, moved = new Set<string>()): void {
    const list = writer.audiences(workspaceId);
    if (list.length === 0) return;
    const skip = building(workspaceId).audiences;
    let view: ProfileView | undefined;
    let members: Set<string> | undefined;
    for (const { audience, keys, audiences } of ordered(list)) {
      if (skip.has(audience.key)) continue;
      const due = changed === 'all' || intersects(keys, changed) || intersects(audiences, moved);
      if (!due) continue;
      members ??= new Set(writer.memberships(profileId));
      view ??= profileView(profileId, members);
      const isIn = evaluate(audience.definition, view);
      const change = writer.setMembership(workspaceId, audience.key, profileId, isIn, now(), cause, members.has(audience.key));
      if (change) {
        moved.add(audience.key);
        if (isIn) members.add(audience.key);
        else members.delete(audience.key);
      }
    }
  }

  /** One profile as evaluation reads it, loaded lazily from the store. */
  function profileView(profileId: string, members: Set<string>): ProfileView {
    let values: Record<string, unknown> | undefined;
    let consents: Record<string, boolean> | undefined;
    return {
      value: (k) => (values ??= { ...Object.fromEntries(Object.entries(writer.traits(profileId)).map(([key, v]) => [key, v.value])), ...writer.allComputedValues(profileId) })[k],
      member: (k) => members.has(k),
      consent: (purpose) => (consents ??= writer.consents(profileId))[purpose],
      account: (k) => writer.accountValues(profileId, k),
      now: now(),
    };
  }

  /**
   * Evaluates one audience over the next `limit` live profiles after `after`, reading what the
   * definition needs for the whole run at once. `recount` traits are first set from their
   * contributions for the run (a backfill's new event traits). With `cause`, entries and exits are
   * recorded and the audiences that depend on this one follow; without, nothing is written.
   * Counts the profiles that match and keeps the first `keep` of them.
   */
  function sweep(workspaceId: string, audience: Audience, after: string, limit: number, recount: ComputedTrait[], cause?: string, keep = 0) {
    const ids = writer.liveProfilesAfter(workspaceId, after, limit);
    const result = { count: ids.length, last: ids[ids.length - 1] ?? after, matches: 0, kept: [] as string[], entered: 0, exited: 0 };
    if (ids.length === 0) return result;
    const at = now();
    for (const trait of recount) writer.recountRange(trait, ids[0]!, result.last, at);
    const needs = needsOf(audience.definition);
    const computedKeys = new Set([...writer.computedTraits(workspaceId).map((t) => t.key), ...VALUE_KEYS]);
    const chunk = writer.profileChunk(workspaceId, { ...needs, audiences: [...needs.audiences, audience.key], computedKeys }, ids);
    const current = chunk.members.get(audience.key)!;
    // One view, pointed at each profile in turn (in id order, as the columns are): no objects
    // or look-ups per profile, a cursor per column that only moves forward.
    let id = '';
    const cursors = new Map([...chunk.values].map(([k, column]) => [k, { column, at: 0 }]));
    const view: ProfileView = {
      value: (k) => {
        const c = cursors.get(k);
        if (!c) return undefined;
        const ids = c.column.ids;
        while (c.at < ids.length && ids[c.at]! < id) c.at++;
        return ids[c.at] === id ? c.column.values[c.at] : undefined;
      },
      member: (k) => chunk.members.get(k)?.has(id) ?? false,
      consent: (purpose) => chunk.consents.get(purpose)?.get(id),
      account: (k) => chunk.accounts.get(k)?.get(id) ?? [],
      now: at,
    };
    for (id of ids) {
      const isIn = evaluate(audience.definition, view);
      if (isIn && result.matches++ < keep) result.kept.push(id);
      if (cause === undefined) continue;
      const change = writer.setMembership(workspaceId, audience.key, id, isIn, at, cause, current.has(id));
      if (change === null) continue;
      if (change === 'enter') result.entered++;
      else result.exited++;
      evaluateAudiences(workspaceId, id, new Set(), cause, new Set([audience.key]));
    }
    return result;
  }

  /** A profile merged away leaves every audience; the profile it joined is evaluated anew. */
  function leaveAll(workspaceId: string, profileId: string, cause: string): void {
    for (const key of writer.memberships(profileId)) writer.setMembership(workspaceId, key, profileId, false, now(), cause);
  }

  /**
   * Fills contributions of `traits` from the log records after `after` and before `upTo`, at most
   * `maxRecords` of them, attributed to the profiles those events belong to now. Contributions
   * are unique per event, so scanning a record twice changes nothing. Returns where to go on
   * from, or null when the range is done.
   */
  function scanLog(workspaceId: string, traits: ComputedTrait[], after: number, upTo: number, maxRecords: number, touched?: Set<string>): number | null {
    if (traits.length === 0) return null;
    const records = log.readForward(after, maxRecords).filter((r) => r.id < upTo);
    if (records.length === 0) return null;
    const names = new Set(traits.map((t) => t.event));
    const at = now();
    const found: Array<{ profileId: string; trait: ComputedTrait; timestamp: number; eventId: string; value: unknown }> = [];
    for (const record of records) {
      if (record.workspaceId !== workspaceId || record.kind === 'admin') continue;
      for (const past of scanRecord(record, (status, _type, event) => PROCESSED.has(status) && event !== undefined && names.has(event))) {
        let profileId: string | undefined | null = null;
        for (const trait of traits) {
          // A contribution already outside the window would lapse at the next sweep anyway.
          if (trait.windowDays !== undefined && past.timestamp < at - trait.windowDays * DAY) continue;
          const value = contribution(trait, past);
          if (value === undefined) continue;
          if (profileId === null) profileId = writer.profileOfEvent(past.id);
          if (!profileId) break;
          found.push({ profileId, trait, timestamp: past.timestamp, eventId: past.id, value });
        }
      }
    }
    // In profile order: neighbouring inserts land on the same pages.
    found.sort((a, b) => (a.profileId < b.profileId ? -1 : a.profileId > b.profileId ? 1 : 0));
    for (const c of found) {
      writer.addContribution(workspaceId, c.profileId, c.trait, c.timestamp, c.eventId, c.value);
      touched?.add(c.profileId);
    }
    return records[records.length - 1]!.id;
  }

  /**
   * Fills contributions of `traits` from the profiles' own events (kept with their names and
   * properties), in profile order, at most `limit` events after the cursor: no log to parse, no
   * look-up of each event's profile, inserts in key order. Events of every age are read; those
   * processed live meanwhile already contributed, and contributions are unique per event.
   * Returns where to go on from, or null when done.
   */
  function scanProfileEvents(workspaceId: string, traits: ComputedTrait[], after: ProfileEventCursor, limit: number, touched?: Set<string>): ProfileEventCursor | null {
    if (traits.length === 0) return null;
    const events = writer.profileEventsAfter(workspaceId, [...new Set(traits.map((t) => t.event))], after, limit);
    if (events.length === 0) return null;
    const at = now();
    for (const e of events) {
      const view = { type: e.type, event: e.name, payload: { properties: e.properties === null ? undefined : (JSON.parse(e.properties) as unknown) } };
      for (const trait of traits) {
        if (trait.windowDays !== undefined && e.timestamp < at - trait.windowDays * DAY) continue;
        const value = contribution(trait, view);
        if (value === undefined) continue;
        writer.addContribution(workspaceId, e.profileId, trait, e.timestamp, e.eventId, value);
        touched?.add(e.profileId);
      }
    }
    const last = events[events.length - 1]!;
    return [last.profileId, last.timestamp, last.eventId];
  }

  /** Fills contributions of `traits` over all history at once: from profile events, or the log before `upTo` for stores that predate them. */
  function fillAll(workspaceId: string, traits: ComputedTrait[], upTo: number, touched?: Set<string>): void {
    if (writer.hasUntypedEvents()) for (let after: number | null = 0; after !== null; ) after = scanLog(workspaceId, traits, after, upTo, 1024, touched);
    else for (let after: ProfileEventCursor | null = ['', 0, '']; after !== null; ) after = scanProfileEvents(workspaceId, traits, after, 25_000, touched);
  }

  /**
   * Starts (or restarts) building an audience in the background: first its new event traits
   * from the log, then every profile. Traits another unfinished backfill is still filling are
   * scanned again, which is harmless since contributions are unique per event.
   */
  function startBackfill(workspaceId: string, audienceKey: string, traits: string[], upTo: number, cause: string): void {
    const at = now();
    writer.saveBackfill({
      workspaceId, audienceKey, phase: traits.length > 0 ? 'events' : 'profiles', traits, upTo, logAfter: 0, profileAfter: '',
      profilesTotal: writer.profileCount(workspaceId), profilesDone: 0, entered: 0, exited: 0, cause, startedAt: at, finishedAt: null,
      // Profile events keep their names and properties: read them, unless some predate that.
      eventCursor: writer.hasUntypedEvents() ? null : JSON.stringify(['', 0, '']),
    });
  }

  /** The event traits a definition needs that are not complete yet: new ones (defined now, unless not `define`), or still being backfilled. */
  function traitsToFill(workspaceId: string, definition: Audience['definition'], { define = true } = {}): ComputedTrait[] {
    const existing = new Set(writer.computedTraits(workspaceId).map((t) => t.key));
    const filling = building(workspaceId).traits;
    const fill = eventTraits(definition).filter((t) => !existing.has(t.key) || filling.has(t.key));
    if (define) for (const trait of fill) if (!existing.has(trait.key)) writer.defineComputedTrait(workspaceId, trait, now());
    return fill;
  }

  /** A new or changed audience: saved now, built in the background (see backfillStep). */
  function defineAudience(workspaceId: string, e: StoredEvent, upTo: number): void {
    const audience = e.payload.audience as Audience;
    const others = writer.audiences(workspaceId).filter((a) => a.key !== audience.key);
    try {
      dependencyOrder([...others, audience]);
    } catch {
      return; // the API refuses cycles; one can only arise from a race between two changes
    }
    const fill = traitsToFill(workspaceId, audience.definition);
    writer.defineAudience(workspaceId, audience, now());
    dropUnusedEventTraits(workspaceId);
    startBackfill(workspaceId, audience.key, fill.map((t) => t.key), upTo, e.id);
  }

  /**
   * Background work for about `budgetMs` in one transaction: the oldest unfinished audience
   * backfill (a few hundred log records at a time, then a couple of thousand profiles at a time)
   * or, when there is none, scoring profiles with a new lifetime-value fit. Returns whether any
   * background work is left.
   */
  function backfillStep(budgetMs: number): boolean {
    const deadline = performance.now() + budgetMs;
    const job = writer.pendingBackfills()[0];
    if (!job) return scoringStep(deadline);
    writer.transaction(() => {
      const b = { ...job };
      const audience = writer.audiences(b.workspaceId).find((a) => a.key === b.audienceKey);
      const traitsOnly = b.audienceKey === PURCHASES_JOB;
      if (!audience && !traitsOnly) return writer.deleteBackfill(b.workspaceId, b.audienceKey);
      const traits = writer.computedTraits(b.workspaceId).filter((t) => b.traits.includes(t.key));
      do {
        if (b.phase === 'events' && b.eventCursor !== null) {
          const next = scanProfileEvents(b.workspaceId, traits, JSON.parse(b.eventCursor) as ProfileEventCursor, backfillRecords * 100);
          if (next !== null) b.eventCursor = JSON.stringify(next);
          else if (traitsOnly) [b.phase, b.logAfter, b.finishedAt] = ['done', b.upTo, now()];
          else [b.phase, b.logAfter, b.profilesTotal] = ['profiles', b.upTo, writer.profileCount(b.workspaceId)];
        } else if (b.phase === 'events') {
          const next = scanLog(b.workspaceId, traits, b.logAfter, b.upTo, backfillRecords);
          if (next !== null) b.logAfter = next;
          else if (traitsOnly) [b.phase, b.logAfter, b.finishedAt] = ['done', b.upTo, now()];
          else [b.phase, b.logAfter, b.profilesTotal] = ['profiles', b.upTo, writer.profileCount(b.workspaceId)];
        } else if (audience) {
          const r = sweep(b.workspaceId, audience, b.profileAfter, backfillProfiles, traits, b.cause);
          b.profileAfter = r.last;
          b.profilesDone += r.count;
          b.entered += r.entered;
          b.exited += r.exited;
          if (r.count < backfillProfiles) [b.phase, b.finishedAt, b.profilesTotal] = ['done', now(), Math.max(b.profilesTotal, b.profilesDone)];
        } else [b.phase, b.finishedAt] = ['done', now()];
      } while (b.phase !== 'done' && performance.now() < deadline);
      writer.saveBackfill(b);
    });
    return writer.pendingBackfills().length > 0 || writer.pendingValueJobs().length > 0;
  }

  /**
   * What saving an audience would give, computed by the code that builds it (the same log scan
   * and the same sweep), with nothing kept: so a preview always equals the saved result.
   */
  function previewAudience(workspaceId: string, e: StoredEvent, upTo: number): void {
    const audience = e.payload.audience as Audience;
    const sampleSize = Number(e.payload.sample ?? 10);
    const described = ({ size, sample }: { size: number; sample: string[] }) => ({
      size,
      sample: sample.map((p) => ({ profile_id: p, identifiers: writer.identifiers(p).slice(0, 5).map((i) => ({ type: i.type, value: i.value })) })),
    });
    let result: unknown;
    try {
      dependencyOrder([...writer.audiences(workspaceId).filter((a) => a.key !== audience.key), audience]);
    } catch {
      result = { error: 'cycle' };
    }
    // With nothing to fill it writes nothing: it reads the columns kept in memory when they are
    // loaded (else rows, as before; the idle stage then loads them for the next preview).
    if (result === undefined && traitsToFill(workspaceId, audience.definition, { define: false }).length === 0) {
      const needs = needsOf(audience.definition);
      if (writer.columnsLoaded(workspaceId, needs)) result = described(scanColumns(workspaceId, audience, needs, sampleSize));
      else previewed(workspaceId, needs);
    }
    result ??= writer.tentatively(() => {
      const fill = traitsToFill(workspaceId, audience.definition);
      fillAll(workspaceId, fill, upTo);
      return described(sweepAll(workspaceId, audience, fill, sampleSize));
    });
    writer.savePreview(workspaceId, String(e.payload.previewId), result, now());
  }

  /** Counts the profiles matching an audience (keeping the first `keep`) by sweeps over runs of profiles, nothing recorded. */
  function sweepAll(workspaceId: string, audience: Audience, recount: ComputedTrait[], keep: number) {
    let size = 0;
    const sample: string[] = [];
    // Nothing is written, so nothing waits: bigger runs than a backfill's.
    const run = backfillProfiles * 5;
    for (let after = '', count = run; count === run; ) {
      const r = sweep(workspaceId, audience, after, run, recount, undefined, keep - sample.length);
      [after, count, size] = [r.last, r.count, size + r.matches];
      sample.push(...r.kept);
    }
    return { size, sample };
  }

  /**
   * The same count from the columns the store keeps in memory (loaded: see columnsLoaded): one
   * pass over every live profile, no rows read. The sample is the first matches in slot order.
   */
  function scanColumns(workspaceId: string, audience: Audience, needs: Needs, keep: number) {
    const columns = writer.profileColumns(workspaceId, needs)!;
    let slot = 0;
    const view: ProfileView = {
      value: (k) => columns.value(k, slot),
      member: (k) => columns.member(k, slot),
      consent: (purpose) => columns.consent(purpose, slot),
      account: (k) => columns.account(k, slot),
      now: now(),
    };
    let size = 0;
    const sample: string[] = [];
    const { ids, live } = columns;
    for (slot = 0; slot < ids.length; slot++) {
      if (!live[slot] || !evaluate(audience.definition, view)) continue;
      if (size++ < keep) sample.push(ids[slot]!);
    }
    return { size, sample };
  }

  function deleteAudience(workspaceId: string, key: string, cause: string): void {
    if (!writer.audiences(workspaceId).some((a) => a.key === key)) return;
    for (const profileId of writer.audienceMembers(workspaceId, key)) writer.setMembership(workspaceId, key, profileId, false, now(), cause, true);
    writer.deleteAudience(workspaceId, key);
    writer.deleteBackfill(workspaceId, key);
    dropUnusedEventTraits(workspaceId);
  }

  /** Hidden event traits no audience reads any more. */
  function dropUnusedEventTraits(workspaceId: string): void {
    const used = new Set(writer.audiences(workspaceId).flatMap((a) => eventTraits(a.definition).map((t) => t.key)));
    for (const trait of writer.computedTraits(workspaceId)) if (trait.key.startsWith(EVENT_CONDITION) && !used.has(trait.key)) writer.deleteComputedTrait(workspaceId, trait.key);
  }

  function recomputeAll(workspaceId: string, profileId: string): void {
    for (const trait of writer.computedTraits(workspaceId)) writer.recompute(profileId, trait, now());
  }

  /**
   * A new or changed computed trait: its definition, then a backfill over every event the
   * stage processed before this one, attributed to the profiles those events belong to now; the
   * audiences that read it are rebuilt in the background.
   */
  function defineTrait(workspaceId: string, trait: ComputedTrait, upTo: number, cause: string): void {
    writer.defineComputedTrait(workspaceId, trait, now());
    const touched = new Set<string>();
    fillAll(workspaceId, [trait], upTo, touched);
    for (const profileId of touched) writer.recompute(profileId, trait, now());
    rebuildReaders(workspaceId, trait.key, upTo, cause);
  }

  function deleteTrait(workspaceId: string, key: string, upTo: number, cause: string): void {
    writer.deleteComputedTrait(workspaceId, key);
    rebuildReaders(workspaceId, key, upTo, cause);
  }

  /** Audiences reading a computed trait whose values all changed are evaluated again over every profile. */
  function rebuildReaders(workspaceId: string, key: string, upTo: number, cause: string): void {
    for (const audience of writer.audiences(workspaceId)) {
      if (!references(audience.definition).keys.has(key)) continue;
      const pending = writer.pendingBackfills().find((b) => b.workspaceId === workspaceId && b.audienceKey === audience.key);
      startBackfill(workspaceId, audience.key, pending?.traits ?? [], upTo, cause);
    }
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

  /**
   * The purchase events a fit reads: their hidden traits, filled from the log in the background
   * when new (live events keep adding to them meanwhile), so a first fit on a long log does not
   * hold up the stage.
   */
  function definePurchases(workspaceId: string, payload: Record<string, unknown>, upTo: number, cause: string): void {
    const existing = new Set(writer.computedTraits(workspaceId).map((t) => t.key));
    const fresh = purchaseTraits(payload.events as string[], String(payload.property)).filter((t) => !existing.has(t.key));
    if (fresh.length === 0) return;
    for (const trait of fresh) writer.defineComputedTrait(workspaceId, trait, now());
    const pending = writer.pendingBackfills().find((b) => b.workspaceId === workspaceId && b.audienceKey === PURCHASES_JOB);
    startBackfill(workspaceId, PURCHASES_JOB, [...new Set([...(pending?.traits ?? []), ...fresh.map((t) => t.key)])], upTo, cause);
  }

  /** A new fit: kept, then every profile is scored with it in the background (see scoringStep). */
  function startScoring(workspaceId: string, e: StoredEvent): void {
    const fit = e.payload.fit as { id: string } & FitRecord;
    const at = now();
    writer.saveFit({ id: fit.id, workspaceId, createdAt: at, fit });
    writer.saveValueJob({ workspaceId, fitId: fit.id, profileAfter: '', scored: 0, profilesDone: 0, profilesTotal: writer.profileCount(workspaceId), scoredAt: fit.asOf, startedAt: at, finishedAt: null });
  }

  const valueKeys = new Set<string>(VALUE_KEYS);

  /** Scores the next run of profiles of the oldest unfinished scoring job; whether any is left. */
  function scoringStep(deadline: number): boolean {
    const job = writer.pendingValueJobs()[0];
    if (!job) return false;
    writer.transaction(() => {
      const j = { ...job };
      const fit = writer.fit(j.workspaceId, j.fitId)?.fit as FitRecord | undefined;
      do {
        const ids = fit ? writer.liveProfilesAfter(j.workspaceId, j.profileAfter, backfillProfiles) : [];
        if (ids.length > 0) {
          const purchases = new Map<string, Purchase[]>();
          for (const c of writer.contributionsInRange(fit!.purchaseKeys, ids[0]!, ids[ids.length - 1]!)) {
            const list = purchases.get(c.profileId) ?? [];
            list.push({ customer: c.profileId, at: c.timestamp, amount: c.value });
            purchases.set(c.profileId, list);
          }
          const at = now();
          for (const id of ids) {
            const scores = purchases.has(id) ? scoreProfile(fit!, purchases.get(id)!, j.scoredAt) : undefined;
            if (scores) for (const [key, value] of Object.entries(scores)) writer.setComputedValue(id, key, value, at);
            else for (const key of VALUE_KEYS) writer.dropComputedValue(id, key);
            if (scores) j.scored++;
            evaluateAudiences(j.workspaceId, id, valueKeys, `clv:${j.fitId}`);
          }
          j.profileAfter = ids[ids.length - 1]!;
          j.profilesDone += ids.length;
        }
        if (ids.length < backfillProfiles) [j.finishedAt, j.profilesTotal] = [now(), Math.max(j.profilesTotal, j.profilesDone)];
      } while (j.finishedAt === null && performance.now() < deadline);
      writer.saveValueJob(j);
    });
    return writer.pendingValueJobs().length > 0;
  }

  /**
   * Time passing: audiences with conditions relative to now (within_days, older_than_days) are
   * swept over every profile, and windowed computed traits drop what left their window.
   */
  function expireWindows(): number {
    let changed = 0;
    writer.transaction(() => {
      for (const workspaceId of writer.workspaces()) {
        const skip = building(workspaceId).audiences;
        for (const audience of writer.audiences(workspaceId).filter((a) => dependsOnNow(a.definition) && !skip.has(a.key))) {
          for (let after = '', count = backfillProfiles; count === backfillProfiles; ) {
            const r = sweep(workspaceId, audience, after, backfillProfiles, [], 'time');
            [after, count] = [r.last, r.count];
            changed += r.entered + r.exited;
          }
        }
        const traits = writer.computedTraits(workspaceId);
        for (const { profileId, keys } of writer.expire(workspaceId, traits, now())) {
          for (const trait of traits) if (keys.includes(trait.key)) writer.recompute(profileId, trait, now());
          evaluateAudiences(workspaceId, profileId, new Set(keys), 'window');
          changed++;
        }
      }
    });
    return changed;
  }

  /**
   * Keeps the columns live audiences and recent previews read (their conditions and memberships)
   * in memory, so that previews and time sweeps over them read no rows: reads again what writes
   * changed, or loads one more slice. For when the stage is idle, in steps of ~10–50 ms so that
   * arriving events wait little. Returns whether it did anything (there may be more).
   */
  function warmColumns(): boolean {
    // First what writes changed in the columns already kept, a few thousand entries a turn.
    if (writer.refreshColumns(2000) > 0) return true;
    for (const workspaceId of writer.workspaces()) {
      const missing = (c: Needs) => !writer.columnsLoaded(workspaceId, c);
      const next = columnsOf(writer.audiences(workspaceId)).find(missing) ?? recentPreviews.get(workspaceId)?.find(missing);
      // A store (or workspace) that keeps no columns loads none.
      if (next && writer.warmColumns(workspaceId, next)) return true;
    }
    return false;
  }

  /** What the last previews that could not read columns needed, per workspace: loaded when idle, as a marketer tends to preview variations. */
  const recentPreviews = new Map<string, Needs[]>();
  const RECENT_PREVIEWS = 8;
  function previewed(workspaceId: string, needs: Needs): void {
    const list = recentPreviews.get(workspaceId) ?? [];
    list.push(needs);
    recentPreviews.set(workspaceId, list.slice(-RECENT_PREVIEWS));
  }

  /** Each column a workspace's audiences read, as Needs of one column each (kept per list of audiences). */
  const columnLists = new WeakMap<Audience[], Needs[]>();
  function columnsOf(list: Audience[]): Needs[] {
    let columns = columnLists.get(list);
    if (columns) return columns;
    const none = { keys: [], audiences: [], consents: [], accounts: [] };
    const needs = list.map((a) => needsOf(a.definition));
    columns = [
      ...new Set(needs.flatMap((n) => n.keys)).values().map((k) => ({ ...none, keys: [k] })),
      ...new Set([...needs.flatMap((n) => n.audiences), ...list.map((a) => a.key)]).values().map((k) => ({ ...none, audiences: [k] })),
      ...new Set(needs.flatMap((n) => n.consents)).values().map((p) => ({ ...none, consents: [p] })),
      ...new Set(needs.flatMap((n) => n.accounts)).values().map((k) => ({ ...none, accounts: [k] })),
    ];
    columnLists.set(list, columns);
    return columns;
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
          else if (e.type === 'computed_trait') defineTrait(record.workspaceId, e.payload.trait as ComputedTrait, record.id, e.id);
          else if (e.type === 'audience') defineAudience(record.workspaceId, e, record.id);
          else if (e.type === 'audience_preview') previewAudience(record.workspaceId, e, record.id);
          else if (e.type === 'audience_delete') deleteAudience(record.workspaceId, String(e.payload.key), e.id);
          else if (e.type === 'clv_purchases') definePurchases(record.workspaceId, e.payload, record.id, e.id);
          else if (e.type === 'clv_fit') startScoring(record.workspaceId, e);
          else if (e.type === 'computed_trait_delete') deleteTrait(record.workspaceId, String(e.payload.key), record.id, e.id);
        }
      }
      writer.setCheckpoint(last);
    });
    return last;
  }

  return { runOnce, backfillStep, expireWindows, warmColumns };
}
