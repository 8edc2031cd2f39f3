import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { immediate } from './database.ts';
import type { Identifier } from '../../identity/identifiers.ts';
import { DEFAULT_RULES, type GraphView, type IdentityRules, type Warning } from '../../identity/merge-policy.ts';
import { oncePerTurn } from '../../ops/once-per-turn.ts';
import type { Audience, Needs } from '../../audiences/definition.ts';
import type { ComputedTrait } from '../../profiles/computed-traits.ts';
import { parseValue, ProfileColumns } from './profile-columns.ts';
import type { ColumnStats } from '../ports.ts';
import type { Backfill, Column, ProfileChunk, ProfileColumnsView, ProfileEventCursor, ProfileReader, ProfileWriter, Provenance, StoredFit, TraitValue, ValueJob } from '../../profiles/ports.ts';

const LWW = 'WHERE excluded.ts > {t}.ts OR (excluded.ts = {t}.ts AND excluded.message_id > {t}.message_id)';
const lww = (table: string) => LWW.replaceAll('{t}', table);

type TraitRow = { key: string; value: string; ts: number; message_id: string };
const toTraits = (rows: TraitRow[]): Record<string, TraitValue> => Object.fromEntries(rows.map((r) => [r.key, { value: JSON.parse(r.value) as unknown, timestamp: r.ts, messageId: r.message_id }]));

const column = (r: Array<[string, string]>): Column => ({ ids: r.map((x) => x[0]), values: r.map((x) => parseValue(x[1])) });

/** Two columns in id order merged; where both have a profile, `over` wins (computed over custom traits). */
function overlay(under: Column, over: Column): Column {
  if (over.ids.length === 0) return under;
  const out: Column = { ids: [], values: [] };
  let [i, j] = [0, 0];
  while (i < under.ids.length || j < over.ids.length) {
    const a = under.ids[i];
    const b = over.ids[j];
    if (b === undefined || (a !== undefined && a < b)) (out.ids.push(a!), out.values.push(under.values[i++]));
    else {
      if (a === b) i++;
      out.ids.push(b);
      out.values.push(over.values[j++]);
    }
  }
  return out;
}

/** A run of profiles (`ids`, sorted) as a ProfileChunk, read from columns kept in memory. */
function chunkOf(view: ProfileColumnsView, needs: Needs, ids: string[]): ProfileChunk {
  const slots = ids.map((id) => view.slotOf(id) ?? -1);
  const chunk: ProfileChunk = { values: new Map(), members: new Map(), consents: new Map(), accounts: new Map() };
  for (const key of needs.keys) {
    const c: Column = { ids: [], values: [] };
    slots.forEach((slot, i) => {
      const value = slot < 0 ? undefined : view.value(key, slot);
      if (value !== undefined) (c.ids.push(ids[i]!), c.values.push(value));
    });
    chunk.values.set(key, c);
  }
  for (const key of needs.audiences) chunk.members.set(key, new Set(ids.filter((_, i) => slots[i]! >= 0 && view.member(key, slots[i]!))));
  for (const purpose of needs.consents) {
    const m = new Map<string, boolean>();
    slots.forEach((slot, i) => {
      const granted = slot < 0 ? undefined : view.consent(purpose, slot);
      if (granted !== undefined) m.set(ids[i]!, granted);
    });
    chunk.consents.set(purpose, m);
  }
  for (const key of needs.accounts) {
    const m = new Map<string, unknown[]>();
    slots.forEach((slot, i) => {
      const values = slot < 0 ? [] : view.account(key, slot);
      if (values.length > 0) m.set(ids[i]!, values);
    });
    chunk.accounts.set(key, m);
  }
  return chunk;
}

/** Rows as arrays: for reads of many rows, about twice as fast as one object per row. */
function rows(statement: StatementSync, ...params: Array<string | number>): unknown[][] {
  statement.setReturnArrays(true);
  return statement.all(...params) as unknown as unknown[][];
}

type FitRow = { id: string; workspace_id: string; created_at: number; fit: string };
const toFit = (r: FitRow): StoredFit => ({ id: r.id, workspaceId: r.workspace_id, createdAt: r.created_at, fit: JSON.parse(r.fit) as Record<string, unknown> });
type ValueJobRow = { workspace_id: string; fit_id: string; profile_after: string; scored: number; profiles_done: number; profiles_total: number; scored_at: number; started_at: number; finished_at: number | null };
const toValueJob = (r: ValueJobRow): ValueJob => ({
  workspaceId: r.workspace_id, fitId: r.fit_id, profileAfter: r.profile_after, scored: r.scored, profilesDone: r.profiles_done, profilesTotal: r.profiles_total, scoredAt: r.scored_at, startedAt: r.started_at, finishedAt: r.finished_at,
});

type BackfillRow = {
  workspace_id: string; audience_key: string; phase: Backfill['phase']; traits: string; up_to: number; log_after: number; profile_after: string;
  profiles_total: number; profiles_done: number; entered: number; exited: number; cause: string; started_at: number; finished_at: number | null; event_cursor: string | null;
};
const toBackfill = (r: BackfillRow): Backfill => ({
  workspaceId: r.workspace_id, audienceKey: r.audience_key, phase: r.phase, traits: JSON.parse(r.traits) as string[], upTo: r.up_to, logAfter: r.log_after, profileAfter: r.profile_after,
  profilesTotal: r.profiles_total, profilesDone: r.profiles_done, entered: r.entered, exited: r.exited, cause: r.cause, startedAt: r.started_at, finishedAt: r.finished_at, eventCursor: r.event_cursor,
});

/** Computed traits behind audience event conditions: kept, but never shown as traits. */
const HIDDEN = '__';
const DAY = 86_400_000;
const WINDOW = 'FROM ct_values WHERE profile_id = ? AND key = ? AND ts >= ?';
/** One query per kind, over a profile's contributions inside the window. */
const AGGREGATES: Record<ComputedTrait['kind'], string> = {
  count: `SELECT count(*) AS v ${WINDOW}`,
  sum: `SELECT coalesce(sum(num), 0) AS v ${WINDOW}`,
  min: `SELECT min(num) AS v ${WINDOW}`,
  max: `SELECT max(num) AS v ${WINDOW}`,
  average: `SELECT avg(num) AS v ${WINDOW}`,
  first: `SELECT value AS v ${WINDOW} ORDER BY ts, event_id LIMIT 1`,
  last: `SELECT value AS v ${WINDOW} ORDER BY ts DESC, event_id DESC LIMIT 1`,
  most_frequent: `SELECT value AS v ${WINDOW} GROUP BY value ORDER BY count(*) DESC, max(ts) DESC, value LIMIT 1`,
  unique_list: `SELECT DISTINCT value AS v ${WINDOW} ORDER BY value LIMIT 100`,
  unique_count: `SELECT count(DISTINCT value) AS v ${WINDOW}`,
};

/**
 * Profiles, identifiers, traits and merges in SQLite (state.db). Only the profile stage writes
 * (ProfileWriter); the APIs read (ProfileReader) on their own connection.
 */
export class SqliteProfileStore implements ProfileWriter, ProfileReader {
  readonly #db: DatabaseSync;
  readonly #s: Record<string, StatementSync>;
  readonly #rules = new Map<string, IdentityRules>();
  readonly #computed = new Map<string, ComputedTrait[]>();
  readonly #aggregates = new Map<string, StatementSync>();
  readonly #audiences = new Map<string, Audience[]>();
  #pending: Backfill[] | undefined;
  #version = -1;

  readonly #checkEachRead: boolean;
  /** Kept by the stage's writer only: it sees every write (see ProfileColumns). */
  readonly #columns: ProfileColumns | undefined;

  /**
   * `checkEachRead`: a reader beside the stage's writer notices its changes before using a cache.
   * `columns`: keep what audiences read about every profile in memory (the stage's writer),
   * loading `slice` profiles per step (tests use small slices), for workspaces of up to
   * `maxProfiles` live profiles.
   */
  constructor(db: DatabaseSync, options: { checkEachRead?: boolean; columns?: boolean | { slice?: number; maxProfiles?: number } } = {}) {
    this.#db = db;
    this.#checkEachRead = options.checkEachRead ?? false;
    this.#columns = options.columns ? new ProfileColumns(db, options.columns === true ? {} : options.columns) : undefined;
    const p = (sql: string) => db.prepare(sql);
    this.#s = {
      owner: p('SELECT profile_id FROM identifiers WHERE workspace_id = ? AND type = ? AND value = ?'),
      counts: p('SELECT type, count(*) AS n FROM identifiers WHERE profile_id = ? GROUP BY type'),
      mergeCount: p('SELECT merges FROM profiles WHERE id = ?'),
      rules: p('SELECT rules FROM identity_rules WHERE workspace_id = ?'),
      createProfile: p('INSERT INTO profiles (id, workspace_id, created_at, updated_at) VALUES (?, ?, ?, ?)'),
      touch: p('UPDATE profiles SET updated_at = max(updated_at, ?) WHERE id = ?'),
      link: p('INSERT INTO identifiers (workspace_id, type, value, profile_id, event_id, message_id, rule, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      moveIdentifiers: p('UPDATE identifiers SET profile_id = ? WHERE profile_id = ?'),
      moveTraits: p(`INSERT INTO traits (profile_id, key, value, ts, message_id) SELECT ?, key, value, ts, message_id FROM traits WHERE profile_id = ? ON CONFLICT (profile_id, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, message_id = excluded.message_id ${lww('traits')}`),
      dropTraits: p('DELETE FROM traits WHERE profile_id = ?'),
      moveHistory: p('UPDATE trait_history SET profile_id = ? WHERE profile_id = ?'),
      moveEvents: p('UPDATE profile_events SET profile_id = ? WHERE profile_id = ?'),
      moveLinks: p('UPDATE OR IGNORE account_links SET profile_id = ? WHERE profile_id = ?'),
      dropLinks: p('DELETE FROM account_links WHERE profile_id = ?'),
      markMerged: p('UPDATE profiles SET merged_into = ?, updated_at = ? WHERE id = ?'),
      addMerges: p('UPDATE profiles SET merges = merges + ? + 1, updated_at = max(updated_at, ?) WHERE id = ?'),
      recordMerge: p('INSERT INTO merges (workspace_id, from_profile, into_profile, via_type, via_value, event_id, rule, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      setTrait: p(`INSERT INTO traits (profile_id, key, value, ts, message_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT (profile_id, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, message_id = excluded.message_id ${lww('traits')}`),
      traitHistory: p('INSERT INTO trait_history (profile_id, key, value, ts, message_id, event_id) VALUES (?, ?, ?, ?, ?, ?)'),
      addEvent: p('INSERT OR IGNORE INTO profile_events (profile_id, ts, event_id, type, name, properties) VALUES (?, ?, ?, ?, ?, ?)'),
      untyped: p('SELECT 1 FROM profile_events WHERE type IS NULL LIMIT 1'),
      eventsNamed: p('SELECT profile_id, ts, event_id, type, name, properties FROM profile_events WHERE (profile_id, ts, event_id) > (?, ?, ?) AND name IN (SELECT value FROM json_each(?)) ORDER BY profile_id, ts, event_id LIMIT ?'),
      eventsNamedIn: p('SELECT e.profile_id, e.ts, e.event_id, e.type, e.name, e.properties FROM profile_events e JOIN profiles p ON p.id = e.profile_id AND p.workspace_id = ? WHERE (e.profile_id, e.ts, e.event_id) > (?, ?, ?) AND e.name IN (SELECT value FROM json_each(?)) ORDER BY e.profile_id, e.ts, e.event_id LIMIT ?'),
      warn: p('INSERT INTO identity_warnings (workspace_id, event_id, profile_id, warning) VALUES (?, ?, ?, ?)'),
      pinned: p('SELECT pinned FROM identifiers WHERE workspace_id = ? AND type = ? AND value = ?'),
      moveIdentifier: p('UPDATE identifiers SET profile_id = ?, pinned = 1 WHERE workspace_id = ? AND type = ? AND value = ?'),
      moveEvent: p('UPDATE profile_events SET profile_id = ? WHERE profile_id = ? AND event_id = ?'),
      moveEventHistory: p('UPDATE trait_history SET profile_id = ? WHERE profile_id = ? AND event_id = ?'),
      rebuildTraits: p(`INSERT INTO traits (profile_id, key, value, ts, message_id) SELECT profile_id, key, value, ts, message_id FROM trait_history WHERE profile_id = ? ON CONFLICT (profile_id, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, message_id = excluded.message_id ${lww('traits')}`),
      recordSplit: p('INSERT INTO splits (workspace_id, from_profile, to_profile, type, value, event_id, moved_events, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      splits: p('SELECT from_profile, to_profile, type, value, event_id, moved_events, at FROM splits WHERE from_profile = ? OR to_profile = ? ORDER BY id'),
      warnings: p('SELECT event_id, warning FROM identity_warnings WHERE profile_id = ? ORDER BY id'),
      setRules: p('INSERT INTO identity_rules (workspace_id, rules) VALUES (?, ?) ON CONFLICT DO UPDATE SET rules = excluded.rules'),
      dataVersion: p('PRAGMA data_version'),
      defineCt: p('INSERT INTO computed_traits (workspace_id, key, definition, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET definition = excluded.definition'),
      deleteCt: p('DELETE FROM computed_traits WHERE workspace_id = ? AND key = ?'),
      deleteCtValues: p('DELETE FROM ct_values WHERE key = ? AND workspace_id = ?'),
      lowerExpiry: p('INSERT INTO profile_expiry (profile_id, expires_at) VALUES (?, ?) ON CONFLICT DO UPDATE SET expires_at = excluded.expires_at WHERE excluded.expires_at < profile_expiry.expires_at'),
      setExpiry: p('INSERT INTO profile_expiry (profile_id, expires_at) VALUES (?, ?) ON CONFLICT DO UPDATE SET expires_at = excluded.expires_at'),
      clearExpiry: p('DELETE FROM profile_expiry WHERE profile_id = ?'),
      due: p('SELECT e.profile_id FROM profile_expiry e JOIN profiles p ON p.id = e.profile_id WHERE e.expires_at <= ? AND p.workspace_id = ?'),
      dropLapsed: p('DELETE FROM ct_values WHERE profile_id = ? AND key = ? AND ts < ?'),
      oldest: p('SELECT min(ts) AS ts FROM ct_values WHERE profile_id = ? AND key = ?'),
      deleteComputed: p('DELETE FROM computed_values WHERE key = ? AND profile_id IN (SELECT id FROM profiles WHERE workspace_id = ?)'),
      listCt: p('SELECT definition FROM computed_traits WHERE workspace_id = ? ORDER BY key'),
      addCtValue: p('INSERT OR IGNORE INTO ct_values (workspace_id, profile_id, key, ts, event_id, value, num) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      incrementComputed: p("INSERT INTO computed_values (profile_id, key, value, updated_at) VALUES (?, ?, '1', ?) ON CONFLICT DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT), updated_at = excluded.updated_at"),
      setComputed: p('INSERT INTO computed_values (profile_id, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at'),
      dropComputed: p('DELETE FROM computed_values WHERE profile_id = ? AND key = ?'),
      computedValues: p('SELECT key, value FROM computed_values WHERE profile_id = ? ORDER BY key'),
      moveCtValues: p('UPDATE ct_values SET profile_id = ? WHERE profile_id = ?'),
      moveCtEvent: p('UPDATE ct_values SET profile_id = ? WHERE profile_id = ? AND event_id = ?'),
      dropComputedOf: p('DELETE FROM computed_values WHERE profile_id = ?'),
      profileOfEvent: p('SELECT profile_id FROM profile_events WHERE event_id = ?'),
      workspaces: p('SELECT workspace_id FROM computed_traits UNION SELECT workspace_id FROM audiences UNION SELECT workspace_id FROM value_jobs'),
      profileHistory: p('SELECT audience_key, change, at, event_id FROM audience_history WHERE profile_id = ? ORDER BY id DESC LIMIT ?'),
      historySince: p('SELECT change, at FROM audience_history WHERE workspace_id = ? AND audience_key = ? ORDER BY id'),
      defineAudience: p('INSERT INTO audiences (workspace_id, key, name, definition, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET name = excluded.name, definition = excluded.definition, updated_at = excluded.updated_at'),
      deleteAudience: p('DELETE FROM audiences WHERE workspace_id = ? AND key = ?'),
      listAudiences: p('SELECT key, name, definition FROM audiences WHERE workspace_id = ? ORDER BY key'),
      isMember: p('SELECT 1 FROM audience_members WHERE workspace_id = ? AND audience_key = ? AND profile_id = ?'),
      addMember: p('INSERT INTO audience_members (workspace_id, audience_key, profile_id, since, event_id) VALUES (?, ?, ?, ?, ?)'),
      dropMember: p('DELETE FROM audience_members WHERE workspace_id = ? AND audience_key = ? AND profile_id = ?'),
      history: p('INSERT INTO audience_history (workspace_id, audience_key, profile_id, change, at, event_id) VALUES (?, ?, ?, ?, ?, ?)'),
      memberships: p('SELECT audience_key FROM audience_members WHERE profile_id = ? ORDER BY audience_key'),
      audienceSize: p('SELECT count(*) AS n FROM audience_members WHERE workspace_id = ? AND audience_key = ?'),
      audienceHistory: p('SELECT profile_id, change, at, event_id FROM audience_history WHERE workspace_id = ? AND audience_key = ? ORDER BY id DESC LIMIT ?'),
      savePreview: p('INSERT INTO audience_previews (id, workspace_id, result, at) VALUES (?, ?, ?, ?)'),
      preview: p('SELECT result FROM audience_previews WHERE workspace_id = ? AND id = ?'),
      setConsent: p(`INSERT INTO consents (profile_id, purpose, granted, ts, message_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT (profile_id, purpose) DO UPDATE SET granted = excluded.granted, ts = excluded.ts, message_id = excluded.message_id ${lww('consents')} RETURNING granted`),
      consent: p('SELECT granted FROM consents WHERE profile_id = ? AND purpose = ?'),
      consentChanged: p('INSERT INTO consent_history (profile_id, purpose, granted, at) VALUES (?, ?, ?, ?)'),
      consentChanges: p('SELECT id, profile_id, purpose, granted, at FROM consent_history WHERE id > ? ORDER BY id LIMIT ?'),
      lastConsentChange: p('SELECT coalesce(max(id), 0) AS id FROM consent_history'),
      consents: p('SELECT purpose, granted FROM consents WHERE profile_id = ? ORDER BY purpose'),
      moveConsents: p(`INSERT INTO consents (profile_id, purpose, granted, ts, message_id) SELECT ?, purpose, granted, ts, message_id FROM consents WHERE profile_id = ? ON CONFLICT (profile_id, purpose) DO UPDATE SET granted = excluded.granted, ts = excluded.ts, message_id = excluded.message_id ${lww('consents')}`),
      dropConsents: p('DELETE FROM consents WHERE profile_id = ?'),
      accountValues: p('SELECT t.value FROM account_links l JOIN account_traits t ON t.workspace_id = l.workspace_id AND t.group_id = l.group_id AND t.key = ? WHERE l.profile_id = ? ORDER BY l.group_id'),
      // Two searches of the live-profiles index: with OR, SQLite scans all of it.
      workspaceBefore: p('SELECT 1 FROM profiles WHERE merged_into IS NULL AND workspace_id < ? LIMIT 1'),
      workspaceAfter: p('SELECT 1 FROM profiles WHERE merged_into IS NULL AND workspace_id > ? LIMIT 1'),
      chunkIds: p('SELECT id FROM profiles WHERE workspace_id = ? AND merged_into IS NULL AND id > ? ORDER BY id LIMIT ?'),
      changes: p('SELECT id, audience_key, profile_id, change, at, event_id FROM audience_history WHERE workspace_id = ? AND id > ? ORDER BY id LIMIT ?'),
      lastChange: p('SELECT coalesce(max(id), 0) AS id FROM audience_history'),
      audienceLastChange: p('SELECT coalesce(max(id), 0) AS id FROM audience_history WHERE workspace_id = ? AND audience_key = ?'),
      membersUnchanged: p(`SELECT m.profile_id FROM audience_members m WHERE m.workspace_id = ? AND m.audience_key = ? AND m.profile_id > ?
        AND NOT EXISTS (SELECT 1 FROM audience_history h WHERE h.profile_id = m.profile_id AND h.id > ? AND h.workspace_id = m.workspace_id AND h.audience_key = m.audience_key)
        ORDER BY m.profile_id LIMIT ?`),
      changesOf: p('SELECT id, audience_key, profile_id, change, at, event_id FROM audience_history WHERE workspace_id = ? AND audience_key = ? AND id > ? ORDER BY id LIMIT ?'),
      mergedInto: p('SELECT merged_into FROM profiles WHERE id = ?'),
      members: p('SELECT profile_id FROM audience_members WHERE workspace_id = ? AND audience_key = ? ORDER BY profile_id'),
      // By profile range over the primary keys: an index by key would cost a random page write per
      // computed value the stage updates.
      rangeTrait: p('SELECT profile_id, value FROM traits WHERE profile_id BETWEEN ? AND ? AND key = ?'),
      rangeComputed1: p('SELECT profile_id, value FROM computed_values WHERE profile_id BETWEEN ? AND ? AND key = ?'),
      rangeMembers: p('SELECT profile_id FROM audience_members WHERE workspace_id = ? AND audience_key = ? AND profile_id BETWEEN ? AND ?'),
      rangeConsents: p('SELECT profile_id, granted FROM consents WHERE purpose = ? AND profile_id BETWEEN ? AND ?'),
      rangeAccounts: p('SELECT l.profile_id, t.value FROM account_links l JOIN account_traits t ON t.workspace_id = l.workspace_id AND t.group_id = l.group_id AND t.key = ? WHERE l.profile_id BETWEEN ? AND ? AND l.workspace_id = ?'),
      recountRange: p("INSERT INTO computed_values (profile_id, key, value, updated_at) SELECT profile_id, key, CAST(count(*) AS TEXT), ? FROM ct_values WHERE profile_id BETWEEN ? AND ? AND key = ? AND ts >= ? GROUP BY profile_id ON CONFLICT DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"),
      profileCount: p('SELECT count(*) AS n FROM profiles WHERE workspace_id = ? AND merged_into IS NULL'),
      saveBackfill: p(`INSERT INTO backfills (workspace_id, audience_key, phase, traits, up_to, log_after, profile_after, profiles_total, profiles_done, entered, exited, cause, started_at, finished_at, event_cursor)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET phase = excluded.phase, traits = excluded.traits, up_to = excluded.up_to, log_after = excluded.log_after,
        profile_after = excluded.profile_after, profiles_total = excluded.profiles_total, profiles_done = excluded.profiles_done, entered = excluded.entered, exited = excluded.exited,
        cause = excluded.cause, started_at = excluded.started_at, finished_at = excluded.finished_at, event_cursor = excluded.event_cursor`),
      deleteBackfill: p('DELETE FROM backfills WHERE workspace_id = ? AND audience_key = ?'),
      pendingBackfills: p("SELECT * FROM backfills WHERE phase != 'done' ORDER BY started_at, workspace_id, audience_key"),
      backfill: p('SELECT * FROM backfills WHERE workspace_id = ? AND audience_key = ?'),
      saveFit: p('INSERT INTO clv_fits (id, workspace_id, created_at, fit) VALUES (?, ?, ?, ?)'),
      fits: p('SELECT id, workspace_id, created_at, fit FROM clv_fits WHERE workspace_id = ? ORDER BY created_at DESC, id DESC LIMIT ?'),
      fit: p('SELECT id, workspace_id, created_at, fit FROM clv_fits WHERE workspace_id = ? AND id = ?'),
      fitWorkspaces: p('SELECT DISTINCT workspace_id FROM clv_fits ORDER BY workspace_id'),
      saveValueJob: p(`INSERT INTO value_jobs (workspace_id, fit_id, profile_after, scored, profiles_done, profiles_total, scored_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET fit_id = excluded.fit_id, profile_after = excluded.profile_after, scored = excluded.scored, profiles_done = excluded.profiles_done,
        profiles_total = excluded.profiles_total, scored_at = excluded.scored_at, started_at = excluded.started_at, finished_at = excluded.finished_at`),
      pendingValueJobs: p('SELECT * FROM value_jobs WHERE finished_at IS NULL ORDER BY started_at'),
      valueJob: p('SELECT * FROM value_jobs WHERE workspace_id = ?'),
      contributions: p('SELECT profile_id, ts, num FROM ct_values WHERE workspace_id = ? AND key IN (SELECT value FROM json_each(?)) AND num IS NOT NULL'),
      contributionsInRange: p('SELECT profile_id, ts, num FROM ct_values WHERE profile_id BETWEEN ? AND ? AND key IN (SELECT value FROM json_each(?)) AND num IS NOT NULL'),
      computedAfter: p('SELECT profile_id, key, value FROM computed_values WHERE profile_id > ? AND key IN (SELECT value FROM json_each(?)) ORDER BY profile_id, key LIMIT ?'),
      upsertAccount: p('INSERT INTO accounts (workspace_id, group_id, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET updated_at = max(updated_at, excluded.updated_at)'),
      setAccountTrait: p(`INSERT INTO account_traits (workspace_id, group_id, key, value, ts, message_id) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workspace_id, group_id, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, message_id = excluded.message_id ${lww('account_traits')}`),
      linkAccount: p('INSERT OR IGNORE INTO account_links (workspace_id, group_id, profile_id, event_id) VALUES (?, ?, ?, ?)'),
      checkpoint: p("SELECT log_id FROM checkpoint WHERE name = 'profiles'"),
      setCheckpoint: p("INSERT INTO checkpoint (name, log_id) VALUES ('profiles', ?) ON CONFLICT DO UPDATE SET log_id = excluded.log_id"),
      metadata: p('SELECT workspace_id, created_at, updated_at FROM profiles WHERE id = ? AND merged_into IS NULL'),
      traitValues: p('SELECT key, value, 0 AS computed FROM traits WHERE profile_id = ? UNION ALL SELECT key, value, 1 FROM computed_values WHERE profile_id = ? ORDER BY computed'),
      traitValuesOf: p(`WITH p AS MATERIALIZED (SELECT profile_id FROM identifiers WHERE workspace_id = ? AND type = ? AND value = ?)
        SELECT p.profile_id AS profile_id, t.key AS key, t.value AS value, 0 AS computed FROM p LEFT JOIN traits t ON t.profile_id = p.profile_id
        UNION ALL SELECT p.profile_id, c.key, c.value, 1 FROM p JOIN computed_values c ON c.profile_id = p.profile_id`),
      traits: p('SELECT key, value, ts, message_id FROM traits WHERE profile_id = ? ORDER BY key'),
      identifiers: p('SELECT type, value, event_id, message_id, rule, created_at FROM identifiers WHERE profile_id = ? ORDER BY created_at, type, value'),
      eventsFirst: p('SELECT ts, event_id FROM profile_events WHERE profile_id = ? ORDER BY ts DESC, event_id DESC LIMIT ?'),
      eventsAfter: p('SELECT ts, event_id FROM profile_events WHERE profile_id = ? AND (ts < ? OR (ts = ? AND event_id < ?)) ORDER BY ts DESC, event_id DESC LIMIT ?'),
      merges: p('SELECT from_profile, into_profile, via_type, via_value, event_id, rule, at FROM merges WHERE into_profile = ? OR from_profile = ? ORDER BY id'),
      account: p('SELECT created_at, updated_at FROM accounts WHERE workspace_id = ? AND group_id = ?'),
      accountTraits: p('SELECT key, value, ts, message_id FROM account_traits WHERE workspace_id = ? AND group_id = ? ORDER BY key'),
      accountLinks: p('SELECT profile_id FROM account_links WHERE workspace_id = ? AND group_id = ? ORDER BY profile_id'),
    };
  }

  /** Drops the caches when another connection committed since they were filled. */
  #fresh(): void {
    const version = (this.#s.dataVersion!.get() as { data_version: number }).data_version;
    if (version !== this.#version) {
      this.#version = version;
      this.#rules.clear();
      this.#computed.clear();
      this.#audiences.clear();
      this.#pending = undefined;
      this.#columns?.clear();
    }
  }

  readonly #freshForReads = oncePerTurn(() => this.#fresh());

  transaction(fn: () => void): void {
    this.#fresh();
    try {
      immediate(this.#db, fn);
    } catch (err) {
      this.#columns?.clear();
      throw err;
    }
  }

  graph(workspaceId: string): GraphView {
    const s = this.#s;
    return {
      profileOf: (id) => this.profileOf(workspaceId, id),
      counts: (profileId) => Object.fromEntries((s.counts!.all(profileId) as Array<{ type: string; n: number }>).map((r) => [r.type, r.n])),
      merges: (profileId) => (s.mergeCount!.get(profileId) as { merges: number } | undefined)?.merges ?? 0,
      pinned: (id) => (s.pinned!.get(workspaceId, id.type, id.value) as { pinned: number } | undefined)?.pinned === 1,
    };
  }

  /** A per-workspace cache that notices other connections' changes (see #fresh). */
  #cached<T>(cache: Map<string, T>, workspaceId: string, load: () => T): T {
    if (this.#checkEachRead) this.#freshForReads();
    let value = cache.get(workspaceId);
    if (value === undefined) cache.set(workspaceId, (value = load()));
    return value;
  }

  rules(workspaceId: string): IdentityRules {
    return this.#cached(this.#rules, workspaceId, () => {
      const row = this.#s.rules!.get(workspaceId) as { rules: string } | undefined;
      return row ? { ...DEFAULT_RULES, ...(JSON.parse(row.rules) as Partial<IdentityRules>) } : DEFAULT_RULES;
    });
  }


  createProfile(workspaceId: string, at: number): string {
    const id = `prof_${crypto.randomUUID()}`;
    this.#s.createProfile!.run(id, workspaceId, at, at);
    this.#columns?.created(workspaceId, id);
    return id;
  }

  link(workspaceId: string, profileId: string, id: Identifier, why: Provenance): void {
    this.#s.link!.run(workspaceId, id.type, id.value, profileId, why.eventId, why.messageId, why.rule, why.at);
    this.#s.touch!.run(why.at, profileId);
  }

  merge(workspaceId: string, from: string, into: string, via: Identifier, why: Provenance): void {
    const s = this.#s;
    const theirMerges = (s.mergeCount!.get(from) as { merges: number } | undefined)?.merges ?? 0;
    s.moveIdentifiers!.run(into, from);
    s.moveTraits!.run(into, from);
    s.dropTraits!.run(from);
    s.moveHistory!.run(into, from);
    s.moveEvents!.run(into, from);
    s.moveCtValues!.run(into, from);
    s.dropComputedOf!.run(from);
    s.moveConsents!.run(into, from);
    s.dropConsents!.run(from);
    s.moveLinks!.run(into, from);
    s.dropLinks!.run(from);
    s.markMerged!.run(into, why.at, from);
    s.addMerges!.run(theirMerges, why.at, into);
    s.recordMerge!.run(workspaceId, from, into, via.type, via.value, why.eventId, why.rule, why.at);
    this.#columns?.touched(from);
    this.#columns?.touched(into);
  }

  setTraits(_workspaceId: string, profileId: string, traits: Record<string, unknown>, timestamp: number, why: Provenance): void {
    for (const [key, value] of Object.entries(traits)) {
      if (value === undefined) continue;
      const json = JSON.stringify(value);
      this.#s.setTrait!.run(profileId, key, json, timestamp, why.messageId);
      this.#columns?.touched(profileId, key);
      this.#s.traitHistory!.run(profileId, key, json, timestamp, why.messageId, why.eventId);
    }
    this.#s.touch!.run(why.at, profileId);
  }

  setConsents(profileId: string, preferences: Record<string, boolean>, timestamp: number, messageId: string): string[] {
    const changed: string[] = [];
    for (const [purpose, granted] of Object.entries(preferences)) {
      const before = (this.#s.consent!.get(profileId, purpose) as { granted: number } | undefined)?.granted;
      const after = (this.#s.setConsent!.get(profileId, purpose, granted ? 1 : 0, timestamp, messageId) as { granted: number } | undefined)?.granted;
      this.#columns?.touchedConsent(profileId, purpose);
      if (after !== undefined && after !== before) {
        changed.push(purpose);
        this.#s.consentChanged!.run(profileId, purpose, after, timestamp);
      }
    }
    return changed;
  }

  consentChanges(after: number, limit: number) {
    return (this.#s.consentChanges!.all(after, limit) as Array<{ id: number; profile_id: string; purpose: string; granted: number; at: number }>).map((r) => ({ id: r.id, profileId: r.profile_id, purpose: r.purpose, granted: r.granted === 1, at: r.at }));
  }

  lastConsentChange(): number {
    return (this.#s.lastConsentChange!.get() as { id: number }).id;
  }

  consents(profileId: string): Record<string, boolean> {
    return Object.fromEntries((this.#s.consents!.all(profileId) as Array<{ purpose: string; granted: number }>).map((r) => [r.purpose, r.granted === 1]));
  }

  accountValues(profileId: string, key: string): unknown[] {
    return (this.#s.accountValues!.all(key, profileId) as Array<{ value: string }>).map((r) => JSON.parse(r.value) as unknown);
  }

  addEvent(profileId: string, timestamp: number, eventId: string, type: string, name: string | null, properties: string | null): void {
    this.#s.addEvent!.run(profileId, timestamp, eventId, type, name, properties);
  }

  hasUntypedEvents(): boolean {
    return this.#s.untyped!.get() !== undefined;
  }

  profileEventsAfter(workspaceId: string, names: string[], after: ProfileEventCursor, limit: number) {
    const list = JSON.stringify(names);
    const r = (this.onlyWorkspace(workspaceId) ? rows(this.#s.eventsNamed!, after[0], after[1], after[2], list, limit) : rows(this.#s.eventsNamedIn!, workspaceId, after[0], after[1], after[2], list, limit)) as Array<[string, number, string, string, string, string | null]>;
    return r.map(([profileId, timestamp, eventId, type, name, properties]) => ({ profileId, timestamp, eventId, type, name, properties }));
  }

  onlyWorkspace(workspaceId: string): boolean {
    return this.#s.workspaceBefore!.get(workspaceId) === undefined && this.#s.workspaceAfter!.get(workspaceId) === undefined;
  }

  warn(workspaceId: string, eventId: string, profileId: string, warnings: Warning[]): void {
    for (const w of warnings) this.#s.warn!.run(workspaceId, eventId, profileId, JSON.stringify(w));
  }

  moveIdentifier(workspaceId: string, id: Identifier, to: string): void {
    this.#s.moveIdentifier!.run(to, workspaceId, id.type, id.value);
  }

  moveEvent(eventId: string, from: string, to: string): void {
    this.#s.moveEvent!.run(to, from, eventId);
    this.#s.moveEventHistory!.run(to, from, eventId);
    this.#s.moveCtEvent!.run(to, from, eventId);
    this.#columns?.touched(from);
    this.#columns?.touched(to);
  }

  recomputeTraits(profileId: string): void {
    this.#s.dropTraits!.run(profileId);
    this.#s.rebuildTraits!.run(profileId);
    this.#columns?.touched(profileId);
  }

  recordSplit(workspaceId: string, from: string, to: string, id: Identifier, movedEvents: number, why: Provenance): void {
    this.#s.recordSplit!.run(workspaceId, from, to, id.type, id.value, why.eventId, movedEvents, why.at);
  }

  setRules(workspaceId: string, rules: IdentityRules): void {
    this.#s.setRules!.run(workspaceId, JSON.stringify(rules));
    this.#rules.delete(workspaceId);
  }

  defineComputedTrait(workspaceId: string, trait: ComputedTrait, at: number): void {
    this.#s.deleteCtValues!.run(trait.key, workspaceId);
    this.#s.deleteComputed!.run(trait.key, workspaceId);
    this.#s.defineCt!.run(workspaceId, trait.key, JSON.stringify(trait), at);
    this.#computed.delete(workspaceId);
    this.#columns?.dropValues(trait.key);
  }

  deleteComputedTrait(workspaceId: string, key: string): void {
    this.#s.deleteCt!.run(workspaceId, key);
    this.#s.deleteCtValues!.run(key, workspaceId);
    this.#s.deleteComputed!.run(key, workspaceId);
    this.#computed.delete(workspaceId);
    this.#columns?.dropValues(key);
  }

  computedTraits(workspaceId: string): ComputedTrait[] {
    return this.#cached(this.#computed, workspaceId, () => (this.#s.listCt!.all(workspaceId) as Array<{ definition: string }>).map((r) => JSON.parse(r.definition) as ComputedTrait));
  }


  addContribution(workspaceId: string, profileId: string, trait: ComputedTrait, timestamp: number, eventId: string, value: unknown): void {
    this.#s.addCtValue!.run(workspaceId, profileId, trait.key, timestamp, eventId, JSON.stringify(value), typeof value === 'number' ? value : null);
    if (trait.windowDays !== undefined) this.#s.lowerExpiry!.run(profileId, timestamp + trait.windowDays * DAY);
  }

  incrementCount(profileId: string, trait: ComputedTrait, timestamp: number, now: number): void {
    if (trait.windowDays !== undefined && timestamp < now - trait.windowDays * DAY) return;
    this.#s.incrementComputed!.run(profileId, trait.key, now);
    this.#columns?.touched(profileId, trait.key);
  }

  recompute(profileId: string, trait: ComputedTrait, now: number): void {
    const from = trait.windowDays === undefined ? -8.64e15 : now - trait.windowDays * DAY;
    let statement = this.#aggregates.get(trait.kind);
    if (!statement) this.#aggregates.set(trait.kind, (statement = this.#db.prepare(AGGREGATES[trait.kind])));
    const rows = statement.all(profileId, trait.key, from) as Array<{ v: unknown }>;
    let value: unknown;
    if (trait.kind === 'unique_list') value = rows.map((r) => JSON.parse(r.v as string) as unknown);
    else if (['first', 'last', 'most_frequent'].includes(trait.kind)) value = rows[0] ? (JSON.parse(rows[0].v as string) as unknown) : null;
    else value = rows[0]?.v ?? null;
    if (value === null && trait.kind !== 'count' && trait.kind !== 'unique_count') this.#s.dropComputed!.run(profileId, trait.key);
    else this.#s.setComputed!.run(profileId, trait.key, JSON.stringify(value), now);
    this.#columns?.touched(profileId, trait.key);
    // Contributions may have moved here (merge, split): the profile's expiry may have to come earlier.
    if (trait.windowDays !== undefined) {
      const oldest = (this.#s.oldest!.get(profileId, trait.key) as { ts: number | null }).ts;
      if (oldest !== null) this.#s.lowerExpiry!.run(profileId, oldest + trait.windowDays * DAY);
    }
  }

  expire(workspaceId: string, traits: ComputedTrait[], now: number): Array<{ profileId: string; keys: string[] }> {
    const windowed = traits.filter((t) => t.windowDays !== undefined);
    const out: Array<{ profileId: string; keys: string[] }> = [];
    for (const { profile_id: profileId } of this.#s.due!.all(now, workspaceId) as Array<{ profile_id: string }>) {
      const keys: string[] = [];
      let next = Infinity;
      for (const trait of windowed) {
        const window = trait.windowDays! * DAY;
        if (Number(this.#s.dropLapsed!.run(profileId, trait.key, now - window).changes) > 0) keys.push(trait.key);
        const oldest = (this.#s.oldest!.get(profileId, trait.key) as { ts: number | null }).ts;
        if (oldest !== null) next = Math.min(next, oldest + window);
      }
      if (next === Infinity) this.#s.clearExpiry!.run(profileId);
      else this.#s.setExpiry!.run(profileId, next);
      if (keys.length > 0) out.push({ profileId, keys });
    }
    return out;
  }

  profileOfEvent(eventId: string): string | undefined {
    return (this.#s.profileOfEvent!.get(eventId) as { profile_id: string } | undefined)?.profile_id;
  }

  workspaces(): string[] {
    return (this.#s.workspaces!.all() as Array<{ workspace_id: string }>).map((r) => r.workspace_id);
  }

  computedValues(profileId: string): Record<string, unknown> {
    return Object.fromEntries((this.#s.computedValues!.all(profileId) as Array<{ key: string; value: string }>).filter((r) => !r.key.startsWith(HIDDEN)).map((r) => [r.key, JSON.parse(r.value) as unknown]));
  }

  /** Every computed value, hidden ones (behind audience event conditions) included. */
  allComputedValues(profileId: string): Record<string, unknown> {
    return Object.fromEntries((this.#s.computedValues!.all(profileId) as Array<{ key: string; value: string }>).map((r) => [r.key, JSON.parse(r.value) as unknown]));
  }

  defineAudience(workspaceId: string, audience: Audience, at: number): void {
    this.#s.defineAudience!.run(workspaceId, audience.key, audience.name, JSON.stringify(audience.definition), at, at);
    this.#audiences.delete(workspaceId);
  }

  deleteAudience(workspaceId: string, key: string): void {
    this.#s.deleteAudience!.run(workspaceId, key);
    this.#audiences.delete(workspaceId);
    this.#columns?.dropMembers(workspaceId, key);
  }

  audiences(workspaceId: string): Audience[] {
    return this.#cached(this.#audiences, workspaceId, () =>
      (this.#s.listAudiences!.all(workspaceId) as Array<{ key: string; name: string; definition: string }>).map((r) => ({ key: r.key, name: r.name, definition: JSON.parse(r.definition) as Audience['definition'] })),
    );
  }


  setMembership(workspaceId: string, key: string, profileId: string, member: boolean, at: number, eventId: string, known?: boolean): 'enter' | 'exit' | null {
    const was = known ?? this.#s.isMember!.get(workspaceId, key, profileId) !== undefined;
    if (was === member) return null;
    if (member) this.#s.addMember!.run(workspaceId, key, profileId, at, eventId);
    else this.#s.dropMember!.run(workspaceId, key, profileId);
    const change = member ? 'enter' : 'exit';
    this.#s.history!.run(workspaceId, key, profileId, change, at, eventId);
    this.#columns?.touchedMember(workspaceId, key, profileId);
    return change;
  }

  tentatively<T>(fn: () => T): T {
    const rollback = () => {
      this.#db.exec('ROLLBACK TO tentative');
      this.#db.exec('RELEASE tentative');
      this.#rules.clear();
      this.#computed.clear();
      this.#audiences.clear();
      this.#pending = undefined;
    };
    this.#db.exec('SAVEPOINT tentative');
    if (!this.#columns) {
      try {
        return fn();
      } finally {
        rollback();
      }
    }
    return this.#columns.tentative(fn, rollback);
  }

  savePreview(workspaceId: string, id: string, result: unknown, at: number): void {
    this.#s.savePreview!.run(id, workspaceId, JSON.stringify(result), at);
  }

  profileAudienceHistory(profileId: string, limit: number) {
    return (this.#s.profileHistory!.all(profileId, limit) as Array<{ audience_key: string; change: 'enter' | 'exit'; at: number; event_id: string }>).map((r) => ({ key: r.audience_key, change: r.change, at: r.at, eventId: r.event_id }));
  }

  audienceSizes(workspaceId: string, key: string, bucketMs: number): Array<{ at: number; size: number }> {
    const out: Array<{ at: number; size: number }> = [];
    let size = 0;
    for (const r of this.#s.historySince!.iterate(workspaceId, key) as Iterable<{ change: string; at: number }>) {
      size += r.change === 'enter' ? 1 : -1;
      const at = Math.floor(r.at / bucketMs) * bucketMs;
      if (out.length > 0 && out[out.length - 1]!.at === at) out[out.length - 1]!.size = size;
      else out.push({ at, size });
    }
    return out;
  }

  preview(workspaceId: string, id: string): unknown {
    const row = this.#s.preview!.get(workspaceId, id) as { result: string } | undefined;
    return row && (JSON.parse(row.result) as unknown);
  }

  liveProfilesAfter(workspaceId: string, after: string, limit: number): string[] {
    return (rows(this.#s.chunkIds!, workspaceId, after, limit) as Array<[string]>).map((r) => r[0]);
  }

  audienceChanges(workspaceId: string, after: number, limit: number, key?: string) {
    const rows = (key === undefined ? this.#s.changes!.all(workspaceId, after, limit) : this.#s.changesOf!.all(workspaceId, key, after, limit)) as Array<{ id: number; audience_key: string; profile_id: string; change: 'enter' | 'exit'; at: number; event_id: string }>;
    return rows.map((r) => ({ id: r.id, key: r.audience_key, profileId: r.profile_id, change: r.change, at: r.at, eventId: r.event_id }));
  }

  liveProfileOf(profileId: string): string | undefined {
    let id = profileId;
    for (let hops = 0; hops < 1000; hops++) {
      const row = this.#s.mergedInto!.get(id) as { merged_into: string | null } | undefined;
      if (!row) return undefined;
      if (row.merged_into === null) return id;
      id = row.merged_into;
    }
    return undefined;
  }

  lastAudienceChange(): number {
    return (this.#s.lastChange!.get() as { id: number }).id;
  }

  audienceLastChange(workspaceId: string, key: string): number {
    return (this.#s.audienceLastChange!.get(workspaceId, key) as { id: number }).id;
  }

  membersUnchangedSince(workspaceId: string, key: string, change: number, afterProfile: string, limit: number): string[] {
    return (this.#s.membersUnchanged!.all(workspaceId, key, afterProfile, change, limit) as Array<{ profile_id: string }>).map((r) => r.profile_id);
  }

  audienceMembers(workspaceId: string, key: string): string[] {
    return (this.#s.members!.all(workspaceId, key) as Array<{ profile_id: string }>).map((r) => r.profile_id);
  }

  #accountsInRange(workspaceId: string, key: string, from: string, to: string): Map<string, unknown[]> {
    const byProfile = new Map<string, unknown[]>();
    for (const [profileId, value] of rows(this.#s.rangeAccounts!, key, from, to, workspaceId) as Array<[string, string]>) {
      const list = byProfile.get(profileId);
      if (list) list.push(JSON.parse(value));
      else byProfile.set(profileId, [JSON.parse(value)]);
    }
    return byProfile;
  }

  profileChunk(workspaceId: string, needs: Needs, ids: string[]): ProfileChunk {
    const s = this.#s;
    const chunk: ProfileChunk = { values: new Map(), members: new Map(), consents: new Map(), accounts: new Map() };
    if (ids.length === 0) return chunk;
    // Columns already in memory serve it (a sweep never loads a whole column for one chunk).
    const kept = this.#columns?.has(workspaceId, needs) ? this.#columns.view(workspaceId, needs) : undefined;
    if (kept) return chunkOf(kept, needs, ids);
    const [from, to] = [ids[0]!, ids[ids.length - 1]!];
    for (const key of needs.keys) {
      // One key per query, and only where it can be: a range read returns one row per profile.
      const fromTraits = key.startsWith(HIDDEN) ? undefined : column(rows(s.rangeTrait!, from, to, key) as Array<[string, string]>);
      const fromComputed = needs.computedKeys === undefined || needs.computedKeys.has(key) ? column(rows(s.rangeComputed1!, from, to, key) as Array<[string, string]>) : undefined;
      chunk.values.set(key, fromTraits && fromComputed ? overlay(fromTraits, fromComputed) : (fromComputed ?? fromTraits ?? { ids: [], values: [] }));
    }
    for (const key of needs.audiences) chunk.members.set(key, new Set((rows(s.rangeMembers!, workspaceId, key, from, to) as Array<[string]>).map((r) => r[0])));
    for (const purpose of needs.consents) chunk.consents.set(purpose, new Map((rows(s.rangeConsents!, purpose, from, to) as Array<[string, number]>).map(([p, granted]) => [p, granted === 1])));
    for (const key of needs.accounts) chunk.accounts.set(key, this.#accountsInRange(workspaceId, key, from, to));
    return chunk;
  }

  profileColumns(workspaceId: string, needs: Needs): ProfileColumnsView | undefined {
    return this.#columns?.view(workspaceId, needs);
  }

  refreshColumns(limit: number): number {
    return this.#columns?.refreshSome(limit) ?? 0;
  }

  warmColumns(workspaceId: string, needs: Needs): boolean {
    return this.#columns?.warm(workspaceId, needs) ?? false;
  }

  columnStats(): ColumnStats {
    return this.#columns?.stats() ?? { columns: 0, profiles: 0 };
  }

  columnsLoaded(workspaceId: string, needs: Needs): boolean {
    return this.#columns?.has(workspaceId, needs) ?? false;
  }

  recountRange(trait: ComputedTrait, from: string, to: string, now: number): void {
    this.#s.recountRange!.run(now, from, to, trait.key, trait.windowDays === undefined ? -8.64e15 : now - trait.windowDays * DAY);
    this.#columns?.dropValues(trait.key);
  }

  profileCount(workspaceId: string): number {
    return (this.#s.profileCount!.get(workspaceId) as { n: number }).n;
  }

  saveBackfill(b: Backfill): void {
    this.#s.saveBackfill!.run(b.workspaceId, b.audienceKey, b.phase, JSON.stringify(b.traits), b.upTo, b.logAfter, b.profileAfter, b.profilesTotal, b.profilesDone, b.entered, b.exited, b.cause, b.startedAt, b.finishedAt, b.eventCursor);
    this.#pending = undefined;
  }

  deleteBackfill(workspaceId: string, audienceKey: string): void {
    this.#s.deleteBackfill!.run(workspaceId, audienceKey);
    this.#pending = undefined;
  }

  pendingBackfills(): Backfill[] {
    return (this.#pending ??= (this.#s.pendingBackfills!.all() as BackfillRow[]).map(toBackfill));
  }

  saveFit(f: StoredFit): void {
    this.#s.saveFit!.run(f.id, f.workspaceId, f.createdAt, JSON.stringify(f.fit));
  }

  fits(workspaceId: string, limit: number): StoredFit[] {
    return (this.#s.fits!.all(workspaceId, limit) as FitRow[]).map(toFit);
  }

  fitWorkspaces(): string[] {
    return (this.#s.fitWorkspaces!.all() as Array<{ workspace_id: string }>).map((r) => r.workspace_id);
  }

  fit(workspaceId: string, id: string): StoredFit | undefined {
    const row = this.#s.fit!.get(workspaceId, id) as FitRow | undefined;
    return row && toFit(row);
  }

  saveValueJob(j: ValueJob): void {
    this.#s.saveValueJob!.run(j.workspaceId, j.fitId, j.profileAfter, j.scored, j.profilesDone, j.profilesTotal, j.scoredAt, j.startedAt, j.finishedAt);
  }

  pendingValueJobs(): ValueJob[] {
    return (this.#s.pendingValueJobs!.all() as ValueJobRow[]).map(toValueJob);
  }

  valueJob(workspaceId: string): ValueJob | undefined {
    const row = this.#s.valueJob!.get(workspaceId) as ValueJobRow | undefined;
    return row && toValueJob(row);
  }

  contributions(workspaceId: string, keys: string[]) {
    return (rows(this.#s.contributions!, workspaceId, JSON.stringify(keys)) as Array<[string, number, number]>).map(([profileId, timestamp, value]) => ({ profileId, timestamp, value }));
  }

  contributionsInRange(keys: string[], from: string, to: string) {
    return (rows(this.#s.contributionsInRange!, from, to, JSON.stringify(keys)) as Array<[string, number, number]>).map(([profileId, timestamp, value]) => ({ profileId, timestamp, value }));
  }

  computedValuesAfter(keys: string[], after: string, limit: number) {
    const out: Array<{ profileId: string; values: Record<string, unknown> }> = [];
    for (const [profileId, key, value] of rows(this.#s.computedAfter!, after, JSON.stringify(keys), limit * keys.length) as Array<[string, string, string]>) {
      if (out.at(-1)?.profileId !== profileId) {
        if (out.length === limit) break;
        out.push({ profileId, values: {} });
      }
      out.at(-1)!.values[key] = JSON.parse(value);
    }
    return out;
  }

  setComputedValue(profileId: string, key: string, value: unknown, at: number): void {
    this.#s.setComputed!.run(profileId, key, JSON.stringify(value), at);
    this.#columns?.touched(profileId, key);
  }

  dropComputedValue(profileId: string, key: string): void {
    this.#s.dropComputed!.run(profileId, key);
    this.#columns?.touched(profileId, key);
  }

  backfill(workspaceId: string, audienceKey: string): Backfill | undefined {
    const row = this.#s.backfill!.get(workspaceId, audienceKey) as BackfillRow | undefined;
    return row && toBackfill(row);
  }

  memberships(profileId: string): string[] {
    return (this.#s.memberships!.all(profileId) as Array<{ audience_key: string }>).map((r) => r.audience_key);
  }

  audienceSize(workspaceId: string, key: string): number {
    return (this.#s.audienceSize!.get(workspaceId, key) as { n: number }).n;
  }

  audienceHistory(workspaceId: string, key: string, limit: number) {
    return (this.#s.audienceHistory!.all(workspaceId, key, limit) as Array<{ profile_id: string; change: 'enter' | 'exit'; at: number; event_id: string }>).map((r) => ({ profileId: r.profile_id, change: r.change, at: r.at, eventId: r.event_id }));
  }

  splits(profileId: string) {
    return (this.#s.splits!.all(profileId, profileId) as Array<{ from_profile: string; to_profile: string; type: string; value: string; event_id: string; moved_events: number; at: number }>).map((r) => ({
      from: r.from_profile, to: r.to_profile, id: { type: r.type, value: r.value }, eventId: r.event_id, movedEvents: r.moved_events, at: r.at,
    }));
  }

  warnings(profileId: string) {
    return (this.#s.warnings!.all(profileId) as Array<{ event_id: string; warning: string }>).map((r) => ({ eventId: r.event_id, warning: JSON.parse(r.warning) as Warning }));
  }

  upsertAccount(workspaceId: string, groupId: string, traits: Record<string, unknown>, timestamp: number, why: Provenance): void {
    this.#s.upsertAccount!.run(workspaceId, groupId, why.at, why.at);
    for (const [key, value] of Object.entries(traits)) {
      if (value !== undefined) this.#s.setAccountTrait!.run(workspaceId, groupId, key, JSON.stringify(value), timestamp, why.messageId);
      this.#columns?.dropAccounts(workspaceId, key);
    }
  }

  linkAccount(workspaceId: string, groupId: string, profileId: string, why: Provenance): void {
    this.#s.linkAccount!.run(workspaceId, groupId, profileId, why.eventId);
    this.#columns?.touchedAccounts(workspaceId, profileId);
  }

  checkpoint(): number {
    return (this.#s.checkpoint!.get() as { log_id: number } | undefined)?.log_id ?? 0;
  }

  setCheckpoint(logId: number): void {
    this.#s.setCheckpoint!.run(logId);
  }

  profileOf(workspaceId: string, id: Identifier): string | undefined {
    return (this.#s.owner!.get(workspaceId, id.type, id.value) as { profile_id: string } | undefined)?.profile_id;
  }

  metadata(profileId: string) {
    const row = this.#s.metadata!.get(profileId) as { workspace_id: string; created_at: number; updated_at: number } | undefined;
    return row && { workspaceId: row.workspace_id, createdAt: row.created_at, updatedAt: row.updated_at };
  }

  traitValuesOf(workspaceId: string, id: Identifier): { profileId: string; values: Record<string, unknown> } | undefined {
    const rows = this.#s.traitValuesOf!.all(workspaceId, id.type, id.value) as Array<{ profile_id: string; key: string | null; value: string | null; computed: number }>;
    if (rows.length === 0) return undefined;
    const values: Record<string, unknown> = {};
    const computed = new Set<string>();
    for (const r of rows) {
      if (r.key === null || (r.computed === 0 && computed.has(r.key)) || (r.computed === 1 && r.key.startsWith(HIDDEN))) continue;
      values[r.key] = JSON.parse(r.value!);
      if (r.computed === 1) computed.add(r.key);
    }
    return { profileId: rows[0]!.profile_id, values };
  }

  traitValues(profileId: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const r of this.#s.traitValues!.all(profileId, profileId) as Array<{ key: string; value: string; computed: number }>) {
      if (r.computed === 1 && r.key.startsWith(HIDDEN)) continue;
      out[r.key] = JSON.parse(r.value);
    }
    return out;
  }

  traits(profileId: string): Record<string, TraitValue> {
    return toTraits(this.#s.traits!.all(profileId) as TraitRow[]);
  }

  identifiers(profileId: string) {
    return (this.#s.identifiers!.all(profileId) as Array<{ type: string; value: string; event_id: string; message_id: string; rule: string; created_at: number }>).map((r) => ({
      type: r.type, value: r.value, eventId: r.event_id, messageId: r.message_id, rule: r.rule, createdAt: r.created_at,
    }));
  }

  events(profileId: string, limit: number, before?: { timestamp: number; eventId: string }) {
    const rows = (before ? this.#s.eventsAfter!.all(profileId, before.timestamp, before.timestamp, before.eventId, limit) : this.#s.eventsFirst!.all(profileId, limit)) as Array<{ ts: number; event_id: string }>;
    return rows.map((r) => ({ timestamp: r.ts, eventId: r.event_id }));
  }

  merges(profileId: string) {
    return (this.#s.merges!.all(profileId, profileId) as Array<{ from_profile: string; into_profile: string; via_type: string; via_value: string; event_id: string; rule: string; at: number }>).map((r) => ({
      from: r.from_profile, into: r.into_profile, via: { type: r.via_type, value: r.via_value }, eventId: r.event_id, rule: r.rule, at: r.at,
    }));
  }

  account(workspaceId: string, groupId: string) {
    const row = this.#s.account!.get(workspaceId, groupId) as { created_at: number; updated_at: number } | undefined;
    return row && { traits: toTraits(this.#s.accountTraits!.all(workspaceId, groupId) as TraitRow[]), createdAt: row.created_at, updatedAt: row.updated_at };
  }

  accountLinks(workspaceId: string, groupId: string): string[] {
    return (this.#s.accountLinks!.all(workspaceId, groupId) as Array<{ profile_id: string }>).map((r) => r.profile_id);
  }
}
